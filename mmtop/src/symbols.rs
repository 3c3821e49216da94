//! Names for raw return addresses: `function+0xoff (file:line)`.
//!
//! The kernel sends every caller and instruction pointer raw; this module
//! reads the kernel ELF (and, for ring-3 addresses, the program's
//! `target/user/NAME.debug` next to it) with `addr2line` and `object`.
//!
//! Names are only given once the ELF is known to be the running kernel:
//! the kernel's `Hello` carries its `BUILD_ID` (`kernel 0.1.0 debug
//! id=HEX`, the hex a hash of its sources), and the same string must appear
//! in the ELF's read-only data. Until a `Hello` has confirmed it (a
//! recording that starts mid-stream) no address is named, and a missing or
//! mismatched ELF is said once on the error stream, never answered with
//! wrong names.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use addr2line::Loader;
use object::{Object, ObjectSection};
use probe_proto::names::KERNEL_PID;

use crate::Msg;

/// The kernel ELF mmtop reads when `--elf` is not given, if it exists.
pub const DEFAULT_KERNEL_ELF: &str = "target/kernel.elf";

/// Addresses from here up are the kernel's half; below, ring 3.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
/// Addresses below this are canonical lower-half (user) addresses.
const USER_END: u64 = 0x0000_8000_0000_0000;

/// One symbolized address of a message: the field it is in (its JSON key
/// and human `key=`), the raw value and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// The message field holding the address: `caller`, `rip` or `key`.
    pub field: &'static str,
    /// The raw address, as printed.
    pub addr: u64,
    /// `function+0xoff (file:line)`.
    pub symbol: String,
}

/// Why an ELF cannot be used.
#[derive(Debug)]
pub enum SymbolsError {
    /// The file does not exist.
    NotFound(PathBuf),
    /// It cannot be read or parsed.
    Unreadable(PathBuf, String),
}

impl fmt::Display for SymbolsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymbolsError::NotFound(path) => write!(f, "{} not found", path.display()),
            SymbolsError::Unreadable(path, why) => {
                write!(f, "cannot read {}: {why}", path.display())
            }
        }
    }
}

/// One ELF's debug information and symbol table.
pub struct Image {
    path: PathBuf,
    loader: Loader,
    build_ids: Vec<String>,
    cache: HashMap<(u64, bool), Option<String>>,
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("path", &self.path)
            .field("build_ids", &self.build_ids)
            .finish_non_exhaustive()
    }
}

