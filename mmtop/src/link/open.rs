//! Opening a link: a byte reader for every address, a frame writer for live ones.
//!
//! Each kind of address becomes a plain `Read` (and `Write`) half so the rest
//! of mmtop neither knows nor cares whether bytes come from QEMU's socket, a
//! serial line or a recording.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use probe_proto::{HostMsg, encode_frame, frame::MAX_FRAME};

use super::Address;
use super::recording::{ReplayOptions, open_file};

/// How long a TCP connect may take per resolved address: long enough for a
/// remote machine, short enough that a typo does not look like a hang.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one serial read or write waits before the reader loop looks
/// again; serial ports cannot block forever through `serialport`.
const SERIAL_POLL: Duration = Duration::from_millis(500);

/// Why a link could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A socket or recording could not be opened.
    #[error("cannot connect to {address}: {source}")]
    Io {
        /// What was being opened.
        address: Address,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A serial device could not be opened or configured.
    #[error("cannot open serial device {address}: {source}")]
    Serial {
        /// What was being opened.
        address: Address,
        /// The serial layer's reason.
        source: serialport::Error,
    },
    /// A path given as a serial device is a socket.
    #[error("{path} is a socket, not a serial device: connect with unix:{path}")]
    SocketNotSerial {
        /// The path.
        path: String,
    },
    /// Nobody listens on a socket (or there is none): the kernel is not
    /// running there.
    #[error(
        "cannot connect to {address}: {reason}; the kernel may not be running \
         (start it with `make start` or `make run`)"
    )]
    NotRunning {
        /// What was being opened.
        address: Address,
        /// Refused, or no such socket.
        reason: &'static str,
    },
    /// A recording path is a directory.
    #[error("cannot read the recording {path}: it is a directory")]
    Directory {
        /// The path.
        path: String,
    },
}

/// An open link: bytes from the kernel, and for a live link a way back.
pub struct Link {
    address: Address,
    reader: LinkReader,
    writer: Option<LinkWriter>,
}

/// The receiving half of a link, and whether it is live (joined at any
/// point of the kernel's stream) rather than a recording.
pub struct LinkReader(Box<dyn Read + Send>, bool);

impl LinkReader {
    /// Whether the link is live.
    pub fn is_live(&self) -> bool {
        self.1
    }
}

/// The sending half of a live link.
pub struct LinkWriter(Box<dyn Write + Send>);

impl Link {
    /// Opens `address`: connects a socket, opens a serial device (raw mode,
    /// 8N1, no flow control) or opens a recording for reading.
    pub fn open(address: &Address) -> Result<Link, LinkError> {
        Link::open_with(address, &ReplayOptions::default())
    }

    /// [`Link::open`], replaying a recording (`file:PATH` with the
    /// [`recording`](super::recording) magic) as `replay` says; other
    /// addresses ignore it.
    pub fn open_with(address: &Address, replay: &ReplayOptions) -> Result<Link, LinkError> {
        let live = !matches!(address, Address::File(_));
        let io_err = |source: io::Error| match source.kind() {
            io::ErrorKind::ConnectionRefused => LinkError::NotRunning {
                address: address.clone(),
                reason: "connection refused",
            },
            io::ErrorKind::NotFound if live => LinkError::NotRunning {
                address: address.clone(),
                reason: "no such socket",
            },
            _ => LinkError::Io {
                address: address.clone(),
                source,
            },
        };
        let (reader, writer): (Box<dyn Read + Send>, Option<Box<dyn Write + Send>>) = match address
        {
            Address::Unix(path) => {
                let stream = UnixStream::connect(path).map_err(io_err)?;
                let writer = stream.try_clone().map_err(io_err)?;
                (Box::new(stream), Some(Box::new(writer)))
            }
            Address::Tcp { host, port } => {
                let stream = connect_tcp(host, *port).map_err(io_err)?;
                let writer = stream.try_clone().map_err(io_err)?;
                (Box::new(stream), Some(Box::new(writer)))
            }
            Address::Serial { path, baud } => {
                if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                    return Err(LinkError::SocketNotSerial {
                        path: path.display().to_string(),
                    });
                }
                let serial_err = |source| LinkError::Serial {
                    address: address.clone(),
                    source,
                };
                // Raw mode, 8N1, no flow control. A pty whose other side
                // closes (QEMU exiting) discards bytes not yet read: Linux
                // flushes the input on that hang-up, whoever reads it, so a
                // reader thread that is always waiting in read() is the best
                // any client can do.
                let port = serialport::new(path.to_string_lossy(), *baud)
                    .timeout(SERIAL_POLL)
                    .open()
                    .map_err(serial_err)?;
                let writer = port.try_clone().map_err(serial_err)?;
                (Box::new(port), Some(Box::new(writer)))
            }
            Address::File(path) => {
                if path.is_dir() {
                    return Err(LinkError::Directory {
                        path: path.display().to_string(),
                    });
                }
                (open_file(path, replay).map_err(io_err)?, None)
            }
        };
        Ok(Link {
            address: address.clone(),
            reader: LinkReader(reader, writer.is_some()),
            writer: writer.map(LinkWriter),
        })
    }

    /// The address this link was opened from.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Whether commands can be sent (false for a recording).
    pub fn is_live(&self) -> bool {
        self.writer.is_some()
    }

    /// Separates the halves so a reader thread can own the receiving one.
    pub fn split(self) -> (LinkReader, Option<LinkWriter>) {
        (self.reader, self.writer)
    }
}

impl Read for LinkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl LinkWriter {
    /// Sends one command as one frame, handing all its bytes to the OS.
    ///
    /// There is no flush: sockets have no user-space buffer, and on a tty a
    /// flush is `tcdrain`, which only waits for the UART to shift the bytes
    /// out, and fails if the other side hangs up after they were delivered.
    pub fn send(&mut self, msg: &HostMsg) -> io::Result<()> {
        let mut buf = [0u8; MAX_FRAME];
        // Every HostMsg is a few bytes; a failure here would be a bug in
        // probe-proto's size constants, reported rather than unwrapped.
        let frame = encode_frame(msg, &mut buf)
            .map_err(|e| io::Error::other(format!("cannot encode {msg:?}: {e:?}")))?;
        // A lone 0x00 first ends any partial frame an earlier client left in
        // the kernel's receiver; the kernel ignores empty frames.
        self.0.write_all(&[0])?;
        self.0.write_all(frame)
    }
}

fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last_err = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, TCP_CONNECT_TIMEOUT) {
            Ok(stream) => {
                // Frames are small and interactive (ping, resync): do not let
                // Nagle hold them back waiting for more bytes.
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
    }))
}
