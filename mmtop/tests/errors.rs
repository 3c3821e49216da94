//! Connect errors that say what to do: a recording that is a directory, a
//! socket with no kernel behind it, a socket given where a serial device
//! is expected. Each exits 2 with a line that points at the fix.

mod common;

use std::os::unix::net::UnixListener;

use common::*;

#[test]
fn a_directory_is_not_a_recording() {
    let dir = TempDir::new();
    let path = dir.path("rec");
    std::fs::create_dir(&path).unwrap();
    let out = Mmtop::spawn(&["log", "--connect", &format!("file:{}", path_str(&path))]).finish();
    assert_eq!(out.code(), 2, "{out:?}");
    out.assert_stderr_ends_with("it is a directory\n");
}

#[test]
fn a_stale_socket_says_the_kernel_may_not_be_running_and_how_to_start_it() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    // Bound, never listening, then closed: a socket file nobody serves.
    drop(UnixListener::bind(&sock).unwrap());
    let out = Mmtop::spawn(&["ping", "--connect", &format!("unix:{}", path_str(&sock))]).finish();
    assert_eq!(out.code(), 2, "{out:?}");
    out.assert_stderr_contains("connection refused; the kernel may not be running");
    out.assert_stderr_contains("make start");
}

#[test]
fn a_socket_given_as_a_serial_device_suggests_unix() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let path = path_str(&sock).to_string();
    let out = Mmtop::spawn(&["log", "--connect", &path]).finish();
    assert_eq!(out.code(), 2, "{out:?}");
    out.assert_stderr_contains(&format!("connect with unix:{path}"));
}

#[test]
fn a_recording_that_ends_before_count_exits_1_and_says_so() {
    let bytes = frames(&boot_messages());
    let n = boot_messages().len();
    let out = run_on_recording("log", &bytes, &["--count", "100"]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(out.lines().len(), n);
    out.assert_stderr_contains(&format!("ended after {n} of 100 messages"));
    let out = run_on_recording("log", &bytes, &[]);
    assert_eq!(
        out.code(),
        0,
        "without --count the end is the goal: {out:?}"
    );
}
