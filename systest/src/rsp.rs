//! A small GDB remote-protocol client over TCP, for tests and benchmarks
//! that talk to a stub below gdb: packets with checksums, acks (it never
//! asks for no-ack mode), run-length encoding and binary escapes.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::DEADLINE;

/// A connection to a stub, in ack mode.
pub struct Rsp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Rsp {
    /// Connects to a stub on a loopback port, retrying until it listens.
    pub fn connect(port: u16) -> Self {
        let start = Instant::now();
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > DEADLINE => panic!("connect to {port}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// Sends one packet with `payload`.
    pub fn send(&mut self, payload: &[u8]) {
        let sum = payload.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        let mut packet = Vec::with_capacity(payload.len() + 4);
        packet.push(b'$');
        packet.extend_from_slice(payload);
        packet.extend_from_slice(format!("#{sum:02x}").as_bytes());
        self.stream.write_all(&packet).expect("send packet");
    }

    /// Sends `bytes` as they are: a hand-made (or broken) packet.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next byte received, outside any packet: an ack (`+`) or a
    /// request to send again (`-`).
    pub fn recv_byte(&mut self) -> u8 {
        while self.buf.is_empty() {
            let mut chunk = [0u8; 256];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the stub closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("no byte: {e}"),
            }
        }
        self.buf.remove(0)
    }

    /// The next packet's payload as sent (escapes and runs left in), its
    /// checksum checked; acked.
    pub fn recv(&mut self) -> Vec<u8> {
        let mut scanned = 0;
        loop {
            if let Some(start) = self.buf.iter().position(|&b| b == b'$') {
                let from = scanned.max(start + 1);
                match self.buf[from..].iter().position(|&b| b == b'#') {
                    Some(hash) if self.buf.len() >= from + hash + 3 => {
                        let hash = from + hash;
                        let payload = self.buf[start + 1..hash].to_vec();
                        let sum = std::str::from_utf8(&self.buf[hash + 1..hash + 3])
                            .ok()
                            .and_then(|s| u8::from_str_radix(s, 16).ok())
                            .expect("checksum digits");
                        let ours = payload.iter().fold(0u8, |s, &b| s.wrapping_add(b));
                        assert_eq!(sum, ours, "bad checksum on a {}-byte reply", payload.len());
                        self.buf.drain(..hash + 3);
                        self.stream.write_all(b"+").expect("ack");
                        return payload;
                    }
                    // The checksum is still on its way.
                    Some(hash) => scanned = from + hash,
                    None => scanned = self.buf.len(),
                }
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the stub closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("no reply ({} bytes of one so far): {e}", self.buf.len()),
            }
        }
    }

    /// Sends `payload` and returns the reply. A stop reply nobody asked
    /// for (QEMU's stub announces the stop it makes when a client
    /// connects) is skipped.
    pub fn command(&mut self, payload: &[u8]) -> Vec<u8> {
        self.send(payload);
        loop {
            let reply = self.recv();
            if payload == b"?" || !matches!(reply.first(), Some(b'T' | b'S')) {
                return reply;
            }
        }
    }

    /// `qSupported` as gdb sends it: the reply's features, and its
    /// `PacketSize`.
    pub fn handshake(&mut self) -> (String, usize) {
        let reply = self.command(b"qSupported:multiprocess+;swbreak+;hwbreak+");
        let features = String::from_utf8_lossy(&reply).into_owned();
        let size = features
            .split(';')
            .find_map(|f| f.strip_prefix("PacketSize="))
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .unwrap_or_else(|| panic!("no PacketSize in {features:?}"));
        (features, size)
    }

    /// `m`: memory in hex, or the error reply.
    pub fn read_hex(&mut self, addr: u64, len: usize) -> Result<Vec<u8>, String> {
        let reply = self.command(format!("m{addr:x},{len:x}").as_bytes());
        if reply.first() == Some(&b'E') {
            return Err(String::from_utf8_lossy(&reply).into_owned());
        }
        Ok(unhex(&unrle(&reply)))
    }

    /// `x`: memory in binary, or the error reply.
    pub fn read_binary(&mut self, addr: u64, len: usize) -> Result<Vec<u8>, String> {
        let reply = self.command(format!("x{addr:x},{len:x}").as_bytes());
        match reply.strip_prefix(b"b") {
            Some(data) => Ok(unescape(&unrle(data))),
            None => Err(String::from_utf8_lossy(&reply).into_owned()),
        }
    }

    /// A whole `qXfer:OBJECT:read` object, read in pieces of `piece` bytes.
    pub fn read_xfer(&mut self, object: &str, piece: usize) -> String {
        let mut text = Vec::new();
        loop {
            let request = format!("qXfer:{object}:read::{:x},{piece:x}", text.len());
            let reply = self.command(request.as_bytes());
            let (more, data) = reply.split_first().expect("a qXfer reply");
            text.extend_from_slice(&unescape(&unrle(data)));
            match more {
                b'm' => {}
                b'l' => return String::from_utf8(text).expect("UTF-8 object"),
                _ => panic!("qXfer {object}: {:?}", String::from_utf8_lossy(&reply)),
            }
        }
    }
}

/// Expands `X*n` runs (n = count + 29).
pub fn unrle(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() * 2);
    let mut i = 0;
    while i < payload.len() {
        if payload[i] == b'*' && i + 1 < payload.len() {
            let last = *out.last().expect("a run follows a byte");
            out.extend(std::iter::repeat_n(last, usize::from(payload[i + 1]) - 29));
            i += 2;
        } else {
            out.push(payload[i]);
            i += 1;
        }
    }
    out
}

/// Hex text to bytes.
pub fn unhex(text: &[u8]) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex reply");
    text.chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .expect("hex digits")
        })
        .collect()
}

/// Binary data with `}`-escapes undone.
pub fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut bytes = payload.iter();
    while let Some(&b) = bytes.next() {
        if b == b'}' {
            out.push(bytes.next().expect("escaped byte") ^ 0x20);
        } else {
            out.push(b);
        }
    }
    out
}
