//! The debugger's byte link: COM2, polled while the kernel is stopped and
//! read from its receive interrupt while it runs.

use core::convert::Infallible;

use gdbstub::conn::Connection;

use crate::drivers::serial::{COM2_BASE, SerialPort};
use crate::sync::IrqMutex;

/// COM2; `None` until [`open`].
static PORT: IrqMutex<Option<SerialPort>> = IrqMutex::new(None);

/// Opens COM2 (absent unless QEMU was given a second `-serial`).
pub fn open() {
    PORT.with(|port| {
        // SAFETY: COM2 is driven only through this module's PORT.
        *port = Some(unsafe { SerialPort::open(COM2_BASE) });
    });
}

/// Takes one received byte, if any, without waiting.
pub fn read_byte() -> Option<u8> {
    PORT.with(|port| port.as_mut()?.read_byte())
}

/// Writes all of `bytes`, waiting for the transmitter.
fn write_all(bytes: &[u8]) {
    PORT.with(|port| {
        if let Some(port) = port.as_mut() {
            port.write_all(bytes);
        }
    });
}

/// The `gdbstub` connection over COM2. Writing waits for the UART; a port
/// without a client (QEMU drops the bytes) never blocks.
pub struct Com2;

impl Connection for Com2 {
    type Error = Infallible;

    fn write(&mut self, byte: u8) -> Result<(), Infallible> {
        write_all(&[byte]);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Infallible> {
        write_all(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}
