//! Recordings: the kernel's byte stream with host timestamps, and its replay.
//!
//! # The container (`mmtop record -o FILE`)
//!
//! ```text
//! "mmtop-rec 1\n"                      12 bytes of magic (format version 1)
//! then records, back to back, to the end of the file:
//!   u64 little-endian  microseconds since the recording started
//!                      (the arrival of the kernel's Hello, so the first
//!                      record is at 0); never decreasing
//!   u32 little-endian  length of the bytes that follow
//!   [u8; length]       bytes exactly as read from the link: the kernel's
//!                      COBS frames, unchanged, cut wherever a read ended
//! ```
//!
//! A record holds whatever one read of the link returned, so a frame may
//! span records; only the concatenation of the bytes is the stream. The
//! stream starts at the frame of the kernel's `Hello`. A file that does not
//! start with the magic is a raw capture of the bytes (the older form of
//! `file:PATH`) and is replayed as such, all at once. A record cut short at
//! the end of the file (mmtop killed while writing) is reported as a read
//! error after every whole record has been replayed.
//!
//! # Replay
//!
//! [`Replay`] is a `Read` of the bytes in the records that waits until each
//! record is due: at its recorded time divided by the speed, counted from
//! the start (or from `--at`). Records before `--at` are either delivered
//! at once (the TUI applies them to its model) or dropped (`mmtop log`
//! skips them, keeping the start of a frame that ends after `--at`). A
//! shared [`ReplayControl`] pauses it and changes its speed while it runs.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first bytes of a recording: name and format version.
pub const MAGIC: &[u8; 12] = b"mmtop-rec 1\n";

/// Bytes of a record's header: time and length.
pub const RECORD_HEADER: usize = 12;

/// The largest record accepted when reading; larger is taken as damage.
pub const MAX_RECORD: u32 = 16 << 20;

/// How long a paused or waiting replay sleeps before looking again at its
/// control (so pause, speed and quitting act promptly).
const POLL: Duration = Duration::from_millis(20);

/// Writes a recording: the magic, then one record per [`write`](Self::write).
pub struct RecordWriter<W: Write> {
    out: W,
}

impl<W: Write> RecordWriter<W> {
    /// Starts a recording on `out` by writing the magic.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(RecordWriter { out })
    }

    /// Appends one record: `bytes` read at `t_us` microseconds since start.
    pub fn write(&mut self, t_us: u64, bytes: &[u8]) -> io::Result<()> {
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD)
            .ok_or_else(|| io::Error::other("record larger than MAX_RECORD"))?;
        self.out.write_all(&t_us.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(bytes)
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The writer, after a flush.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One record: when its bytes were read and the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Microseconds since the recording started.
    pub t_us: u64,
    /// The link's bytes.
    pub bytes: Vec<u8>,
}

/// Why the records of a recording stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be read.
    #[error("cannot read the recording: {0}")]
    Io(#[from] io::Error),
    /// The file ends inside a record (the recorder was stopped while
    /// writing it); every record before it was whole.
    #[error("recording truncated: the record at byte {offset} has {have} of its {need} bytes")]
    Truncated {
        /// Offset of the record in the file.
        offset: u64,
        /// Bytes present, header included.
        have: u64,
        /// Bytes the header announces, header included.
        need: u64,
    },
    /// A record's length is beyond [`MAX_RECORD`]: the file is damaged.
    #[error("recording damaged: the record at byte {offset} claims {len} bytes")]
    TooLarge {
        /// Offset of the record in the file.
        offset: u64,
        /// The length it claims.
        len: u32,
    },
}

impl From<RecordError> for io::Error {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Io(e) => e,
            e => io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()),
        }
    }
}

/// Reads the records of a recording whose magic was already read.
pub struct RecordReader<R: Read> {
    input: R,
    offset: u64,
}

impl<R: Read> RecordReader<R> {
    /// Reads records from `input`, positioned just after the magic.
    pub fn new(input: R) -> Self {
        RecordReader {
            input,
            offset: MAGIC.len() as u64,
        }
    }

