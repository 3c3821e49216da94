//! Bytes to owned messages: framing, event batches, protocol-version
//! check, counters.
//!
//! [`Decoder`] wraps `probe_proto::FrameDecoder`, copies each message out of
//! its buffer ([`KernelMsg::into_owned`]) into a [`Msg`], turns each
//! `EventBatch` back into the events it holds (with a
//! `probe_proto::batch::BatchDecoder`, from the kernel's last sync point),
//! and refuses a kernel whose `Hello` announces an incompatible protocol
//! major version.

use probe_proto::batch::{BatchDecoder, BatchError, BatchSkip, BatchStats};
use probe_proto::{
    DecodeStats, FrameDecoder, FrameError, KernelMsg, PROTOCOL_VERSION, Version, hello_version,
};

use crate::Msg;

/// Why a frame did not produce a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame was damaged, too long, or held an unknown message; it was
    /// counted and skipped, and the stream goes on.
    #[error("skipped corrupt frame ({})", frame_error_text(*.0))]
    BadFrame(FrameError),
    /// The kernel's `Hello` announces a protocol this mmtop cannot read.
    #[error(
        "kernel speaks protocol {}.{}, this mmtop speaks {}.{} (any {}.x); use a matching mmtop",
        kernel.major, kernel.minor, host.major, host.minor, host.major
    )]
    Incompatible {
        /// What the kernel speaks.
        kernel: Version,
        /// What this mmtop speaks.
        host: Version,
    },
    /// An event batch could not be decoded: one before it was lost (or it
    /// is damaged), so its events and those of the batches up to the
    /// kernel's next sync point (within about a second) are skipped.
    #[error("skipped {events} events until the next sync point ({})", skip_text(*.reason))]
    EventsSkipped {
        /// Events the skipped batch held (0 if it was damaged).
        events: u64,
        /// Why.
        reason: BatchSkip,
    },
}

fn skip_text(reason: BatchSkip) -> String {
    match reason {
        BatchSkip::NotSynced { .. } => "no sync point yet".into(),
        BatchSkip::Gap { expected, got, .. } => {
            format!("batches {expected} to {} lost", got.wrapping_sub(1))
        }
        BatchSkip::Bad(BatchError::Truncated) => "batch cut short".into(),
        BatchSkip::Bad(BatchError::Malformed) => "malformed batch".into(),
    }
}

/// A short reason for a rejected frame, as shown to users.
pub fn frame_error_text(e: FrameError) -> &'static str {
    match e {
        FrameError::TooLong => "frame too long",
        FrameError::Cobs => "bad COBS encoding",
        FrameError::Crc => "crc mismatch",
        FrameError::Message => "unknown or malformed message",
    }
}

/// What one frame produced.
pub type Results = Vec<Result<Msg, DecodeError>>;

/// Turns the kernel's byte stream into messages.
///
/// A client that joins a busy live link usually lands inside a frame: the
/// bytes before the first frame boundary are the tail of a frame sent
/// before it listened, expected rather than corrupt. A decoder made with
/// [`joining`](Self::joining) counts such a first frame in
/// [`joined_mid_frame`](Self::joined_mid_frame) instead of reporting it.
/// Likewise event batches before the first sync point cannot be decoded
/// by anyone who joined late; they are counted in
/// [`batch_stats`](Self::batch_stats), not reported.
#[derive(Default)]
pub struct Decoder {
    frames: FrameDecoder,
    batches: BatchDecoder,
    /// A frame boundary has passed since the start of the stream (always
    /// true for a stream known to start at a boundary).
    synced: bool,
    joined_mid_frame: u64,
}

impl Decoder {
    /// A decoder at the start of a stream that starts at a frame boundary
    /// (a recording): anything wrong in it is reported.
    pub fn new() -> Self {
        Self {
            synced: true,
            ..Self::default()
        }
    }

    /// A decoder for a live link joined at any point of its stream.
    pub fn joining() -> Self {
        Self::default()
    }

    /// Takes one byte; when it ends a frame, what the frame held: one
    /// message, the events of a batch (possibly none), or an error.
    pub fn push(&mut self, byte: u8) -> Option<Results> {
        let mut out = Vec::new();
        self.push_into(byte, &mut out).then_some(out)
    }

