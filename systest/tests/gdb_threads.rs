//! Processes as gdb threads, against `twins`: a parent and its forked child
//! that hold different values in the same global at the same address.
//! Real gdb lists the kernel and both processes as threads, reads the
//! global in each one's own address space (by `thread N` and by `thread
//! apply all`), follows each one's own user stack in a backtrace, and
//! refuses the read in the kernel's thread, where the user half is empty.
//! A hardware watchpoint on a heap block fires in the process that
//! stores to it from ring 3. Below gdb, the stub's own binary read (`x`)
//! follows the thread chosen with `Hg` just as gdbstub's `m` does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use systest::rsp::{Rsp, unhex, unrle};
use systest::{Com1, Qemu, QemuConfig, kernel_elf, run_gdb};

/// What `twins` stores in the parent and in the child.
const PARENT_MARK: u64 = 0x7a1e_a000_0000_00a1;
const CHILD_MARK: u64 = 0x7a1e_b000_0000_00b2;

/// One twin as it announced itself on the kernel log.
#[derive(Debug, Clone, Copy)]
struct Twin {
    pid: u32,
    mark: u64,
    at: u64,
    /// The heap block made before the fork (the parent counts in it).
    block: u64,
}

fn hex(word: &str) -> u64 {
    u64::from_str_radix(word.trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("{word:?} is not hex: {e}"))
}

/// Boots `init=twins` and waits until both have set their mark.
fn boot(name: &str) -> (Qemu, Twin, Twin) {
    let cfg = QemuConfig {
        append: "memevents=0 init=twins".into(),
        com1: Com1::NoWait,
        ..Default::default()
    };
    let mut qemu = Qemu::start(name, &cfg);
    qemu.wait_debug_log("twins: twin-a ");
    qemu.wait_debug_log("twins: twin-b ");
    let log = qemu.debug_log();
    let block = log
        .lines()
        .find_map(|l| l.split_once("twins: block=").map(|(_, b)| hex(b.trim())))
        .unwrap_or_else(|| panic!("no block line:\n{log}"));
    let twin = |name: &str| {
        let line = log
            .lines()
            .find_map(|l| l.split_once(&format!("twins: {name} ")).map(|(_, r)| r))
            .unwrap_or_else(|| panic!("no line of {name}:\n{log}"));
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        };
        Twin {
            pid: field("pid=").parse().expect("a pid"),
            mark: hex(field("mark=")),
            at: hex(field("at=")),
            block,
        }
    };
    let (a, b) = (twin("twin-a"), twin("twin-b"));
    assert_eq!((a.mark, b.mark), (PARENT_MARK, CHILD_MARK), "{log}");
    assert_eq!(a.at, b.at, "one program, one address for its global");
    assert_ne!(a.pid, b.pid);
    (qemu, a, b)
}

/// `target/user/twins.debug`, the program with its symbols.
fn twins_debug() -> PathBuf {
    let elf = kernel_elf();
    let path = elf.parent().expect("target dir").join("user/twins.debug");
    assert!(
        path.is_file(),
        "{} is built with the kernel",
        path.display()
    );
    path
}

/// gdb thread number -> the pid `info threads` shows for it.
fn thread_pids(out: &str) -> BTreeMap<u32, u32> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim_start_matches('*').trim_start();
            let (num, rest) = l.split_once(char::is_whitespace)?;
            let num: u32 = num.parse().ok()?;
            let pid = rest.split_once("(pid ")?.1.split_whitespace().next()?;
            Some((num, pid.parse().ok()?))
        })
        .collect()
}

