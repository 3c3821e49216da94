//! Links the bare-metal kernel with its linker script and embeds the ring-3
//! programs of `user/`; host builds are untouched.
//!
//! For `target_os = "none"` the programs are built by a nested `cargo build`
//! of the independent `user/` workspace, with flags of their own: the root
//! `.cargo/config.toml` gives the kernel `code-model=kernel`, which user
//! code must not get, so `CARGO_ENCODED_RUSTFLAGS` (which overrides every
//! configured flag) carries the user flags, and everything the outer build
//! sets for itself (wrappers such as clippy-driver, target directory,
//! profile and jobserver variables) is removed from the nested build's
//! environment.
//!
//! Each program is then embedded without its section headers and debug
//! information (the kernel reads only the program headers and segments);
//! the full file stays next to it for gdb. `$OUT_DIR/programs.rs` lists
//! them for `proc::programs`, and both files are copied to
//! `target/user/NAME` (embedded image) and `target/user/NAME.debug` for
//! tests and debuggers.

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the user programs are built for.
const USER_TARGET: &str = "x86_64-unknown-none";

fn main() {
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=linker.ld");
    let repo_root = Path::new(&dir)
        .parent()
        .expect("the kernel crate lives in the repository");
    println!(
        "cargo:rustc-env=KERNEL_BUILD_ID={:016x}",
        build_id(repo_root)
    );
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        let repo = Path::new(&dir)
            .parent()
            .expect("the kernel crate lives in the repository")
            .to_path_buf();
        let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        embed_user_programs(&repo, &out_dir);
    }
}

/// Builds `user/`, writes `programs.rs` into `out_dir` and copies the
/// images to `target/user/`.
fn embed_user_programs(repo: &Path, out_dir: &Path) {
    let user = repo.join("user");
    for path in ["src", "Cargo.toml", "Cargo.lock", "user.ld"] {
        println!("cargo:rerun-if-changed={}", user.join(path).display());
    }
    for path in ["src", "Cargo.toml"] {
        println!(
            "cargo:rerun-if-changed={}",
            repo.join("sysabi").join(path).display()
        );
    }

    let names = program_names(&user.join("src/bin"));
    let target_dir = out_dir.join("user-target");
    build_user_crate(&user, &target_dir);

    let built = target_dir.join(USER_TARGET).join("release");
    let images = out_dir.join("user-images");
    let copies = repo.join("target").join("user");
    fs::create_dir_all(&images).expect("create the embedded-images directory");
    fs::create_dir_all(&copies).expect("create target/user");

    let mut list = String::from(
        "/// Every program built from `user/`: its spawn name and ELF image.\n\
         pub static PROGRAMS: &[(&str, &[u8])] = &[\n",
    );
    for name in &names {
        let full = built.join(name);
        let elf = fs::read(&full)
            .unwrap_or_else(|e| panic!("user program {} not built: {e}", full.display()));
        let image = loadable_prefix(&elf)
            .unwrap_or_else(|why| panic!("user program {name} is not a usable ELF: {why}"));
        let image_path = images.join(name);
        fs::write(&image_path, &image).expect("write an embedded image");
        copy_atomically(&image, &copies.join(name));
        copy_atomically(&elf, &copies.join(format!("{name}.debug")));
        writeln!(
            list,
            "    ({name:?}, include_bytes!({:?})),",
            image_path.display().to_string()
        )
        .expect("writing to a String cannot fail");
    }
    list.push_str("];\n");
    fs::write(out_dir.join("programs.rs"), list).expect("write programs.rs");
}

/// The programs: one per `src/bin/NAME.rs`, sorted.
fn program_names(bin_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(bin_dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", bin_dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no programs in {}", bin_dir.display());
    names
}

/// The flags of user code: a fixed-address executable at 0x400000 (the
/// small code model, no PIE), laid out by `user/user.ld`, with frame
/// pointers for backtraces.
fn user_rustflags(user: &Path) -> String {
    [
        "-Crelocation-model=static".to_string(),
        "-Ccode-model=small".to_string(),
        "-Cforce-frame-pointers=yes".to_string(),
        format!("-Clink-arg=-T{}", user.join("user.ld").display()),
        "-Clink-arg=--no-pie".to_string(),
    ]
    .join("\x1f")
}

/// Whether the outer build's variable `key` must not reach the nested
/// build: cargo's own configuration and job control, rustc wrappers (clippy
/// runs this script through one) and flags meant for the kernel.
fn leaks_from_outer_build(key: &str) -> bool {
    if key == "CARGO_HOME" || key == "CARGO_NET_OFFLINE" {
        return false;
    }
    key.starts_with("CARGO_")
        || key.starts_with("__CARGO")
        || key.starts_with("CLIPPY_")
        || matches!(
            key,
            "RUSTC_WRAPPER"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "RUSTFLAGS"
                | "RUSTDOCFLAGS"
                | "MAKEFLAGS"
                | "MFLAGS"
                | "TARGET"
                | "HOST"
                | "OUT_DIR"
                | "PROFILE"
                | "OPT_LEVEL"
                | "DEBUG"
                | "NUM_JOBS"
                | "RUSTC_LINKER"
        )
}