    /// Takes one byte and appends what a frame it ends held to `out`;
    /// whether it ended a frame that counts (idle fill does not).
    fn push_into(&mut self, byte: u8, out: &mut Results) -> bool {
        let synced = self.synced || byte == 0;
        let first = !self.synced;
        self.synced = synced;
        let Some(result) = self.frames.push::<KernelMsg>(byte) else {
            return false;
        };
        if first && result.is_err() {
            self.joined_mid_frame += 1;
            return false;
        }
        match result {
            Ok(KernelMsg::Hello(h)) if !h.version.is_compatible_with(PROTOCOL_VERSION) => {
                out.push(Err(DecodeError::Incompatible {
                    kernel: h.version,
                    host: PROTOCOL_VERSION,
                }));
            }
            Ok(KernelMsg::EventBatch(b)) => match self.batches.decode(&b.body) {
                Ok(events) => out.extend(events.into_iter().map(Ok)),
                // Before any sync point: what a late joiner expects.
                Err(BatchSkip::NotSynced { .. }) => {}
                Err(reason) => out.push(Err(DecodeError::EventsSkipped {
                    events: match reason {
                        BatchSkip::Gap { events, .. } | BatchSkip::NotSynced { events } => events,
                        BatchSkip::Bad(_) => 0,
                    },
                    reason,
                })),
            },
            Ok(msg) => out.push(Ok(msg.into_owned())),
            Err(FrameError::Message) => {
                // A Hello of another protocol does not decode as ours, but
                // its version does.
                let e = match hello_version(self.frames.last_payload()) {
                    Some(kernel) if !kernel.is_compatible_with(PROTOCOL_VERSION) => {
                        DecodeError::Incompatible {
                            kernel,
                            host: PROTOCOL_VERSION,
                        }
                    }
                    _ => DecodeError::BadFrame(FrameError::Message),
                };
                out.push(Err(e));
            }
            Err(e) => out.push(Err(DecodeError::BadFrame(e))),
        }
        true
    }

    /// Takes a chunk of bytes; yields a result for every message (or
    /// error) of every frame it ends.
    pub fn feed(&mut self, bytes: &[u8]) -> std::vec::IntoIter<Result<Msg, DecodeError>> {
        let mut out = Vec::new();
        for &b in bytes {
            self.push_into(b, &mut out);
        }
        out.into_iter()
    }

    /// Good and bad frames so far.
    pub fn stats(&self) -> DecodeStats {
        self.frames.stats()
    }

    /// Event batches decoded and skipped so far.
    pub fn batch_stats(&self) -> BatchStats {
        self.batches.stats()
    }

    /// Drops a partial frame, e.g. after reconnecting; counters are kept,
    /// and the next stream may again start inside a frame (and decodes
    /// events again from the kernel's next sync point).
    pub fn reset(&mut self) {
        self.frames.reset();
        self.batches.reset();
        self.synced = false;
    }

    /// Partial frames skipped at the start of a stream (or after a reset):
    /// the ends of frames sent before this client listened.
    pub fn joined_mid_frame(&self) -> u64 {
        self.joined_mid_frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_proto::batch::{BatchEncoder, Push};
    use probe_proto::{
        EventBatch, FrameOwner, Heartbeat, Hello, Log, LogLevel, PageEvent, encode_frame,
        frame::MAX_FRAME,
    };

    fn frame(msg: &KernelMsg<'_>) -> Vec<u8> {
        let mut out = [0u8; MAX_FRAME];
        encode_frame(msg, &mut out).unwrap().to_vec()
    }

    fn hello(major: u16, minor: u16) -> KernelMsg<'static> {
        KernelMsg::Hello(Hello {
            version: Version { major, minor },
            build_id: "test".into(),
            mem_total_bytes: 1 << 27,
            mem_usable_bytes: 1 << 26,
            nr_regions: 0,
            features: 0,
            cmdline: "".into(),
            uptime_us: 1,
            tsc_hz: 2_000_000_000,
        })
    }