impl Image {
    /// Reads the ELF at `path`.
    pub fn open(path: &Path) -> Result<Image, SymbolsError> {
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SymbolsError::NotFound(path.to_path_buf())
            } else {
                SymbolsError::Unreadable(path.to_path_buf(), e.to_string())
            }
        })?;
        let unreadable = |why: String| SymbolsError::Unreadable(path.to_path_buf(), why);
        let file = object::File::parse(&*bytes).map_err(|e| unreadable(e.to_string()))?;
        let build_ids = find_build_ids(&file);
        let loader = Loader::new(path).map_err(|e| unreadable(e.to_string()))?;
        Ok(Image {
            path: path.to_path_buf(),
            loader,
            build_ids,
            cache: HashMap::new(),
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kernel build ids (`kernel VERSION PROFILE id=HEX`) found in the
    /// ELF's read-only data; none for a file that is not such a kernel.
    pub fn build_ids(&self) -> &[String] {
        &self.build_ids
    }

    /// `addr` as `function+0xoff (file:line)`, or `None` where the ELF has
    /// no symbol for it. A return address (`is_return`) is looked up one
    /// byte back for its line, so the line is the call's, not the next
    /// statement's; the offset is always from `addr` itself.
    pub fn symbolize(&mut self, addr: u64, is_return: bool) -> Option<String> {
        if let Some(hit) = self.cache.get(&(addr, is_return)) {
            return hit.clone();
        }
        let named = self.lookup(addr, is_return);
        self.cache.insert((addr, is_return), named.clone());
        named
    }

    fn lookup(&self, addr: u64, is_return: bool) -> Option<String> {
        let probe = if is_return {
            addr.checked_sub(1)?
        } else {
            addr
        };
        let symbol = self.loader.find_symbol_info(probe)?;
        let name = addr2line::demangle_auto(symbol.name().into(), None);
        let offset = addr.checked_sub(symbol.address())?;
        let mut text = format!("{name}+{offset:#x}");
        if let Ok(Some(location)) = self.loader.find_location(probe)
            && let Some(file) = location.file
        {
            text.push_str(&format!(" ({}", short_path(file)));
            if let Some(line) = location.line {
                text.push_str(&format!(":{line}"));
            }
            text.push(')');
        }
        Some(text)
    }
}

/// A source path as far as its crate: `/work/main/kernel/src/mm/heap.rs` as
/// `kernel/src/mm/heap.rs`, `/rustc/HASH/library/core/src/ptr/mod.rs` as
/// `core/src/ptr/mod.rs`; a path without `/src/` whole.
fn short_path(path: &str) -> &str {
    let Some(src) = path.rfind("/src/") else {
        return path;
    };
    match path[..src].rfind('/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

/// Every `kernel VERSION PROFILE id=HEX` string in `file`'s read-only data.
fn find_build_ids(file: &object::File<'_>) -> Vec<String> {
    let mut ids = Vec::new();
    for section in file.sections() {
        let is_rodata = section
            .name()
            .is_ok_and(|name| name == ".rodata" || name.starts_with(".rodata."));
        if !is_rodata {
            continue;
        }
        let Ok(data) = section.data() else { continue };
        ids.extend(build_ids_in(data));
    }
    ids.sort();
    ids.dedup();
    ids
}

/// The build-id strings in `data`: `kernel `, then up to 40 printable
/// bytes up to ` id=`, then hex digits.
fn build_ids_in(data: &[u8]) -> Vec<String> {
    const PREFIX: &[u8] = b"kernel ";
    const MARK: &[u8] = b" id=";
    let mut ids = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&data[from..], PREFIX).map(|i| from + i) {
        from = at + 1;
        let window = &data[at..data.len().min(at + PREFIX.len() + 40 + MARK.len())];
        let Some(mark) = find(window, MARK) else {
            continue;
        };
        if !window[..mark]
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ')
        {
            continue;
        }
        let hex_start = at + mark + MARK.len();
        let hex_len = data[hex_start..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if hex_len == 0 {
            continue;
        }
        let id = &data[at..hex_start + hex_len];
        ids.push(String::from_utf8_lossy(id).into_owned());
    }
    ids
}

/// The first index of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Whether the kernel image may be used yet.
#[derive(Debug)]
enum KernelState {
    /// No usable ELF (already said why, or told to stay quiet).
    Off,
    /// Read, waiting for a `Hello` to confirm it is the running kernel.
    Unconfirmed(Box<Image>),
    /// Confirmed by the `Hello`.
    Confirmed(Box<Image>),
}

/// Names for the addresses of a stream of messages: follows the `Hello`
/// (to confirm the ELF) and the process events and listings (pid → program
/// name, for ring-3 addresses).
#[derive(Debug)]
pub struct Symbolizer {
    kernel: KernelState,
    /// `target/user`, next to the kernel ELF: the programs' debug images.
    user_dir: Option<PathBuf>,
    names: HashMap<u32, String>,
    users: HashMap<String, Option<Image>>,
    /// Why there are no symbols, to say once on the error stream.
    pending_warning: Option<String>,
}

impl Symbolizer {
    /// No symbols at all, and nothing to say about it.
    pub fn off() -> Symbolizer {
        Symbolizer {
            kernel: KernelState::Off,
            user_dir: None,
            names: HashMap::new(),
            users: HashMap::new(),
            pending_warning: None,
        }
    }

    /// Symbols from the kernel ELF at `elf`, or from
    /// [`DEFAULT_KERNEL_ELF`] when `elf` is `None` (then a missing file is
    /// no symbols; a given one that is missing is a warning, said on the
    /// first [`observe`](Self::observe)).
    pub fn new(elf: Option<&Path>) -> Symbolizer {
        let mut symbolizer = Symbolizer::off();
        let (path, given) = match elf {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_KERNEL_ELF), false),
        };
        match Image::open(&path) {
            Ok(image) => {
                symbolizer.user_dir = path.parent().map(|dir| dir.join("user"));
                symbolizer.kernel = KernelState::Unconfirmed(Box::new(image));
            }
            Err(SymbolsError::NotFound(_)) if !given => {
                symbolizer.pending_warning = Some(format!(
                    "no symbols: {} not found (use --elf PATH)",
                    path.display()
                ));
            }
            Err(e) => symbolizer.pending_warning = Some(format!("no symbols: {e}")),
        }
        symbolizer
    }

    /// Whether addresses are being named (the ELF matched the `Hello`).
    pub fn is_confirmed(&self) -> bool {
        matches!(self.kernel, KernelState::Confirmed(_))
    }

    /// Takes note of `msg` before it is printed: a `Hello` confirms or
    /// refutes the ELF (a mismatch is said on `err`), process events name
    /// pids. A warning pending from [`new`](Self::new) is said when the
    /// first address that could be named arrives.
    pub fn observe(&mut self, msg: &Msg, err: &mut dyn Write) {
        match msg {
            Msg::Hello(hello) => self.on_hello(&hello.build_id, err),
            Msg::ProcessSpawn(e) | Msg::ProcessRename(e) => {
                self.names.insert(e.pid, e.name.to_string());
            }
            // A late host learns the names from the resync's listing.
            Msg::ProcessInfo(i) => {
                self.names.insert(i.pid, i.name.to_string());
            }
            // Only while a warning is pending: listing a message's
            // addresses allocates.
            _ if self.pending_warning.is_some() && !addresses(msg).is_empty() => {
                if let Some(warning) = self.pending_warning.take() {
                    let _ = writeln!(err, "mmtop: {warning}");
                }
            }
            _ => {}
        }
    }

    fn on_hello(&mut self, build_id: &str, err: &mut dyn Write) {
        let kernel = std::mem::replace(&mut self.kernel, KernelState::Off);
        let image = match kernel {
            KernelState::Off => return,
            KernelState::Unconfirmed(image) | KernelState::Confirmed(image) => image,
        };
        if image.build_ids().iter().any(|id| id == build_id) && build_id.contains(" id=") {
            self.kernel = KernelState::Confirmed(image);
            return;
        }
        let found = match image.build_ids() {
            [] => "no kernel build id".to_string(),
            [one] => one.clone(),
            many => many.join(", "),
        };
        self.pending_warning = None;
        self.users.clear();
        let _ = writeln!(
            err,
            "mmtop: {} is not the running kernel (build {found} vs {build_id}); no symbols",
            image.path().display()
        );
    }

    /// The names of `msg`'s addresses, where they have one.
    pub fn annotate(&mut self, msg: &Msg) -> Vec<Annotation> {
        if !self.is_confirmed() {
            return Vec::new();
        }
        let mut notes = Vec::new();
        for (field, addr, pid, is_return) in addresses(msg) {
            if let Some(symbol) = self.symbolize(addr, pid, is_return) {
                notes.push(Annotation {
                    field,
                    addr,
                    symbol,
                });
            }
        }
        notes
    }

    /// The call site of a kernel allocation's stack (return addresses,
    /// innermost first, 0 past the last): the first frame that is not the
    /// allocator's own (the heap, `GlobalAlloc`, `Box`, `Vec` and the rest
    /// of `alloc` and `core`), with its name. Without names the innermost
    /// frame is all there is to give.
    pub fn call_site(&mut self, stack: &[u64]) -> Option<(u64, Option<String>)> {
        let frames: Vec<u64> = stack.iter().copied().take_while(|&a| a != 0).collect();
        let first = *frames.first()?;
        if !self.is_confirmed() {
            return Some((first, None));
        }
        let named: Vec<(u64, Option<String>)> = frames
            .iter()
            .map(|&a| (a, self.symbolize(a, Some(KERNEL_PID), true)))
            .collect();
        named
            .iter()
            .find(|(_, name)| name.as_deref().is_some_and(|n| !is_allocator_frame(n)))
            .or(named.first())
            .cloned()
    }

    /// `addr` named: from the kernel ELF for a kernel-half address, from
    /// the debug image of process `pid`'s program for a ring-3 one.
    pub fn symbolize(&mut self, addr: u64, pid: Option<u32>, is_return: bool) -> Option<String> {
        let KernelState::Confirmed(kernel) = &mut self.kernel else {
            return None;
        };
        if addr >= KERNEL_HALF {
            return kernel.symbolize(addr, is_return);
        }
        if addr >= USER_END {
            return None;
        }
        let name = self.names.get(&pid?)?;
        let dir = self.user_dir.as_ref()?;
        let image = self
            .users
            .entry(name.clone())
            .or_insert_with(|| Image::open(&dir.join(format!("{name}.debug"))).ok())
            .as_mut()?;
        image.symbolize(addr, is_return)
    }
}

/// The addresses in `msg` that can be named: (field, address, the process
/// whose address space it is in if known, whether it is a return address).
/// Whether a symbolized frame belongs to the allocation path rather than
/// to the code that asked for memory.
pub fn is_allocator_frame(symbol: &str) -> bool {
    const PATHS: [&str; 10] = [
        "__rustc::",
        "alloc::",
        "<alloc::",
        "core::",
        "<core::",
        "__rust_",
        "__rdl_",
        "__rg_",
        "kernel::memory::heap::",
        "<kernel::memory::heap::",
    ];
    PATHS.iter().any(|p| symbol.starts_with(p))
}

fn addresses(msg: &Msg) -> Vec<(&'static str, u64, Option<u32>, bool)> {
    let kernel = Some(KERNEL_PID);
    match msg {
        Msg::PageAlloc(e) | Msg::PageFree(e) => vec![("caller", e.caller, kernel, true)],
        Msg::Map(e) | Msg::Unmap(e) => vec![("caller", e.caller, kernel, true)],
        Msg::HeapAlloc(e) | Msg::HeapFree(e) => vec![("caller", e.caller, Some(e.pid), true)],
        Msg::HeapError(e) => vec![("caller", e.caller, kernel, true)],
        Msg::FrameError(e) => vec![("caller", e.caller, kernel, true)],
        Msg::Exception(e) => vec![("rip", e.rip, None, false)],
        Msg::PageFault(f) => vec![("rip", f.rip, Some(f.pid), false)],
        // The kernel heap's allocation key is its caller.
        Msg::HeapBlock(b) if b.pid == KERNEL_PID && b.used => {
            vec![("key", b.key, kernel, true)]
        }
        Msg::Leak(l) | Msg::BlocksInUse(l) if l.pid == KERNEL_PID => {
            vec![("key", l.key, kernel, true)]
        }
        Msg::KernelLeak(l) => l
            .stack
            .iter()
            .take_while(|&&a| a != 0)
            .map(|&a| ("stack", a, kernel, true))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_frames_are_told_from_call_sites() {
        for name in [
            "alloc::boxed::Box<T>::new+0x1a (alloc/src/boxed.rs:260)",
            "<alloc::alloc::Global as core::alloc::Allocator>::allocate+0x9",
            "__rust_alloc+0x5",
            "<kernel::memory::heap::KernelAllocator as core::alloc::global::GlobalAlloc>::alloc+0x33",
            "kernel::memory::heap::kmalloc+0x20",
        ] {
            assert!(is_allocator_frame(name), "{name}");
        }
        for name in [
            "kernel::selftest::kleak::leak_from_a+0x9",
            "kernel::proc::spawn+0x100",
            "<kernel::proc::Table as core::default::Default>::default+0x3",
        ] {
            assert!(!is_allocator_frame(name), "{name}");
        }
    }

    #[test]
    fn build_ids_are_found_between_other_bytes() {
        let data = b"\x01\x02kernel 0.1.0 debug id=02d685f2062e0e95panicked at kernel x id=zz\
                     kernel 0.2.0 release id=ab";
        assert_eq!(
            build_ids_in(data),
            [
                "kernel 0.1.0 debug id=02d685f2062e0e95",
                "kernel 0.2.0 release id=ab"
            ]
        );
        assert!(build_ids_in(b"kernel 0.1.0 debug").is_empty());
        assert!(build_ids_in(b"").is_empty());
    }

    #[test]
    fn source_paths_are_shortened_to_their_crate() {
        assert_eq!(
            short_path("/work/main/kernel/src/mm/heap.rs"),
            "kernel/src/mm/heap.rs"
        );
        assert_eq!(
            short_path("/rustc/abc/library/core/src/ptr/mod.rs"),
            "core/src/ptr/mod.rs"
        );
        assert_eq!(short_path("src/main.rs"), "src/main.rs");
        assert_eq!(short_path("asm.s"), "asm.s");
    }
}
