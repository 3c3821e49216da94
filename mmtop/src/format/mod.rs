//! Printing messages: one line each, for people or for scripts.

mod human;
mod json;

pub use human::{
    FRAME_SIZE, escape_controls, frame_owner, frames_to_bytes, heap_error_kind, heap_name, human,
    human_bytes, human_time, page_flags, proc_state, vma_flags, vma_kind,
};
pub use json::json;

use crate::msg::Msg;

/// How the headless commands print messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Compact text, see [`human`].
    Human,
    /// One JSON object per line, see [`json`].
    Json,
}

impl Format {
    /// `msg` as one line, without the newline.
    pub fn line(self, msg: &Msg) -> String {
        match self {
            Format::Human => human(msg),
            Format::Json => json(msg),
        }
    }
}