/// Runs `cargo build --release` of `user/` into `target_dir`; fails the
/// kernel build with the nested build's output if it fails.
fn build_user_crate(user: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .current_dir(user)
        .args(["build", "--release", "--offline", "--manifest-path"])
        .arg(user.join("Cargo.toml"))
        .args(["--target", USER_TARGET, "--target-dir"])
        .arg(target_dir);
    for (key, _) in env::vars_os() {
        if key.to_str().is_some_and(leaks_from_outer_build) {
            command.env_remove(&key);
        }
    }
    command.env("CARGO_ENCODED_RUSTFLAGS", user_rustflags(user));
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the user programs: {e}"));
    if !output.status.success() {
        panic!(
            "building the user programs (user/) failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The start of `elf` up to the end of its last segment's file bytes, with
/// the section header fields cleared: everything a loader reads, without
/// symbols and debug information (which the linker places after the
/// segments).
fn loadable_prefix(elf: &[u8]) -> Result<Vec<u8>, String> {
    let field = |at: usize, len: usize| -> Result<u64, String> {
        let bytes = elf
            .get(at..at + len)
            .ok_or_else(|| format!("truncated at byte {at}"))?;
        let mut value = [0u8; 8];
        value[..len].copy_from_slice(bytes);
        Ok(u64::from_le_bytes(value))
    };
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) || elf.get(4) != Some(&2) {
        return Err("not an ELF64 file".into());
    }
    let phoff = field(32, 8)? as usize;
    let phentsize = field(54, 2)? as usize;
    let phnum = field(56, 2)? as usize;
    let mut end = phoff + phentsize * phnum;
    for index in 0..phnum {
        let at = phoff + index * phentsize;
        let offset = field(at + 8, 8)?;
        let file_size = field(at + 32, 8)?;
        end = end.max((offset + file_size) as usize);
    }
    let mut image = elf
        .get(..end)
        .ok_or("segments extend past the end of the file")?
        .to_vec();
    // e_shoff, e_shnum, e_shstrndx: no section headers.
    image[40..48].fill(0);
    image[60..64].fill(0);
    Ok(image)
}

/// Writes `bytes` to `path` through a temporary file, so a concurrent build
/// (clippy and build run this script separately) never leaves half a file.
fn copy_atomically(bytes: &[u8], path: &Path) {
    let name = path
        .file_name()
        .expect("a copy's path names a file")
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    fs::write(&tmp, bytes).expect("write a copy of a user program");
    fs::rename(&tmp, path).expect("rename a copy of a user program");
}

/// What the build id covers: the sources of the kernel, of the crates it
/// uses from this repository and of the embedded user programs.
const BUILD_ID_INPUTS: &[&str] = &[
    "kernel/src",
    "kernel/Cargo.toml",
    "kernel/linker.ld",
    "probe-proto/src",
    "probe-proto/Cargo.toml",
    "sysabi/src",
    "sysabi/Cargo.toml",
    "user/src",
    "user/Cargo.toml",
    "user/user.ld",
    "Cargo.lock",
];

/// A 64-bit FNV-1a hash of every file under [`BUILD_ID_INPUTS`] (paths and
/// contents, in sorted order) and of the profile, target and flags: the
/// `id=` of `BUILD_ID`, which mmtop compares with the one it finds in the
/// ELF it reads symbols from. Any edit to those sources changes it, so a
/// stale ELF is never taken for the running kernel.
fn build_id(repo: &Path) -> u64 {
    let mut files = Vec::new();
    for input in BUILD_ID_INPUTS {
        let path = repo.join(input);
        println!("cargo:rerun-if-changed={}", path.display());
        collect_files(&path, &mut files);
    }
    files.sort();
    let mut hash = Fnv1a::new();
    for file in &files {
        let relative = file.strip_prefix(repo).unwrap_or(file);
        hash.write(relative.to_string_lossy().as_bytes());
        hash.write(&[0]);
        hash.write(&fs::read(file).unwrap_or_default());
        hash.write(&[0]);
    }
    for key in ["PROFILE", "TARGET", "OPT_LEVEL", "CARGO_ENCODED_RUSTFLAGS"] {
        hash.write(env::var(key).unwrap_or_default().as_bytes());
        hash.write(&[0]);
    }
    hash.0
}

/// Every regular file under `path` (or `path` itself), into `files`.
fn collect_files(path: &Path, files: &mut Vec<PathBuf>) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    if meta.is_file() {
        files.push(path.to_path_buf());
    } else if meta.is_dir() {
        let Ok(entries) = fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            collect_files(&entry.path(), files);
        }
    }
}

/// The 64-bit FNV-1a hash: small, stable across Rust versions (unlike
/// `DefaultHasher`).
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