    /// The next record; `None` at a clean end of the file.
    pub fn next_record(&mut self) -> Result<Option<Record>, RecordError> {
        let mut header = [0u8; RECORD_HEADER];
        let have = read_full(&mut self.input, &mut header)?;
        if have == 0 {
            return Ok(None);
        }
        let offset = self.offset;
        if have < RECORD_HEADER {
            return Err(RecordError::Truncated {
                offset,
                have: have as u64,
                need: RECORD_HEADER as u64,
            });
        }
        let (t, len) = header.split_at(8);
        let t_us = u64::from_le_bytes(t.try_into().unwrap_or_default());
        let len = u32::from_le_bytes(len.try_into().unwrap_or_default());
        if len > MAX_RECORD {
            return Err(RecordError::TooLarge { offset, len });
        }
        let mut bytes = vec![0u8; len as usize];
        let got = read_full(&mut self.input, &mut bytes)?;
        if got < bytes.len() {
            return Err(RecordError::Truncated {
                offset,
                have: (RECORD_HEADER + got) as u64,
                need: RECORD_HEADER as u64 + u64::from(len),
            });
        }
        self.offset += (RECORD_HEADER + bytes.len()) as u64;
        Ok(Some(Record { t_us, bytes }))
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What a file turned out to be.
pub enum Sniffed<R: Read> {
    /// A recording: its records.
    Recording(RecordReader<R>),
    /// Anything else: its bytes from the start, to replay raw.
    Raw(io::Chain<Cursor<Vec<u8>>, R>),
}

/// Reads the start of `input` to tell a recording from a raw capture.
pub fn sniff<R: Read>(mut input: R) -> io::Result<Sniffed<R>> {
    let mut head = vec![0u8; MAGIC.len()];
    let n = read_full(&mut input, &mut head)?;
    head.truncate(n);
    Ok(if head == MAGIC {
        Sniffed::Recording(RecordReader::new(input))
    } else {
        Sniffed::Raw(Cursor::new(head).chain(input))
    })
}

/// Pause and speed of a running replay, shared with the one who shows it.
#[derive(Debug)]
pub struct ReplayControl {
    state: Mutex<ControlState>,
    position_us: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct ControlState {
    paused: bool,
    /// `None`: as fast as possible.
    speed: Option<f64>,
    /// Bumped on every change, so the replay re-anchors its clock.
    generation: u64,
}

impl ReplayControl {
    /// A control for a replay at `speed` (`None`: as fast as possible).
    pub fn new(speed: Option<f64>) -> Arc<ReplayControl> {
        Arc::new(ReplayControl {
            state: Mutex::new(ControlState {
                paused: false,
                speed,
                generation: 0,
            }),
            position_us: AtomicU64::new(0),
        })
    }

    fn get(&self) -> ControlState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn change(&self, f: impl FnOnce(&mut ControlState)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
        s.generation += 1;
    }

    /// Whether the replay is paused.
    pub fn paused(&self) -> bool {
        self.get().paused
    }

    /// Pauses a running replay, resumes a paused one.
    pub fn toggle_pause(&self) {
        self.change(|s| s.paused = !s.paused);
    }

    /// The speed (`None`: as fast as possible).
    pub fn speed(&self) -> Option<f64> {
        self.get().speed
    }

    /// Doubles (`faster`) or halves the speed, within 1/64 to 64; a replay
    /// as fast as possible stays so.
    pub fn step_speed(&self, faster: bool) {
        self.change(|s| {
            if let Some(v) = s.speed.as_mut() {
                *v = if faster { *v * 2.0 } else { *v / 2.0 }.clamp(1.0 / 64.0, 64.0);
            }
        });
    }

    /// Recorded time of the last record delivered, in microseconds.
    pub fn position(&self) -> Duration {
        Duration::from_micros(self.position_us.load(Ordering::Relaxed))
    }
}

/// How to replay a recording.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Seek: records before this are not waited for.
    pub at: Duration,
    /// Drop the records before `at` instead of delivering them at once.
    pub skip_before: bool,
    /// Pause and speed; `None` replays as fast as possible.
    pub control: Option<Arc<ReplayControl>>,
}

/// A `Read` of a recording's bytes, paced as [`ReplayOptions`] say.
pub struct Replay<R: Read> {
    records: RecordReader<R>,
    options: ReplayOptions,
    /// Bytes of the current record not yet read.
    pending: Vec<u8>,
    pos: usize,
    /// The start of a frame in skipped records, kept for the first record
    /// delivered.
    carry: Vec<u8>,
    /// Wall time and recorded time that correspond.
    anchor: Option<(Instant, u64, u64)>,
    done: bool,
}

impl<R: Read> Replay<R> {
    /// Replays `records`.
    pub fn new(records: RecordReader<R>, options: ReplayOptions) -> Self {
        Replay {
            records,
            options,
            pending: Vec::new(),
            pos: 0,
            carry: Vec::new(),
            anchor: None,
            done: false,
        }
    }

    /// Waits until the record at `t_us` is due.
    fn wait_for(&mut self, t_us: u64) {
        let Some(control) = self.options.control.clone() else {
            return;
        };
        let at_us = u64::try_from(self.options.at.as_micros()).unwrap_or(u64::MAX);
        loop {
            let s = control.get();
            if s.paused {
                self.anchor = None;
                std::thread::sleep(POLL);
                continue;
            }
            let Some(speed) = s.speed.filter(|v| *v > 0.0) else {
                return;
            };
            if t_us < at_us {
                return;
            }
            let (since, from, generation) = *self.anchor.get_or_insert_with(|| {
                let last = control.position_us.load(Ordering::Relaxed);
                (Instant::now(), last.max(at_us).min(t_us), s.generation)
            });
            if generation != s.generation {
                self.anchor = None;
                continue;
            }
            let due = since + Duration::from_secs_f64((t_us - from) as f64 / 1e6 / speed);
            let now = Instant::now();
            if now >= due {
                return;
            }
            std::thread::sleep((due - now).min(POLL));
        }
    }

    /// Loads the next record to deliver; false at the end.
    fn load(&mut self) -> io::Result<bool> {
        let at_us = u64::try_from(self.options.at.as_micros()).unwrap_or(u64::MAX);
        loop {
            let Some(record) = self.records.next_record()? else {
                return Ok(false);
            };
            if self.options.skip_before && record.t_us < at_us {
                match record.bytes.iter().rposition(|&b| b == 0) {
                    Some(end) => {
                        self.carry.clear();
                        self.carry.extend_from_slice(&record.bytes[end + 1..]);
                    }
                    None => self.carry.extend_from_slice(&record.bytes),
                }
                continue;
            }
            self.wait_for(record.t_us);
            if let Some(c) = &self.options.control {
                c.position_us.store(record.t_us, Ordering::Relaxed);
            }
            self.pending = std::mem::take(&mut self.carry);
            self.pending.extend_from_slice(&record.bytes);
            self.pos = 0;
            return Ok(true);
        }
    }
}

impl<R: Read> Read for Replay<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.pending.len() {
            if self.done {
                return Ok(0);
            }
            match self.load() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return Ok(0);
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Opens `path` for `file:PATH`: a recording is replayed as `options` say,
/// any other file is read raw.
pub fn open_file(path: &Path, options: &ReplayOptions) -> io::Result<Box<dyn Read + Send>> {
    let file = BufReader::new(File::open(path)?);
    Ok(match sniff(file)? {
        Sniffed::Recording(records) => Box::new(Replay::new(records, options.clone())),
        Sniffed::Raw(raw) => Box::new(raw),
    })
}

/// Parses a position in a recording: `30`, `30s`, `1.5s`, `250ms` or `2m`.
pub fn parse_position(s: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a time such as 30, 30s, 250ms or 2m"))?;
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("'{s}' is not a usable time (must be >= 0 and finite)"))
}

/// Parses a replay speed: a positive number (1 recorded speed, 2 twice as
/// fast).
pub fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a speed (a positive number, 1 = as recorded)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut w = RecordWriter::new(Vec::new()).unwrap();
        for (t, b) in records {
            w.write(*t, b).unwrap();
        }
        w.into_inner().unwrap()
    }

