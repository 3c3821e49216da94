//! The ring-3 programs the kernel embeds are images its loader accepts:
//! fixed-address x86_64 executables at 0x400000 whose loadable segments
//! are never writable and executable at once, stay in the user half, and
//! hold the entry point in an executable segment.
//!
//! The kernel's build script copies every embedded image to
//! `target/user/NAME` (and the unstripped file to `NAME.debug`). Without
//! that directory (the kernel was never built) the test is skipped with a
//! message, except under CI, where it fails.

use std::path::{Path, PathBuf};

/// The programs the kernel spawns by name.
const REQUIRED: [&str; 17] = [
    "worker",
    "leaker",
    "fragmenter",
    "mmapper",
    "forker",
    "crasher",
    "fuzzer",
    "memtest",
    "touchkernel",
    "touchunmapped",
    "cowtest",
    "demandtest",
    "stacktest",
    "twins",
    "ptsteps",
    "escaper",
    "umip",
];

/// Where the images are linked.
const LINK_BASE: u64 = 0x40_0000;
/// Entry points must lie below this.
const ENTRY_LIMIT: u64 = 0x80_0000;
/// One past the last user address.
const USER_HALF_END: u64 = 0x0000_8000_0000_0000;
/// Bytes in a page.
const PAGE_SIZE: u64 = 4096;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PF_X: u32 = 1;
const PF_W: u32 = 2;

/// `target/user`, or `None` (after saying why) when it may be skipped.
fn images_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/user");
    if dir.is_dir() {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "{} is missing under CI: the kernel build (make kernel) must produce it",
        dir.display()
    );
    eprintln!(
        "skipping: {} does not exist; build the kernel (make kernel) to check the user images",
        dir.display()
    );
    None
}

/// A little-endian field of `len` bytes at `at`.
fn field(bytes: &[u8], at: usize, len: usize) -> u64 {
    let mut value = [0u8; 8];
    value[..len].copy_from_slice(
        bytes
            .get(at..at + len)
            .unwrap_or_else(|| panic!("truncated at byte {at}")),
    );
    u64::from_le_bytes(value)
}

/// One `PT_LOAD` segment: (vaddr, memsz, flags).
type Segment = (u64, u64, u32);

/// Checks one image as the kernel's ELF parser would; answers its entry
/// point and loadable segments.
fn check_image(name: &str, bytes: &[u8]) -> (u64, Vec<Segment>) {
    assert!(bytes.len() >= 64, "{name}: shorter than an ELF header");
    assert_eq!(&bytes[..4], b"\x7fELF", "{name}: bad magic");
    assert_eq!(bytes[4], 2, "{name}: not ELFCLASS64");
    assert_eq!(bytes[5], 1, "{name}: not little-endian");
    assert_eq!(field(bytes, 16, 2), 2, "{name}: not ET_EXEC");
    assert_eq!(field(bytes, 18, 2), 62, "{name}: not EM_X86_64");
    let entry = field(bytes, 24, 8);
    assert!(
        (LINK_BASE..ENTRY_LIMIT).contains(&entry),
        "{name}: entry {entry:#x} outside {LINK_BASE:#x}..{ENTRY_LIMIT:#x}"
    );
    let phoff = field(bytes, 32, 8) as usize;
    assert_eq!(field(bytes, 54, 2), 56, "{name}: e_phentsize is not 56");
    let phnum = field(bytes, 56, 2) as usize;

    let mut segments: Vec<Segment> = Vec::new();
    for index in 0..phnum {
        let at = phoff + index * 56;
        let kind = field(bytes, at, 4) as u32;
        assert!(
            kind != PT_INTERP && kind != PT_DYNAMIC,
            "{name}: program header {index} asks for dynamic linking"
        );
        if kind != PT_LOAD {
            continue;
        }
        let flags = field(bytes, at + 4, 4) as u32;
        let offset = field(bytes, at + 8, 8);
        let vaddr = field(bytes, at + 16, 8);
        let file_size = field(bytes, at + 32, 8);
        let mem_size = field(bytes, at + 40, 8);
        assert!(
            flags & (PF_W | PF_X) != PF_W | PF_X,
            "{name}: segment {index} at {vaddr:#x} is writable and executable"
        );
        assert!(mem_size > 0, "{name}: segment {index} is empty");
        assert!(file_size <= mem_size, "{name}: segment {index} file > mem");
        assert!(
            offset + file_size <= bytes.len() as u64,
            "{name}: segment {index} extends past the file"
        );
        assert!(
            vaddr >= PAGE_SIZE && vaddr + mem_size <= USER_HALF_END - PAGE_SIZE,
            "{name}: segment {index} at {vaddr:#x}+{mem_size:#x} is not user memory"
        );
        assert_eq!(
            vaddr % PAGE_SIZE,
            offset % PAGE_SIZE,
            "{name}: segment {index} misaligned in the file"
        );
        if let Some(&(prev, prev_size, _)) = segments.last() {
            let prev_end = (prev + prev_size).next_multiple_of(PAGE_SIZE);
            assert!(
                vaddr / PAGE_SIZE * PAGE_SIZE >= prev_end,
                "{name}: segment {index} shares a page with the one before"
            );
        }
        segments.push((vaddr, mem_size, flags));
    }
    assert!(!segments.is_empty(), "{name}: no PT_LOAD segment");
    assert!(
        segments
            .iter()
            .any(|&(v, size, flags)| flags & PF_X != 0 && (v..v + size).contains(&entry)),
        "{name}: entry {entry:#x} is in no executable segment"
    );
    (entry, segments)
}

#[test]
fn every_user_image_is_a_loadable_wx_free_executable_at_0x400000() {
    let Some(dir) = images_dir() else { return };
    for name in REQUIRED {
        let path = dir.join(name);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (is the program missing?)", path.display()));
        let (entry, segments) = check_image(name, &bytes);
        assert!(
            segments.iter().any(|&(_, _, flags)| flags & PF_W != 0),
            "{name}: no writable segment for data and bss"
        );

        // The embedded image carries no debug information; the copy for
        // gdb describes exactly the same memory.
        let debug_path = dir.join(format!("{name}.debug"));
        let debug =
            std::fs::read(&debug_path).unwrap_or_else(|e| panic!("{}: {e}", debug_path.display()));
        assert_eq!(
            check_image(name, &debug),
            (entry, segments),
            "{name}: the debug copy differs from the embedded image"
        );
        assert!(
            bytes.len() < debug.len(),
            "{name}: the embedded image should be the stripped one"
        );
    }
}
