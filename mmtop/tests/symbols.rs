//! The symbolizer on the real kernel ELF: `$KERNEL_ELF` (`make test` sets
//! it). Without it the tests are skipped with a message, except under CI,
//! where they fail.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use mmtop::Msg;
use mmtop::format::Format;
use mmtop::symbols::{Image, Symbolizer};
use object::{Object, ObjectSymbol};
use probe_proto::{Exception, HeapBlock, HeapEvent, Hello, PROTOCOL_VERSION};

/// The kernel ELF, or `None` (after saying why) when the tests may be
/// skipped.
fn kernel_elf() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KERNEL_ELF") {
        return Some(PathBuf::from(path));
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "KERNEL_ELF is not set under CI: run the tests through `make test`"
    );
    eprintln!("skipping: set KERNEL_ELF to the kernel ELF (make kernel) to test symbols");
    None
}

/// The address of the symbol named `name` in the ELF at `path`: exactly,
/// or for a name ending in `17h`, a mangled one with any hash.
fn symbol_address(path: &Path, name: &str) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    file.symbols()
        .find(|symbol| {
            symbol
                .name()
                .is_ok_and(|s| s == name || (name.ends_with("17h") && s.starts_with(name)))
        })
        .unwrap_or_else(|| panic!("{name} is not in {}", path.display()))
        .address()
}

/// The ELF's own build id: the one string `kernel ... id=HEX` in it.
fn build_id(path: &Path) -> String {
    let image = Image::open(path).unwrap();
    match image.build_ids() {
        [one] => one.clone(),
        other => panic!("expected one build id in {}: {other:?}", path.display()),
    }
}

fn hello(build_id: &str) -> Msg {
    Msg::Hello(Hello {
        version: PROTOCOL_VERSION,
        build_id: Cow::Owned(build_id.into()),
        mem_total_bytes: 1 << 27,
        mem_usable_bytes: 1 << 27,
        nr_regions: 0,
        features: 0,
        cmdline: "".into(),
        uptime_us: 0,
        tsc_hz: 2_000_000_000,
    })
}

fn heap_alloc(caller: u64) -> Msg {
    Msg::HeapAlloc(HeapEvent {
        ts_us: 1,
        pid: 0,
        heap_id: 0,
        addr: 0xffff_8000_0010_0000,
        size: 32,
        align: 8,
        key: caller,
        caller,
    })
}

#[test]
fn the_kernel_elf_carries_its_build_id() {
    let Some(elf) = kernel_elf() else { return };
    let id = build_id(&elf);
    assert!(id.starts_with("kernel 0.1.0 "), "{id}");
    let hex = id.split_once(" id=").expect("an id= part").1;
    assert!(
        hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
}

#[test]
fn an_address_inside_a_function_is_named_with_offset_file_and_line() {
    let Some(elf) = kernel_elf() else { return };
    let kernel_main = symbol_address(&elf, "kernel_main");
    let mut image = Image::open(&elf).unwrap();
    let named = image.symbolize(kernel_main + 0x10, false).unwrap();
    assert!(named.starts_with("kernel_main+0x10 ("), "{named}");
    assert!(named.contains("kernel/src/"), "{named}");
    let line: u32 = named
        .trim_end_matches(')')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("a line number: {named}"));
    assert!(line > 0, "{named}");
    // A return address at a function's start belongs to the call before it.
    assert!(
        !image
            .symbolize(kernel_main, true)
            .is_some_and(|named| named.starts_with("kernel_main+"))
    );
    // Nothing is invented where the ELF has nothing.
    assert_eq!(image.symbolize(0x10, false), None);
}

#[test]
fn a_confirmed_kernel_names_callers_rips_and_kernel_heap_keys() {
    let Some(elf) = kernel_elf() else { return };
    let kmalloc = symbol_address(&elf, "_ZN6kernel6memory4heap7kmalloc17h");
    let mut err = Vec::new();
    let mut symbols = Symbolizer::new(Some(&elf));
    let early = heap_alloc(kmalloc + 8);
    symbols.observe(&early, &mut err);
    assert!(
        symbols.annotate(&early).is_empty(),
        "named before the Hello"
    );

    symbols.observe(&hello(&build_id(&elf)), &mut err);
    assert!(symbols.is_confirmed());
    let notes = symbols.annotate(&early);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].field, "caller");
    assert!(
        notes[0]
            .symbol
            .starts_with("kernel::memory::heap::kmalloc+0x8 ("),
        "{notes:?}"
    );
    let line = Format::Human.annotated_line(&early, &notes);
    assert!(
        line.contains(&format!(
            "caller={:#x} <kernel::memory::heap::kmalloc+0x8 (",
            kmalloc + 8
        )),
        "{line}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&Format::Json.annotated_line(&early, &notes)).unwrap();
    assert_eq!(json["caller"], kmalloc + 8);
    assert_eq!(json["caller_symbol"], notes[0].symbol.as_str());

    let exception = Msg::Exception(Exception {
        ts_us: 2,
        vector: 14,
        error_code: 0,
        cr2: 0,
        rip: kmalloc + 4,
        rsp: 0,
    });
    let notes = symbols.annotate(&exception);
    assert_eq!(notes[0].field, "rip");
    assert!(
        notes[0]
            .symbol
            .starts_with("kernel::memory::heap::kmalloc+0x4 ("),
        "{notes:?}"
    );

    let block = |pid, used| {
        Msg::HeapBlock(HeapBlock {
            pid,
            heap_id: 0,
            addr: 0xffff_8000_0010_0000,
            size: 64,
            used,
            key: kmalloc + 8,
        })
    };
    assert_eq!(symbols.annotate(&block(0, true))[0].field, "key");
    assert!(
        symbols.annotate(&block(0, false)).is_empty(),
        "a free block"
    );
    assert!(
        symbols.annotate(&block(3, true)).is_empty(),
        "a process key"
    );
    assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
}

#[test]
fn a_hello_from_another_build_is_a_warning_and_no_names() {
    let Some(elf) = kernel_elf() else { return };
    let kmalloc = symbol_address(&elf, "_ZN6kernel6memory4heap7kmalloc17h");
    let mut err = Vec::new();
    let mut symbols = Symbolizer::new(Some(&elf));
    symbols.observe(&hello("kernel 0.1.0 debug id=0000000000000000"), &mut err);
    let msg = heap_alloc(kmalloc + 8);
    symbols.observe(&msg, &mut err);
    assert!(symbols.annotate(&msg).is_empty());
    symbols.observe(&msg, &mut err);
    let err = String::from_utf8(err).unwrap();
    assert_eq!(err.lines().count(), 1, "said once: {err}");
    assert!(
        err.starts_with(&format!(
            "mmtop: {} is not the running kernel (build ",
            elf.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("vs kernel 0.1.0 debug id=0000000000000000); no symbols"),
        "{err}"
    );
}

#[test]
fn a_missing_elf_is_said_once_when_an_address_arrives() {
    let mut err = Vec::new();
    let mut symbols = Symbolizer::new(Some(Path::new("/nonexistent/kernel.elf")));
    symbols.observe(&hello("kernel 0.1.0 debug id=00"), &mut err);
    assert!(err.is_empty(), "nothing to name yet");
    let msg = heap_alloc(0xffff_ffff_8000_1000);
    symbols.observe(&msg, &mut err);
    symbols.observe(&msg, &mut err);
    assert!(symbols.annotate(&msg).is_empty());
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "mmtop: no symbols: /nonexistent/kernel.elf not found\n"
    );
}
