//! Link addresses: `unix:PATH`, `tcp:HOST:PORT`, `/dev/ttyX[@BAUD]`, `file:PATH`.
//!
//! The string form is what users type after `--connect`, so parse errors name
//! the offending part and repeat the forms that are accepted.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Baud rate of a serial address that names none; the kernel's COM1 speed.
pub const DEFAULT_BAUD: u32 = 115_200;

/// The accepted forms, repeated in every error that is about the form.
const EXPECTED: &str = "expected unix:PATH, tcp:HOST:PORT, /dev/ttyX[@BAUD] or file:PATH";

/// Where the telemetry bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A unix-domain stream socket, e.g. QEMU's `-serial unix:PATH,server`.
    Unix(PathBuf),
    /// A TCP stream, e.g. QEMU's `-serial tcp::PORT,server`.
    Tcp {
        /// Host name or IP address, without the brackets of an IPv6 literal.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A serial device or pty; any absolute path.
    Serial {
        /// Device path, e.g. `/dev/ttyUSB0` or `/dev/pts/3`.
        path: PathBuf,
        /// Line speed.
        baud: u32,
    },
    /// A recording of the byte stream, replayed read-only until its end.
    File(PathBuf),
}

impl Address {
    /// Whether the other end is a running kernel that can receive commands
    /// (everything but a recording).
    pub fn is_live(&self) -> bool {
        !matches!(self, Address::File(_))
    }
}

/// Why an address string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing was given.
    #[error("empty address — {EXPECTED}")]
    Empty,
    /// A `scheme:` prefix mmtop does not know.
    #[error("unknown address scheme '{0}:' — {EXPECTED}")]
    UnknownScheme(String),
    /// Neither a known scheme nor an absolute path.
    #[error("unrecognised address '{0}' — {EXPECTED}")]
    Unrecognised(String),
    /// `unix:` or `file:` with nothing after it.
    #[error("'{0}:' needs a path, as in {0}:/tmp/mmtop.sock")]
    MissingPath(&'static str),
    /// `tcp:` without a `:PORT`.
    #[error("'tcp:{0}' needs HOST:PORT, as in tcp:127.0.0.1:4444")]
    TcpMissingPort(String),
    /// `tcp:` with an empty host.
    #[error("'tcp:{0}' has an empty host, as in tcp::4444; use tcp:127.0.0.1:4444")]
    TcpEmptyHost(String),
    /// A port that is not a number in `1..=65535`.
    #[error("invalid TCP port '{port}' in 'tcp:{addr}' — expected 1 to 65535")]
    TcpBadPort {
        /// The part after `tcp:`.
        addr: String,
        /// The rejected port text.
        port: String,
    },
    /// A baud rate that is not a positive number.
    #[error(
        "invalid baud rate '{baud}' in '{addr}' — expected a positive number, as in /dev/ttyS0@115200"
    )]
    BadBaud {
        /// The whole address.
        addr: String,
        /// The rejected baud text.
        baud: String,
    },
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.starts_with('/') {
            return parse_serial(s);
        }
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(AddressError::Unrecognised(s.to_owned()));
        };
        match scheme {
            "unix" => non_empty_path("unix", rest).map(Address::Unix),
            "file" => non_empty_path("file", rest).map(Address::File),
            "tcp" => parse_tcp(rest),
            _ => Err(AddressError::UnknownScheme(scheme.to_owned())),
        }
    }
}

fn non_empty_path(scheme: &'static str, path: &str) -> Result<PathBuf, AddressError> {
    if path.is_empty() {
        Err(AddressError::MissingPath(scheme))
    } else {
        Ok(PathBuf::from(path))
    }
}

fn parse_tcp(rest: &str) -> Result<Address, AddressError> {
    // Split at the last ':' so an unbracketed IPv6 host keeps its colons.
    let Some((host, port_text)) = rest.rsplit_once(':') else {
        return Err(AddressError::TcpMissingPort(rest.to_owned()));
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(AddressError::TcpEmptyHost(rest.to_owned()));
    }
    let port = match port_text.parse::<u16>() {
        Ok(p) if p != 0 => p,
        _ => {
            return Err(AddressError::TcpBadPort {
                addr: rest.to_owned(),
                port: port_text.to_owned(),
            });
        }
    };
    Ok(Address::Tcp {
        host: host.to_owned(),
        port,
    })
}

