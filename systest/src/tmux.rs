//! A program in a real terminal for tests: a detached tmux session whose
//! screen is read with `capture-pane` and typed into with `send-keys`,
//! killed when dropped.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a screen gets to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(90);

/// A detached tmux session, killed when dropped (also when a check fails).
pub struct Tmux {
    name: String,
}

impl Tmux {
    /// Starts `command` in a new 120x40 session named after `name`.
    pub fn start(name: &str, command: &str) -> Tmux {
        let name = format!("{name}-{}", std::process::id());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-x", "120", "-y", "40", "-s", &name])
            .arg(command)
            .status()
            .expect("run tmux (scripts/install-deps.sh installs it)");
        assert!(status.success(), "tmux new-session failed");
        Tmux { name }
    }

    /// The screen, as text.
    pub fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `keys` (tmux key names: `Enter`, `C-c`, or text).
    pub fn keys(&self, keys: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, keys])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Clicks the left button at `column` and `row` (from 0, as the screen
    /// capture counts), as a terminal reports it to a program that asked for
    /// the mouse (SGR encoding: press, then release).
    pub fn click(&self, column: usize, row: usize) {
        let (x, y) = (column + 1, row + 1);
        for end in ['M', 'm'] {
            let status = Command::new("tmux")
                .args(["send-keys", "-t", &self.name, "-l"])
                .arg(format!("\x1b[<0;{x};{y}{end}"))
                .status()
                .expect("tmux send-keys");
            assert!(status.success());
        }
    }

    /// Whether the pane's program is still running.
    pub fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.name])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Polls the pane until `ok` holds; the last capture either way.
    pub fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if ok(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < WAIT,
                "no {what} within {WAIT:?}; the pane shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}
