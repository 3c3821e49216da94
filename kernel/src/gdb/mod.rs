//! The GDB link on COM2.
//!
//! Until the full remote stub is in place this is a minimal, protocol-correct
//! responder: it acknowledges each `$packet#xx` and answers the empty
//! "unsupported" reply, so a debugger sees a live but featureless target
//! instead of silence.

use crate::drivers::serial::{COM2_BASE, SerialPort};
use crate::sync::IrqMutex;

/// Where a packet is in the `$...#xx` grammar.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Body,
    Checksum(u8),
}

struct GdbLink {
    port: Option<SerialPort>,
    state: State,
}

static LINK: IrqMutex<GdbLink> = IrqMutex::new(GdbLink {
    port: None,
    state: State::Idle,
});

/// Opens COM2 (absent unless QEMU was given a second `-serial`).
pub fn init() {
    LINK.with(|link| {
        // SAFETY: COM2 is driven only through this module's LINK.
        link.port = Some(unsafe { SerialPort::open(COM2_BASE) });
    });
}

/// COM2 interrupt: consume bytes, answer complete packets.
pub fn on_interrupt() {
    LINK.with(|link| {
        let Some(port) = link.port.as_mut() else {
            return;
        };
        while let Some(byte) = port.read_byte() {
            link.state = match (link.state, byte) {
                (_, b'$') => State::Body,
                (State::Body, b'#') => State::Checksum(0),
                (State::Body, _) => State::Body,
                (State::Checksum(0), _) => State::Checksum(1),
                (State::Checksum(_), _) => {
                    port.write_all(b"+$#00");
                    State::Idle
                }
                (State::Idle, 0x03) => {
                    // Ctrl-C: report "stopped by SIGINT".
                    port.write_all(b"$S02#b5");
                    State::Idle
                }
                (State::Idle, _) => State::Idle,
            };
        }
    });
}
