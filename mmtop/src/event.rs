//! Link events and the reader thread that produces them.
//!
//! One thread owns the link's reading half, decodes, and sends [`LinkEvent`]s
//! over a channel. The consumer (the headless commands now, the TUI later)
//! waits on that channel alongside its other events, so no part of mmtop
//! blocks on the wire.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::thread::{self, JoinHandle};

use probe_proto::DecodeStats;

use crate::Msg;
use crate::decode::{DecodeError, Decoder};
use crate::link::LinkReader;

/// Something that happened on the link.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a message (a MemoryStats at most, a few hundred bytes) is moved once through a \
              channel; boxing it would allocate for every message"
)]
pub enum LinkEvent {
    /// A decoded kernel message.
    Msg(Msg),
    /// A frame that produced no message; decoding goes on after it.
    Error(DecodeError),
    /// The link ended: end of file, the peer closed, or a read failed. The
    /// reader thread sends nothing after this.
    Closed {
        /// Frame counters over the link's whole life.
        stats: DecodeStats,
        /// The read error that ended it; `None` for a clean end of stream.
        error: Option<io::Error>,
    },
}

/// Spawns the reader thread: reads `reader` until it ends, sending one event
/// per frame and a final [`LinkEvent::Closed`].
///
/// `T` lets a caller with a larger event enum (keys, ticks, ...) receive link
/// events on its one channel. The thread also ends when the receiver is gone.
pub fn spawn_reader<R, T>(reader: R, tx: Sender<T>) -> io::Result<JoinHandle<()>>
where
    R: Read + Send + 'static,
    T: From<LinkEvent> + Send + 'static,
{
    spawn_decoding(reader, tx, Decoder::new(), None)
}

/// [`spawn_reader`] for an opened link: a live one may be joined in the
/// middle of a frame, which is then not reported as corrupt.
pub fn spawn_link_reader<T>(reader: LinkReader, tx: Sender<T>) -> io::Result<JoinHandle<()>>
where
    T: From<LinkEvent> + Send + 'static,
{
    spawn_counting_link_reader(reader, tx, None)
}

/// [`spawn_link_reader`] that also adds every byte it reads to `bytes`,
/// for a link rate: one atomic add per read, not per message.
pub fn spawn_counting_link_reader<T>(
    reader: LinkReader,
    tx: Sender<T>,
    bytes: Option<Arc<AtomicU64>>,
) -> io::Result<JoinHandle<()>>
where
    T: From<LinkEvent> + Send + 'static,
{
    let decoder = if reader.is_live() {
        Decoder::joining()
    } else {
        Decoder::new()
    };
    spawn_decoding(reader, tx, decoder, bytes)
}

fn spawn_decoding<R, T>(
    mut reader: R,
    tx: Sender<T>,
    decoder: Decoder,
    bytes: Option<Arc<AtomicU64>>,
) -> io::Result<JoinHandle<()>>
where
    R: Read + Send + 'static,
    T: From<LinkEvent> + Send + 'static,
{
    thread::Builder::new()
        .name("mmtop-link-reader".into())
        .spawn(move || {
            let mut decoder = decoder;
            let mut buf = [0u8; 4096];
            let error = loop {
                match reader.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => {
                        if let Some(bytes) = &bytes {
                            bytes.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        for result in decoder.feed(&buf[..n]) {
                            let event = match result {
                                Ok(msg) => LinkEvent::Msg(msg),
                                Err(e) => LinkEvent::Error(e),
                            };
                            if tx.send(event.into()).is_err() {
                                return; // Nobody is listening any more.
                            }
                        }
                    }
                    // A serial port's read wakes up periodically with no data;
                    // that is not the end of the link.
                    Err(e) if is_transient(&e) => {}
                    Err(e) => break Some(e),
                }
            };
            let _ = tx.send(
                LinkEvent::Closed {
                    stats: decoder.stats(),
                    error,
                }
                .into(),
            );
        })
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_proto::{KernelMsg, Pong, encode_frame, frame::MAX_FRAME};
    use std::sync::mpsc;

    /// A reader that fails once with a transient error before its data.
    struct Hiccup {
        hiccuped: bool,
        data: io::Cursor<Vec<u8>>,
    }

    impl Read for Hiccup {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.hiccuped {
                self.hiccuped = true;
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.data.read(buf)
        }
    }

    #[test]
    fn reader_thread_sends_messages_bad_frames_then_closed_with_counters() {
        let mut out = [0u8; MAX_FRAME];
        let pong = KernelMsg::Pong(Pong { nonce: 9, ts_us: 3 });
        let mut bytes = b"junk\x00".to_vec();
        bytes.extend(encode_frame(&pong, &mut out).unwrap());
        let reader = Hiccup {
            hiccuped: false,
            data: io::Cursor::new(bytes),
        };

        let (tx, rx) = mpsc::channel();
        spawn_reader(reader, tx).unwrap().join().unwrap();
        let events: Vec<LinkEvent> = rx.iter().collect();

        assert!(matches!(
            events[0],
            LinkEvent::Error(DecodeError::BadFrame(_))
        ));
        assert!(matches!(&events[1], LinkEvent::Msg(m) if *m == pong));
        match &events[2] {
            LinkEvent::Closed { stats, error } => {
                assert_eq!((stats.frames, stats.bad()), (1, 1));
                assert!(error.is_none(), "a timeout is not the end of the link");
            }
            other => panic!("expected Closed, got {other:?}"),
        }
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn read_error_closes_the_link_and_is_reported() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
        }
        let (tx, rx) = mpsc::channel();
        spawn_reader(Broken, tx).unwrap().join().unwrap();
        let events: Vec<LinkEvent> = rx.iter().collect();
        assert!(matches!(
            events.as_slice(),
            [LinkEvent::Closed { error: Some(e), .. }] if e.kind() == io::ErrorKind::ConnectionReset
        ));
    }
}