    fn replay_all(bytes: Vec<u8>, options: ReplayOptions) -> (Vec<u8>, Option<io::Error>) {
        let Sniffed::Recording(records) = sniff(Cursor::new(bytes)).unwrap() else {
            panic!("not a recording");
        };
        let mut replay = Replay::new(records, options);
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            match replay.read(&mut buf) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn container_round_trips_records_and_starts_with_the_magic() {
        let bytes = recording(&[(0, b"\x01\x02\x00"), (1500, b""), (u64::MAX, b"abc")]);
        assert!(bytes.starts_with(b"mmtop-rec 1\n"));
        assert_eq!(bytes.len(), 12 + 3 * 12 + 3 + 3);
        let Sniffed::Recording(records) = sniff(Cursor::new(bytes)).unwrap() else {
            panic!("not a recording");
        };
        let records: Vec<Record> = records.map(Result::unwrap).collect();
        assert_eq!(
            records,
            [
                Record {
                    t_us: 0,
                    bytes: b"\x01\x02\x00".to_vec()
                },
                Record {
                    t_us: 1500,
                    bytes: Vec::new()
                },
                Record {
                    t_us: u64::MAX,
                    bytes: b"abc".to_vec()
                },
            ]
        );
    }

    #[test]
    fn truncated_last_record_is_reported_after_the_whole_ones() {
        let mut bytes = recording(&[(0, b"first\x00"), (10, b"second\x00")]);
        bytes.truncate(bytes.len() - 2);
        let Sniffed::Recording(mut records) = sniff(Cursor::new(bytes.clone())).unwrap() else {
            panic!("not a recording");
        };
        assert_eq!(records.next_record().unwrap().unwrap().bytes, b"first\x00");
        let err = records.next_record().unwrap_err();
        assert!(
            matches!(
                err,
                RecordError::Truncated {
                    offset: 30,
                    have: 17,
                    need: 19
                }
            ),
            "{err:?}"
        );

        // Replayed: the whole records' bytes, then a read error saying why.
        let (out, err) = replay_all(bytes, ReplayOptions::default());
        assert_eq!(out, b"first\x00");
        let err = err.expect("truncation reported");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("recording truncated"), "{err}");

        // A header cut short is truncation too.
        let mut bytes = recording(&[(0, b"x")]);
        bytes.extend_from_slice(&[1, 2, 3]);
        let (out, err) = replay_all(bytes, ReplayOptions::default());
        assert_eq!(out, b"x");
        assert!(err.unwrap().to_string().contains("has 3 of its 12 bytes"));
    }

