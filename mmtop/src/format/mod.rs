//! Printing messages: one line each, for people or for scripts.

mod human;
mod json;

pub use human::{
    FRAME_SIZE, escape_controls, frames_to_bytes, heap_name, human, human_bytes, human_time,
};
pub use json::{from_json, json};

use crate::Msg;

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
