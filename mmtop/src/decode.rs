//! Bytes to owned messages: framing, protocol-version check, counters.
//!
//! [`Decoder`] wraps `probe_proto::FrameDecoder`, copies each message out of
//! its buffer ([`KernelMsg::into_owned`]) into a [`Msg`], and refuses a kernel whose `Hello` announces an
//! incompatible protocol major version.

use probe_proto::{DecodeStats, FrameDecoder, FrameError, KernelMsg, PROTOCOL_VERSION, Version};

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
        "kernel speaks protocol {}.{}, this mmtop speaks {}.{}; use a matching mmtop",
        kernel.major, kernel.minor, host.major, host.minor
    )]
    Incompatible {
        /// What the kernel speaks.
        kernel: Version,
        /// What this mmtop speaks.
        host: Version,
    },
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

/// Turns the kernel's byte stream into messages.
///
/// A client that joins a busy live link usually lands inside a frame: the
/// bytes before the first frame boundary are the tail of a frame sent
/// before it listened, expected rather than corrupt. A decoder made with
/// [`joining`](Self::joining) counts such a first frame in
/// [`joined_mid_frame`](Self::joined_mid_frame) instead of reporting it.
#[derive(Default)]
pub struct Decoder {
    frames: FrameDecoder,
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

    /// Takes one byte; returns a result when the byte ends a frame.
    pub fn push(&mut self, byte: u8) -> Option<Result<Msg, DecodeError>> {
        let synced = self.synced || byte == 0;
        let result = self.frames.push::<KernelMsg>(byte);
        let first = !self.synced;
        self.synced = synced;
        let result = result?;
        if first && result.is_err() {
            self.joined_mid_frame += 1;
            return None;
        }
        Some(match result {
            Ok(KernelMsg::Hello(h)) if !h.version.is_compatible_with(PROTOCOL_VERSION) => {
                Err(DecodeError::Incompatible {
                    kernel: h.version,
                    host: PROTOCOL_VERSION,
                })
            }
            Ok(msg) => Ok(msg.into_owned()),
            Err(e) => Err(DecodeError::BadFrame(e)),
        })
    }

    /// Takes a chunk of bytes; yields a result for every frame it ends.
    pub fn feed<'a>(
        &'a mut self,
        bytes: &'a [u8],
    ) -> impl Iterator<Item = Result<Msg, DecodeError>> + 'a {
        bytes.iter().filter_map(|&b| self.push(b))
    }

    /// Good and bad frames so far.
    pub fn stats(&self) -> DecodeStats {
        self.frames.stats()
    }

    /// Drops a partial frame, e.g. after reconnecting; counters are kept,
    /// and the next stream may again start inside a frame.
    pub fn reset(&mut self) {
        self.frames.reset();
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
    use probe_proto::{Heartbeat, Hello, Log, LogLevel, encode_frame, frame::MAX_FRAME};

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
        let got: Vec<_> = dec.feed(&frame(&hello(1, 7))).collect();
        assert!(matches!(got.as_slice(), [Ok(Msg::Hello(h))] if h.version.minor == 7));
    }

    #[test]
    fn hello_with_another_major_is_refused_with_both_versions_named() {
        let mut dec = Decoder::new();
        let got: Vec<_> = dec.feed(&frame(&hello(2, 0))).collect();
        let err = DecodeError::Incompatible {
            kernel: Version { major: 2, minor: 0 },
            host: PROTOCOL_VERSION,
        };
        assert_eq!(got, vec![Err(err)]);
        assert_eq!(
            err.to_string(),
            format!(
                "kernel speaks protocol 2.0, this mmtop speaks {}.{}; use a matching mmtop",
                PROTOCOL_VERSION.major, PROTOCOL_VERSION.minor
            )
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
        let bytes = frame(&hello(1, 0));
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
