//! Printing messages: one line each, for people or for scripts.

mod human;
mod json;

pub use human::{
    FRAME_SIZE, escape_controls, frames_to_bytes, heap_name, human, human_bytes, human_time,
};
pub use json::{from_json, json};

use crate::Msg;
use crate::symbols::Annotation;

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

    /// `msg` as one line with the names of its addresses beside them: in
    /// the human form `caller=0x... <name+0xoff (file:line)>`, in JSON an
    /// extra `"caller_symbol": "..."` after `"caller"` (likewise `rip`,
    /// `key`). The raw addresses stay as [`line`](Self::line) prints them.
    pub fn annotated_line(self, msg: &Msg, notes: &[Annotation]) -> String {
        let mut line = self.line(msg);
        for note in notes {
            let (raw, extra) = match self {
                Format::Human => (
                    format!("{}={:#x}", note.field, note.addr),
                    format!(" <{}>", escape_controls(&note.symbol)),
                ),
                Format::Json => (
                    format!("\"{}\":{}", note.field, note.addr),
                    format!(
                        ",\"{}_symbol\":{}",
                        note.field,
                        serde_json::Value::from(note.symbol.as_str())
                    ),
                ),
            };
            if let Some(at) = find_field(&line, &raw) {
                line.insert_str(at + raw.len(), &extra);
            }
        }
        line
    }
}

/// Where `field` (`key=value` or `"key":value`) stands whole in `line`:
/// after a separator and before one, so `caller=0x10` does not match inside
/// `caller=0x102`.
fn find_field(line: &str, field: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = line[from..].find(field) {
        let at = from + i;
        let before = line[..at].chars().next_back();
        let after = line[at + field.len()..].chars().next();
        if matches!(before, None | Some(' ' | ',' | '{'))
            && matches!(after, None | Some(' ' | ',' | '}'))
        {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_proto::HeapEvent;

    fn heap_alloc() -> Msg {
        Msg::HeapAlloc(HeapEvent {
            ts_us: 1,
            pid: 0,
            heap_id: 0,
            addr: 0xffff_8000_0010_0000,
            size: 16,
            align: 8,
            key: 0xffff_ffff_8000_1024,
            caller: 0xffff_ffff_8000_1024,
        })
    }

    fn note() -> Annotation {
        Annotation {
            field: "caller",
            addr: 0xffff_ffff_8000_1024,
            symbol: "kernel::f+0x24 (kernel/src/f.rs:3)".into(),
        }
    }

    #[test]
    fn human_lines_keep_the_address_and_add_the_name_after_the_caller_only() {
        let line = Format::Human.annotated_line(&heap_alloc(), &[note()]);
        assert!(
            line.ends_with(
                "key=0xffffffff80001024 caller=0xffffffff80001024 \
                 <kernel::f+0x24 (kernel/src/f.rs:3)>"
            ),
            "{line}"
        );
    }

    #[test]
    fn json_lines_get_a_symbol_field_after_the_address() {
        let line = Format::Json.annotated_line(&heap_alloc(), &[note()]);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["caller"], 0xffff_ffff_8000_1024u64);
        assert_eq!(value["caller_symbol"], "kernel::f+0x24 (kernel/src/f.rs:3)");
        assert!(value.get("key_symbol").is_none(), "{line}");
        assert!(
            line.contains(r#""caller":18446744071562072100,"caller_symbol":"#),
            "{line}"
        );
    }

    #[test]
    fn no_notes_is_the_plain_line() {
        for format in [Format::Human, Format::Json] {
            assert_eq!(
                format.annotated_line(&heap_alloc(), &[]),
                format.line(&heap_alloc())
            );
        }
    }

    #[test]
    fn fields_match_whole_values_only() {
        assert_eq!(
            find_field("a caller=0x102 caller=0x10", "caller=0x10"),
            Some(15)
        );
        assert_eq!(find_field(r#"{"rip":12,"x":1}"#, r#""rip":1"#), None);
        assert_eq!(find_field(r#"{"rip":12,"x":1}"#, r#""rip":12"#), Some(1));
    }
}
