//! Framing: postcard + CRC-16 + COBS + `0x00` (see the crate docs for the bytes).
//!
//! [`encode_frame`] turns a message into one frame in a caller buffer;
//! [`FrameDecoder`] takes bytes one at a time, as they come off a UART or a
//! socket, and yields messages. The decoder never panics: anything that is not
//! a valid frame is counted in [`DecodeStats`] and skipped up to the next
//! `0x00`.

use crc::{CRC_16_IBM_3740, Crc};
use serde::{Deserialize, Serialize};

/// The frame check sequence.
const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_3740);

/// Largest postcard payload a frame carries (without CRC).
pub const MAX_PAYLOAD: usize = 1024;

/// Largest encoded frame, terminator included.
pub const MAX_FRAME: usize = cobs::max_encoding_length(MAX_PAYLOAD + 2) + 1;

/// Why a frame could not be produced or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The message does not fit in [`MAX_PAYLOAD`] or the output buffer.
    TooLong,
    /// The bytes between two terminators are not valid COBS.
    Cobs,
    /// The CRC does not match: the frame was corrupted.
    Crc,
    /// The frame is intact but its message does not decode (unknown
    /// variant from a newer peer, or garbage that happened to pass the CRC).
    Message,
}

/// Encodes `msg` as one frame into `out` and returns the frame's bytes,
/// terminator included.
pub fn encode_frame<'o, M: Serialize>(msg: &M, out: &'o mut [u8]) -> Result<&'o [u8], FrameError> {
    let mut payload = [0u8; MAX_PAYLOAD + 2];
    let len = postcard::to_slice(msg, &mut payload[..MAX_PAYLOAD])
        .map_err(|_| FrameError::TooLong)?
        .len();
    let crc = CRC16.checksum(&payload[..len]);
    payload[len..len + 2].copy_from_slice(&crc.to_le_bytes());
    let n = cobs::try_encode(&payload[..len + 2], out).map_err(|_| FrameError::TooLong)?;
    let terminator = out.get_mut(n).ok_or(FrameError::TooLong)?;
    *terminator = 0;
    Ok(&out[..=n])
}

/// What a [`FrameDecoder`] has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames decoded into a message.
    pub frames: u64,
    /// Frames longer than the decoder's buffer, dropped.
    pub too_long: u64,
    /// Frames that were not valid COBS.
    pub cobs_errors: u64,
    /// Frames whose CRC did not match.
    pub crc_errors: u64,
    /// Intact frames whose message did not decode.
    pub message_errors: u64,
}

impl DecodeStats {
    /// All rejected frames.
    pub fn bad(&self) -> u64 {
        self.too_long + self.cobs_errors + self.crc_errors + self.message_errors
    }
}

/// Reassembles frames from a byte stream; `N` bounds the encoded frame size.
pub struct FrameDecoder<const N: usize = MAX_FRAME> {
    buf: [u8; N],
    len: usize,
    /// Bytes of the last frame's message that passed its CRC, at the start
    /// of `buf` until the next byte arrives.
    last_payload: usize,
    /// The current frame outgrew `buf`: discard up to the next terminator.
    overflowed: bool,
    stats: DecodeStats,
}

impl<const N: usize> Default for FrameDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameDecoder<N> {
    /// An empty decoder.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            last_payload: 0,
            overflowed: false,
            stats: DecodeStats {
                frames: 0,
                too_long: 0,
                cobs_errors: 0,
                crc_errors: 0,
                message_errors: 0,
            },
        }
    }

    /// Counters of good and bad frames so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// The message bytes (postcard) of the frame the last byte ended, if
    /// it passed its CRC: what a reader looks into when the message did not
    /// decode (a `Hello` of another protocol version, see
    /// [`hello_version`](crate::hello_version)).
    pub fn last_payload(&self) -> &[u8] {
        &self.buf[..self.last_payload]
    }

    /// Forgets a partial frame, e.g. after reconnecting.
    pub fn reset(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }

    /// Takes one byte. Returns `Some` when the byte ends a frame: the decoded
    /// message, or the reason the frame was rejected (already counted).
    /// Empty frames (two `0x00` in a row) are idle fill and yield nothing.
    pub fn push<'s, M: Deserialize<'s>>(&'s mut self, byte: u8) -> Option<Result<M, FrameError>> {
        self.last_payload = 0;
        if byte != 0 {
            if self.len < N {
                self.buf[self.len] = byte;
                self.len += 1;
            } else {
                self.overflowed = true;
            }
            return None;
        }
        let len = core::mem::replace(&mut self.len, 0);
        if core::mem::replace(&mut self.overflowed, false) {
            self.stats.too_long += 1;
            return Some(Err(FrameError::TooLong));
        }
        if len == 0 {
            return None;
        }
        Some(self.finish(len))
    }

    fn finish<'s, M: Deserialize<'s>>(&'s mut self, len: usize) -> Result<M, FrameError> {
        let Ok(n) = cobs::decode_in_place(&mut self.buf[..len]) else {
            self.stats.cobs_errors += 1;
            return Err(FrameError::Cobs);
        };
        if n < 2 {
            self.stats.cobs_errors += 1;
            return Err(FrameError::Cobs);
        }
        let (body, crc) = self.buf[..n].split_at(n - 2);
        if CRC16.checksum(body).to_le_bytes() != [crc[0], crc[1]] {
            self.stats.crc_errors += 1;
            return Err(FrameError::Crc);
        }
        self.last_payload = n - 2;
        // Count before deserializing: the message borrows the buffer.
        match postcard::from_bytes::<M>(&self.buf[..n - 2]) {
            Ok(msg) => {
                self.stats.frames += 1;
                Ok(msg)
            }
            Err(_) => {
                self.stats.message_errors += 1;
                Err(FrameError::Message)
            }
        }
    }
}