/// The text gdb printed after `[Switching to thread N ...]`, up to the next
/// switch, for every N.
fn after_switch(out: &str) -> BTreeMap<u32, String> {
    let mut blocks = BTreeMap::new();
    let mut current: Option<(u32, String)> = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("[Switching to thread ") {
            if let Some((n, text)) = current.take() {
                blocks.insert(n, text);
            }
            let n = rest.split_whitespace().next().and_then(|w| w.parse().ok());
            current = n.map(|n| (n, String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    if let Some((n, text)) = current {
        blocks.insert(n, text);
    }
    blocks
}

/// The value of an `x/gx` line at `addr` in `text`, if any.
fn word_at(text: &str, addr: u64) -> Option<u64> {
    let prefix = format!("{addr:#x}");
    text.lines()
        .find(|l| l.starts_with(&prefix) && l.contains(':'))
        .and_then(|l| l.rsplit_once(char::is_whitespace))
        .map(|(_, v)| hex(v))
}

/// The line `pattern` starts on in `twins.rs`.
fn source_line(pattern: &str) -> usize {
    let source = include_str!("../../user/src/bin/twins.rs");
    source
        .lines()
        .position(|l| l.contains(pattern))
        .unwrap_or_else(|| panic!("{pattern:?} in twins.rs"))
        + 1
}

#[test]
fn each_thread_reads_its_own_process_memory_and_stack() {
    let (qemu, a, b) = boot("gdb-threads");
    let port = qemu.com2_port.expect("COM2 configured");
    let at = a.at;
    let mut cmds = vec![
        "set pagination off".to_string(),
        format!("add-symbol-file {}", twins_debug().display()),
        format!("target remote 127.0.0.1:{port}"),
        "info threads".into(),
    ];
    // Every thread by number: three at least (kernel, twin-a, twin-b).
    for n in 1..=3 {
        cmds.push(format!("thread {n}"));
        cmds.push(format!("x/gx {at:#x}"));
        cmds.push("bt 8".into());
    }
    cmds.push(format!("thread apply all -s x/gx {at:#x}"));
    cmds.push("detach".into());
    let out = run_gdb(&cmds);
    println!("{out}");

    let pids = thread_pids(&out);
    let number_of = |pid: u32| {
        pids.iter()
            .find(|&(_, &p)| p == pid)
            .map(|(&n, _)| n)
            .unwrap_or_else(|| panic!("no thread for pid {pid} in:\n{out}"))
    };
    let (kernel, ta, tb) = (number_of(0), number_of(a.pid), number_of(b.pid));
    assert_eq!(pids.len(), 3, "kernel, twin-a and twin-b:\n{out}");
    assert!(out.contains(&format!("(pid {} twin-a, ", a.pid)), "{out}");
    assert!(out.contains(&format!("(pid {} twin-b, ", b.pid)), "{out}");

    // `thread N` then `x`: each process's own value at the same address.
    let blocks = after_switch(&out);
    let block = |n: u32| {
        blocks
            .get(&n)
            .unwrap_or_else(|| panic!("no output after thread {n}:\n{out}"))
    };
    assert_eq!(word_at(block(ta), at), Some(PARENT_MARK), "{}", block(ta));
    assert_eq!(word_at(block(tb), at), Some(CHILD_MARK), "{}", block(tb));
    assert!(
        block(kernel).contains(&format!("Cannot access memory at address {at:#x}")),
        "the kernel's thread has no user half:\n{}",
        block(kernel)
    );

    // Backtraces walk each process's own stack: same code, same stack
    // addresses, but each went through its own arm of the fork.
    let parent_line = format!("twins.rs:{}", source_line("Ok(Fork::Parent(_))"));
    let child_line = format!("twins.rs:{}", source_line("Ok(Fork::Child)"));
    for (n, own, other) in [
        (ta, &parent_line, &child_line),
        (tb, &child_line, &parent_line),
    ] {
        let text = block(n);
        assert!(text.contains("twins::settle"), "{text}");
        assert!(text.contains(own.as_str()), "{own} in:\n{text}");
        assert!(!text.contains(other.as_str()), "not {other} in:\n{text}");
    }

    // `thread apply all` agrees.
    assert_eq!(
        applied_value(&out, a.pid, "twin-a", at),
        Some(PARENT_MARK),
        "{out}"
    );
    assert_eq!(
        applied_value(&out, b.pid, "twin-b", at),
        Some(CHILD_MARK),
        "{out}"
    );
    assert!(out.contains("detached"), "{out}");

    // `monitor whatis` and `ptdump` take the pid whose tables to walk.
    let page = at & !0xfff;
    let out = run_gdb(&[
        "set pagination off".to_string(),
        format!("target remote 127.0.0.1:{port}"),
        format!("monitor whatis {at:#x} {}", a.pid),
        format!("monitor whatis {at:#x} {}", b.pid),
        format!("monitor whatis {at:#x} 0"),
        format!("monitor whatis {at:#x} 999"),
        format!("monitor ptdump {} {page:#x} {:#x}", a.pid, page + 0x1000),
        format!("monitor ptdump {} {page:#x} {:#x}", b.pid, page + 0x1000),
        "detach".into(),
    ]);
    println!("{out}");
    let lines = |prefix: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
            .collect()
    };
    let mappings = lines("in a mapping of pid ");
    assert_eq!(
        mappings,
        [
            format!("{} (twin-a):", a.pid),
            format!("{} (twin-b):", b.pid)
        ],
        "{out}"
    );
    let frames = lines("physical ");
    assert_eq!(frames.len(), 2, "{out}");
    assert_ne!(
        frames[0], frames[1],
        "each twin's page has its own frame:\n{out}"
    );
    for (f, pid) in frames.iter().zip([a.pid, b.pid]) {
        assert!(
            f.ends_with(&format!("owned by Process({pid})")),
            "{f} for pid {pid}"
        );
    }
    let leaves = lines(&format!("{page:#018x}-"));
    assert_eq!(leaves.len(), 2, "{out}");
    assert_ne!(leaves[0], leaves[1], "{out}");
    assert!(
        out.contains(&format!(
            "{at:#x}: not mapped in the address space of pid 0 kernel"
        )),
        "{out}"
    );
    assert!(out.contains("no live process with pid 999"), "{out}");
}

/// The value `thread apply all -s x/gx ADDR` printed under the header of
/// the thread of `pid` called `name`.
fn applied_value(out: &str, pid: u32, name: &str, addr: u64) -> Option<u64> {
    // `Thread 2 (Thread 1.2 (pid 1 twin-a, sleeping)):`, then its value.
    let head = format!("(pid {pid} {name}, ");
    let mut lines = out
        .lines()
        .skip_while(|l| !(l.starts_with("Thread ") && l.contains(&head)));
    lines.next()?;
    word_at(lines.next().unwrap_or(""), addr)
}

#[test]
fn hardware_watchpoint_on_a_heap_block_fires_when_the_program_stores_to_it() {
    let (qemu, a, b) = boot("gdb-threads-watch");
    let port = qemu.com2_port.expect("COM2 configured");
    let watched = format!("*(unsigned long *){:#x}", a.block);
    let out = run_gdb(&[
        "set pagination off".to_string(),
        format!("add-symbol-file {}", twins_debug().display()),
        format!("target remote 127.0.0.1:{port}"),
        "set language c".into(),
        format!("watch {watched}"),
        "continue".into(),
        "continue".into(),
        "bt 3".into(),
        "info threads".into(),
        format!("monitor whatis {:#x}", a.block),
        "delete".into(),
        format!("thread apply all -s x/gx {:#x}", a.block),
        "detach".into(),
    ]);
    println!("{out}");
    let label = format!("Hardware watchpoint 1: {watched}");
    assert!(out.contains(&label), "set in hardware:\n{out}");
    // Both stops are in twin-a, the process that stores.
    let pids = thread_pids(&out);
    let stopped_in = out
        .lines()
        .filter_map(|l| {
            l.strip_prefix("Thread ")?
                .split_once(" hit Hardware watchpoint 1")
        })
        .map(|(n, _)| pids.get(&n.parse::<u32>().expect("thread number")).copied())
        .collect::<Vec<_>>();
    assert_eq!(stopped_in, [Some(a.pid), Some(a.pid)], "{out}");
    // The second stop saw exactly one more store.
    let second = out.rsplit(&label).next().expect("split");
    let value = |label: &str| -> u64 {
        second
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} line:\n{out}"))
    };
    let last = value("New value = ");
    assert_eq!(last, value("Old value = ") + 1, "{out}");
    assert!(
        out.contains("twins::settle"),
        "stopped in the store:\n{out}"
    );
    // `whatis` without a pid looks in the process the kernel stopped in:
    // the heap block, its size and key.
    let block_line = format!("block {:#x}: 8 bytes used, key 7, offset 0", a.block);
    assert!(out.contains(&block_line), "{block_line:?} in:\n{out}");
    let mapping = format!("in a mapping of pid {} (twin-a):", a.pid);
    assert!(out.contains(&mapping), "{mapping:?} in:\n{out}");
    // The parent's block holds the count; the child's copy was never
    // written after the fork.
    assert_eq!(
        applied_value(&out, a.pid, "twin-a", a.block),
        Some(last),
        "{out}"
    );
    assert_eq!(
        applied_value(&out, b.pid, "twin-b", b.block),
        Some(0),
        "{out}"
    );

    // Detached with the watchpoint gone: the parent counts on.
    let again = run_gdb(&[
        "set pagination off".to_string(),
        format!("target remote 127.0.0.1:{port}"),
        format!("thread apply all -s x/gx {:#x}", a.block),
        "detach".into(),
    ]);
    let now = applied_value(&again, a.pid, "twin-a", a.block)
        .unwrap_or_else(|| panic!("no value for twin-a:\n{again}"));
    assert!(
        now > last,
        "the count went on after detach: {now} <= {last}"
    );
}

/// `qThreadExtraInfo` of `tid`, decoded.
fn extra_info(stub: &mut Rsp, tid: &str) -> String {
    let reply = stub.command(format!("qThreadExtraInfo,{tid}").as_bytes());
    String::from_utf8(unhex(&reply)).expect("UTF-8 extra info")
}

#[test]
fn binary_reads_follow_the_thread_selected_with_hg() {
    let (qemu, a, b) = boot("gdb-threads-x");
    let mut stub = Rsp::connect(qemu.com2_port.expect("COM2"));
    let (features, _) = stub.handshake();
    assert!(features.contains("binary-upload+"), "{features}");

    // Thread ids in pid + 1 order; the stopped thread first.
    let list = String::from_utf8(stub.command(b"qfThreadInfo")).expect("text");
    let ids: Vec<String> = list
        .strip_prefix('m')
        .unwrap_or_else(|| panic!("thread list {list:?}"))
        .split(',')
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
        .collect();
    assert_eq!(stub.command(b"qsThreadInfo"), b"l");
    let find = |stub: &mut Rsp, name: &str| {
        ids.iter()
            .find(|t| extra_info(stub, t).contains(name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} among {ids:?}"))
    };
    let (ta, tb) = (find(&mut stub, "twin-a"), find(&mut stub, "twin-b"));
    assert_eq!(hex(&ta), u64::from(a.pid) + 1, "tid = pid + 1");
    assert_eq!(hex(&tb), u64::from(b.pid) + 1, "tid = pid + 1");

    for (select, mark) in [
        (format!("Hg{ta}"), PARENT_MARK),
        (format!("Hgp1.{tb}"), CHILD_MARK),
        (format!("Hg{ta}"), PARENT_MARK),
    ] {
        assert_eq!(stub.command(select.as_bytes()), b"OK", "{select}");
        let want = mark.to_le_bytes().to_vec();
        assert_eq!(stub.read_hex(a.at, 8), Ok(want.clone()), "m after {select}");
        assert_eq!(stub.read_binary(a.at, 8), Ok(want), "x after {select}");
        // A sleeping program's registers are its ring-3 frame: its code,
        // its stack, user selectors.
        let regs = unhex(&unrle(&stub.command(b"g")));
        let word = |i: usize| u64::from_le_bytes(regs[i * 8..i * 8 + 8].try_into().unwrap());
        let (rsp, rip) = (word(7), word(16));
        assert!((0x40_0000..0x80_0000).contains(&rip), "rip {rip:#x}");
        assert!(
            rsp > 0x7000_0000_0000 && rsp < 0x8000_0000_0000,
            "rsp {rsp:#x}"
        );
        let cs = u32::from_le_bytes(regs[17 * 8 + 4..17 * 8 + 8].try_into().unwrap());
        assert_eq!(cs & 3, 3, "ring-3 code selector {cs:#x}");
    }

    // Any thread (0) is the stopped one, listed first: almost always the
    // idle kernel, whose address space has no user half.
    let stopped = extra_info(&mut stub, &ids[0]);
    let want = if stopped.contains("twin-a") {
        Ok(PARENT_MARK.to_le_bytes().to_vec())
    } else if stopped.contains("twin-b") {
        Ok(CHILD_MARK.to_le_bytes().to_vec())
    } else {
        assert!(stopped.starts_with("pid 0 kernel"), "{stopped}");
        Err(())
    };
    assert_eq!(stub.command(b"Hg0"), b"OK");
    assert_eq!(stub.read_binary(a.at, 8).map_err(drop), want);
    assert_eq!(stub.read_hex(a.at, 8).map_err(drop), want);
    // A thread that does not exist reads nothing either.
    assert_eq!(stub.command(b"Hg7f"), b"OK");
    assert!(stub.read_binary(a.at, 8).is_err());
    assert_eq!(stub.command(b"D"), b"OK");
}