    #[test]
    fn recorded_stream_with_garbage_between_frames_yields_every_message_and_counts_the_garbage() {
        let log = KernelMsg::Log(Log {
            ts_us: 10,
            level: LogLevel::Info,
            text: "héllo → wörld".into(),
        });
        let beat = KernelMsg::Heartbeat(Heartbeat {
            ts_us: 20,
            rx_frames: 1,
            rx_bad: 0,
            tx_dropped: 0,
        });
        let mut stream = b"\x01\x02garbage\x00".to_vec(); // one bad frame
        stream.extend(frame(&log));
        stream.extend(b"\xff\xfe\x00\x00"); // one bad frame, then idle fill
        stream.extend(frame(&beat));
        stream.extend(b"partial tail without terminator");

        let mut dec = Decoder::new();
        // Feed in uneven chunks, as reads from a socket arrive.
        let results: Vec<_> = stream
            .chunks(7)
            .flat_map(|c| dec.feed(c).collect::<Vec<_>>())
            .collect();

        let msgs: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            msgs,
            vec![
                &Msg::Log(Log {
                    ts_us: 10,
                    level: LogLevel::Info,
                    text: "héllo → wörld".into()
                }),
                &beat
            ]
        );
        let bad = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(bad, 2);
        assert_eq!(dec.stats().frames, 2);
        assert_eq!(dec.stats().bad(), 2);
    }

    #[test]
    fn hello_with_same_major_and_newer_minor_is_accepted() {
        let mut dec = Decoder::new();
        let got: Vec<_> = dec.feed(&frame(&hello(2, 7))).collect();
        assert!(matches!(got.as_slice(), [Ok(Msg::Hello(h))] if h.version.minor == 7));
    }

    #[test]
    fn hello_with_another_major_is_refused_with_both_versions_named() {
        let mut dec = Decoder::new();
        let got: Vec<_> = dec.feed(&frame(&hello(3, 0))).collect();
        let err = DecodeError::Incompatible {
            kernel: Version { major: 3, minor: 0 },
            host: PROTOCOL_VERSION,
        };
        assert_eq!(got, vec![Err(err)]);
        assert_eq!(
            err.to_string(),
            format!(
                "kernel speaks protocol 3.0, this mmtop speaks {}.{} (any {}.x); use a matching mmtop",
                PROTOCOL_VERSION.major, PROTOCOL_VERSION.minor, PROTOCOL_VERSION.major
            )
        );
    }

    /// The Hello of a 1.x kernel has fewer fields than ours, so it does not
    /// decode; its version still does, and is named.
    #[test]
    fn a_1_4_hello_that_does_not_decode_is_refused_naming_its_version() {
        #[derive(serde::Serialize)]
        enum OldMsg {
            Hello {
                version: Version,
                build_id: &'static str,
                mem_total_bytes: u64,
                mem_usable_bytes: u64,
                nr_regions: u16,
                features: u32,
                cmdline: &'static str,
                uptime_us: u64,
            },
        }
        let old = OldMsg::Hello {
            version: Version { major: 1, minor: 4 },
            build_id: "old",
            mem_total_bytes: 1 << 27,
            mem_usable_bytes: 1 << 26,
            nr_regions: 0,
            features: 0,
            cmdline: "",
            uptime_us: 7,
        };
        let mut out = [0u8; MAX_FRAME];
        let bytes = encode_frame(&old, &mut out).unwrap().to_vec();
        let got: Vec<_> = Decoder::new().feed(&bytes).collect();
        assert_eq!(
            got,
            vec![Err(DecodeError::Incompatible {
                kernel: Version { major: 1, minor: 4 },
                host: PROTOCOL_VERSION,
            })]
        );
    }

    fn batch_frames(events: &[KernelMsg<'static>], per_batch: usize) -> Vec<Vec<u8>> {
        let mut enc = Box::new(BatchEncoder::new());
        let mut frames = Vec::new();
        for chunk in events.chunks(per_batch) {
            for e in chunk {
                assert_eq!(enc.push(e), Push::Added);
            }
            let body = enc.finish().unwrap().to_vec();
            frames.push(frame(&KernelMsg::EventBatch(EventBatch {
                body: body.into(),
            })));
        }
        frames
    }

    fn page_alloc(i: u64) -> KernelMsg<'static> {
        KernelMsg::PageAlloc(PageEvent {
            ts_us: 100 + i,
            addr: 0x10_0000 + i * 4096,
            count: 1,
            owner: FrameOwner::PageTable,
            caller: 0xffff_ffff_8000_1234,
        })
    }

    #[test]
    fn an_event_batch_yields_its_events_in_order() {
        let events: Vec<_> = (0..10).map(page_alloc).collect();
        let mut dec = Decoder::new();
        let got: Vec<_> = batch_frames(&events, 4)
            .iter()
            .flat_map(|f| dec.feed(f).collect::<Vec<_>>())
            .collect();
        assert_eq!(got, events.into_iter().map(Ok).collect::<Vec<_>>());
        assert_eq!(dec.batch_stats().events, 10);
    }

    #[test]
    fn a_lost_batch_is_reported_with_the_events_skipped_until_the_next_sync_point() {
        let events: Vec<_> = (0..9).map(page_alloc).collect();
        let frames = batch_frames(&events, 3);
        let mut dec = Decoder::new();
        let mut got: Vec<_> = dec.feed(&frames[0]).collect();
        // The second batch is lost; the third cannot be decoded.
        got.extend(dec.feed(&frames[2]));
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[..3].iter().all(Result::is_ok));
        assert!(
            matches!(got[3], Err(DecodeError::EventsSkipped { events: 3, .. })),
            "{got:?}"
        );
        assert_eq!(
            got[3].as_ref().unwrap_err().to_string(),
            "skipped 3 events until the next sync point (batches 1 to 1 lost)"
        );
    }

    #[test]
    fn bad_frame_error_says_why_it_was_skipped() {
        let mut bytes = frame(&KernelMsg::Log(Log {
            ts_us: 10,
            level: LogLevel::Info,
            text: "abc".into(),
        }));
        // One COBS block (no zero in payload or CRC), so byte 3 is payload,
        // not a code byte: flipping it is caught by the CRC alone.
        assert_eq!(usize::from(bytes[0]), bytes.len() - 1);
        bytes[3] ^= 0x40;
        let mut dec = Decoder::new();
        let got: Vec<_> = dec.feed(&bytes).collect();
        assert_eq!(got, vec![Err(DecodeError::BadFrame(FrameError::Crc))]);
        assert_eq!(
            got[0].as_ref().unwrap_err().to_string(),
            "skipped corrupt frame (crc mismatch)"
        );
    }

    #[test]
    fn reset_drops_a_partial_frame_so_the_next_frame_decodes() {
        let bytes = frame(&hello(2, 0));
        let mut dec = Decoder::new();
        assert_eq!(dec.feed(&bytes[..bytes.len() / 2]).count(), 0);
        dec.reset();
        let got: Vec<_> = dec.feed(&bytes).collect();
        assert!(matches!(got.as_slice(), [Ok(Msg::Hello(_))]));
        assert_eq!(dec.stats().bad(), 0);
    }

    #[test]
    fn the_tail_of_a_frame_before_the_first_boundary_is_not_reported() {
        let beat = KernelMsg::Heartbeat(Heartbeat {
            ts_us: 20,
            rx_frames: 1,
            rx_bad: 0,
            tx_dropped: 0,
        });
        let whole = frame(&beat);
        // Joined in the middle of a frame, then two whole ones.
        let mut bytes = whole[whole.len() / 2..].to_vec();
        bytes.extend(&whole);
        bytes.extend(&whole);
        let mut dec = Decoder::joining();
        let got: Vec<_> = dec.feed(&bytes).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(Result::is_ok));
        assert_eq!(dec.joined_mid_frame(), 1);

        // Corruption after the first boundary is reported.
        let mut bad = whole.clone();
        bad[1] ^= 0x40;
        let got: Vec<_> = dec.feed(&bad).collect();
        assert!(
            matches!(got[..], [Err(DecodeError::BadFrame(_))]),
            "{got:?}"
        );
    }
}
