//! Telemetry on COM1, in two parts at two layers:
//!
//! - [`link`] (low, beside the drivers): frames kernel messages into a
//!   bounded ring drained to the UART, counts what it must drop, and queues
//!   the host's commands. Every layer may send through it.
//! - [`server`] (top, beside the GDB stub): answers the queued commands
//!   from thread context with what `introspect` computes, and sends the
//!   periodic snapshots.

pub mod link;
pub mod server;

pub use link::{
    BUILD_ID, Requests, drain, flush_before_exit, heartbeat, init, on_interrupt, pump, send,
    send_emergency, send_event, send_log, send_waiting, take_requests,
};