fn parse_serial(s: &str) -> Result<Address, AddressError> {
    let (path, baud) = match s.rsplit_once('@') {
        None => (s, DEFAULT_BAUD),
        Some((path, baud_text)) => match baud_text.parse::<u32>() {
            Ok(b) if b != 0 => (path, b),
            _ => {
                return Err(AddressError::BadBaud {
                    addr: s.to_owned(),
                    baud: baud_text.to_owned(),
                });
            }
        },
    };
    Ok(Address::Serial {
        path: PathBuf::from(path),
        baud,
    })
}

impl fmt::Display for Address {
    /// The canonical string form, which parses back to the same address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Address::Serial { path, baud } if *baud == DEFAULT_BAUD => {
                write!(f, "{}", path.display())
            }
            Address::Serial { path, baud } => write!(f, "{}@{baud}", path.display()),
            Address::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Address, AddressError> {
        s.parse()
    }

    #[test]
    fn unix_and_file_addresses_carry_their_path() {
        assert_eq!(
            parse("unix:/tmp/com1.sock"),
            Ok(Address::Unix("/tmp/com1.sock".into()))
        );
        assert_eq!(
            parse("file:rec/boot.bin"),
            Ok(Address::File("rec/boot.bin".into()))
        );
        assert_eq!(parse("unix:"), Err(AddressError::MissingPath("unix")));
        assert_eq!(parse("file:"), Err(AddressError::MissingPath("file")));
    }

    #[test]
    fn tcp_address_splits_host_and_port_at_the_last_colon() {
        assert_eq!(
            parse("tcp:localhost:4444"),
            Ok(Address::Tcp {
                host: "localhost".into(),
                port: 4444
            })
        );
        assert_eq!(
            parse("tcp:[::1]:4444"),
            Ok(Address::Tcp {
                host: "::1".into(),
                port: 4444
            })
        );
        assert_eq!(
            parse("tcp:localhost"),
            Err(AddressError::TcpMissingPort("localhost".into()))
        );
        assert_eq!(
            parse("tcp::4444"),
            Err(AddressError::TcpEmptyHost(":4444".into()))
        );
        for bad in ["0", "65536", "http", ""] {
            assert_eq!(
                parse(&format!("tcp:h:{bad}")),
                Err(AddressError::TcpBadPort {
                    addr: format!("h:{bad}"),
                    port: bad.into()
                })
            );
        }
    }

    #[test]
    fn absolute_path_is_a_serial_device_at_115200_unless_a_baud_is_given() {
        assert_eq!(
            parse("/dev/ttyS0"),
            Ok(Address::Serial {
                path: "/dev/ttyS0".into(),
                baud: 115_200
            })
        );
        assert_eq!(
            parse("/dev/pts/3@9600"),
            Ok(Address::Serial {
                path: "/dev/pts/3".into(),
                baud: 9600
            })
        );
        assert_eq!(
            parse("/dev/ttyS0@fast"),
            Err(AddressError::BadBaud {
                addr: "/dev/ttyS0@fast".into(),
                baud: "fast".into()
            })
        );
        assert!(matches!(
            parse("/dev/ttyS0@0"),
            Err(AddressError::BadBaud { .. })
        ));
    }

    #[test]
    fn unknown_scheme_error_names_the_scheme_and_lists_the_accepted_forms() {
        let err = parse("foo:bar").unwrap_err();
        assert_eq!(err, AddressError::UnknownScheme("foo".into()));
        assert_eq!(
            err.to_string(),
            "unknown address scheme 'foo:' — expected unix:PATH, tcp:HOST:PORT, \
             /dev/ttyX[@BAUD] or file:PATH"
        );
        let err = parse("ttyS0").unwrap_err();
        assert_eq!(err, AddressError::Unrecognised("ttyS0".into()));
        assert!(err.to_string().contains("expected unix:PATH"));
        assert_eq!(parse(""), Err(AddressError::Empty));
    }

    #[test]
    fn display_is_the_canonical_form_and_parses_back() {
        for s in [
            "unix:/tmp/a.sock",
            "tcp:127.0.0.1:4444",
            "tcp:[::1]:4444",
            "/dev/ttyS0",
            "/dev/ttyUSB0@921600",
            "file:/tmp/rec.bin",
        ] {
            let addr = parse(s).unwrap();
            assert_eq!(addr.to_string(), s);
            assert_eq!(parse(&addr.to_string()), Ok(addr));
        }
        assert_eq!(
            parse("/dev/ttyS0@115200").unwrap().to_string(),
            "/dev/ttyS0"
        );
    }

    #[test]
    fn only_a_recording_is_not_live() {
        assert!(!parse("file:x").unwrap().is_live());
        assert!(parse("unix:x").unwrap().is_live());
        assert!(parse("tcp:h:1").unwrap().is_live());
        assert!(parse("/dev/ttyS0").unwrap().is_live());
    }
}
