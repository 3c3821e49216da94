//! The 16550 UARTs behind COM1 (telemetry) and COM2 (GDB).
//!
//! A thin safe wrapper over `uart_16550`: the only `unsafe` is the claim that
//! a port base really is a UART we own.

use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::{IER, LSR};
use uart_16550::{Config, Uart16550};

/// COM1's I/O base.
pub const COM1_BASE: u16 = 0x3f8;
/// COM2's I/O base.
pub const COM2_BASE: u16 = 0x2f8;

/// One serial port, receive interrupts on.
pub struct SerialPort {
    uart: Uart16550<PioBackend>,
    present: bool,
}

impl SerialPort {
    /// Opens and initialises the UART at `base` (115200 8N1, FIFO on, receive
    /// interrupt on). A missing port (QEMU only creates COM2 when asked) is
    /// not an error: writes to it are dropped and reads find nothing.
    ///
    /// # Safety
    ///
    /// `base` must be a standard COM port base that no other code drives.
    pub unsafe fn open(base: u16) -> Self {
        // SAFETY: the caller guarantees exclusive use of a COM port base.
        let mut uart = unsafe { Uart16550::new_port(base) }.expect("COM base is a valid port");
        let config = Config {
            interrupts: IER::DATA_READY,
            baud_rate: uart_16550::BaudRate::Baud115200,
            ..Config::DEFAULT
        };
        let present = uart.init(config).is_ok();
        Self { uart, present }
    }

    /// Whether the UART answered at initialisation.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// Writes as many bytes as the transmit FIFO takes now, without waiting;
    /// returns how many were written.
    pub fn try_write(&mut self, bytes: &[u8]) -> usize {
        if !self.present {
            return bytes.len();
        }
        let mut done = 0;
        while done < bytes.len() {
            let n = self.uart.send_bytes(&bytes[done..]);
            if n == 0 {
                break;
            }
            done += n;
        }
        done
    }

    /// Writes all of `bytes`, waiting for the transmitter as needed.
    pub fn write_all(&mut self, bytes: &[u8]) {
        self.write_all_unless(bytes, || false);
    }

    /// [`write_all`](Self::write_all), but stops waiting for the transmitter
    /// once `give_up` says so; the rest of `bytes` is then not written.
    pub fn write_all_unless(&mut self, mut bytes: &[u8], mut give_up: impl FnMut() -> bool) {
        while !bytes.is_empty() {
            let n = self.try_write(bytes);
            bytes = &bytes[n..];
            if n == 0 {
                if give_up() {
                    return;
                }
                core::hint::spin_loop();
            }
        }
    }

    /// Whether every written byte has left the UART: FIFO and shift register
    /// empty.
    pub fn all_sent(&mut self) -> bool {
        !self.present || self.uart.lsr().contains(LSR::TRANSMITTER_EMPTY)
    }

    /// Takes one received byte, if any.
    pub fn read_byte(&mut self) -> Option<u8> {
        if !self.present {
            return None;
        }
        self.uart.try_receive_byte().ok()
    }

    /// Turns the "transmitter empty" interrupt on or off.
    pub fn set_tx_interrupt(&mut self, on: bool) {
        if !self.present {
            return;
        }
        if on {
            self.uart.enable_interrupts(IER::THR_EMPTY);
        } else {
            self.uart.disable_interrupts(IER::THR_EMPTY);
        }
    }
}