    #[test]
    fn a_file_without_the_magic_is_raw_bytes_from_its_start() {
        for raw in [&b""[..], b"\x03ab\x00", b"mmtop-rec 2\nmore bytes"] {
            let Sniffed::Raw(mut r) = sniff(Cursor::new(raw.to_vec())).unwrap() else {
                panic!("{raw:?} taken for a recording");
            };
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, raw);
        }
    }

    #[test]
    fn skipping_before_at_keeps_the_start_of_a_frame_that_ends_after_it() {
        // Frames "A\0", "BB\0" (split over two records) and "C\0".
        let bytes = recording(&[(0, b"A\0B"), (2_000_000, b"B\0"), (3_000_000, b"C\0")]);
        let skip = |at| ReplayOptions {
            at,
            skip_before: true,
            control: None,
        };
        assert_eq!(
            replay_all(bytes.clone(), skip(Duration::ZERO)).0,
            b"A\0BB\0C\0"
        );
        assert_eq!(
            replay_all(bytes.clone(), skip(Duration::from_secs(1))).0,
            b"BB\0C\0"
        );
        assert_eq!(
            replay_all(bytes.clone(), skip(Duration::from_millis(2500))).0,
            b"C\0"
        );
        assert_eq!(
            replay_all(bytes.clone(), skip(Duration::from_secs(9))).0,
            b""
        );
        // Not skipping: everything, whatever `at`.
        let mut keep = skip(Duration::from_secs(9));
        keep.skip_before = false;
        assert_eq!(replay_all(bytes, keep).0, b"A\0BB\0C\0");
    }

    #[test]
    fn replay_waits_for_recorded_time_scaled_by_speed_but_not_before_at() {
        let bytes = recording(&[(0, b"a"), (5_000_000, b"b"), (5_200_000, b"c")]);
        let control = ReplayControl::new(Some(2.0));
        let options = ReplayOptions {
            at: Duration::from_secs(5),
            skip_before: false,
            control: Some(control.clone()),
        };
        let started = Instant::now();
        let (out, err) = replay_all(bytes, options);
        let took = started.elapsed();
        assert!(err.is_none());
        assert_eq!(out, b"abc");
        // 0 -> 5 s not waited for (before --at), 5 -> 5.2 s at twice the speed.
        assert!(took >= Duration::from_millis(95), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(control.position(), Duration::from_micros(5_200_000));
    }

    #[test]
    fn control_pauses_and_steps_the_speed() {
        let c = ReplayControl::new(Some(1.0));
        c.step_speed(true);
        c.step_speed(true);
        assert_eq!(c.speed(), Some(4.0));
        c.step_speed(false);
        assert_eq!(c.speed(), Some(2.0));
        for _ in 0..20 {
            c.step_speed(true);
        }
        assert_eq!(c.speed(), Some(64.0));
        assert!(!c.paused());
        c.toggle_pause();
        assert!(c.paused());
        let fast = ReplayControl::new(None);
        fast.step_speed(false);
        assert_eq!(fast.speed(), None);
    }

    #[test]
    fn positions_and_speeds_parse() {
        assert_eq!(parse_position("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_position("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_position("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_position("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_position("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_position("-1s").is_err());
        assert!(parse_position("soon").is_err());
        assert_eq!(parse_speed("0.5"), Ok(0.5));
        assert!(parse_speed("0").is_err());
        assert!(parse_speed("inf").is_err());
    }
}
