//! Child processes that never outlive their test.
//!
//! A test that starts a peer (a broker, a Python Modbus server, chromedriver and the
//! browser it launches, the node itself) must end it and everything it started, also
//! when the test fails. Killing the child alone is not enough: chromedriver's browser
//! is its grandchild, and Chromium's crash handlers leave the process group with
//! `setsid`. So every child is started
//! - in a process group of its own (`process_group(0)`), which is killed as a whole;
//! - with `COMMUNALIA_TEST_PROCESS=<tag>` in its environment, which its descendants
//!   inherit, so that even one that left the group is found in `/proc` and killed.
//!
//! [`Reaper::reap`] does both and returns whatever still runs; dropping a [`Reaper`]
//! reaps synchronously, without needing an async runtime that may be shutting down.
//! `.ci/run` checks after the whole suite that no process carries the variable.

use std::io;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

/// The environment variable every process started by a test carries.
pub const MARKER: &str = "COMMUNALIA_TEST_PROCESS";

/// How long killed processes may take to disappear before they count as survivors.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// A process found running under a reaper's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survivor {
    pub pid: i32,
    pub command: String,
}

/// Owns every process started through it, and ends them all when dropped.
#[derive(Debug)]
pub struct Reaper {
    tag: String,
}

impl Default for Reaper {
    fn default() -> Self {
        Self::new()
    }
}

impl Reaper {
    /// A reaper with a tag unique to this test process and this reaper.
    pub fn new() -> Reaper {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Reaper {
            tag: format!("{}-{n}", std::process::id()),
        }
    }

    /// The value of [`MARKER`] in this reaper's processes.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Makes `command` start in a process group of its own, marked with this
    /// reaper's tag.
    pub fn prepare<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        use std::os::unix::process::CommandExt;
        command.process_group(0).env(MARKER, &self.tag)
    }

    /// As [`Reaper::prepare`], for tokio's `Command`.
    pub fn prepare_tokio<'a>(
        &self,
        command: &'a mut tokio::process::Command,
    ) -> &'a mut tokio::process::Command {
        command.process_group(0).env(MARKER, &self.tag)
    }

    /// The processes (zombies aside) that carry this reaper's tag.
    pub fn running(&self) -> Vec<Survivor> {
        marked(Some(&self.tag))
            .into_iter()
            .map(|p| Survivor {
                pid: p.pid,
                command: p.command,
            })
            .collect()
    }

    /// Kills every process this reaper started, with their process groups, and
    /// waits up to five seconds for them to go; returns those still running.
    pub fn reap(&self) -> Vec<Survivor> {
        let own_group = rustix::process::getpgrp();
        kill_until_gone(
            || marked(Some(&self.tag)),
            |process| {
                if let Some(group) = Pid::from_raw(process.group)
                    && group != own_group
                {
                    let _ = kill_process_group(group, Signal::KILL);
                }
            },
        )
    }
}

/// Kills what `find` lists (each process, after `also` on it) until nothing is
/// listed, or [`REAP_WAIT`] has passed; returns what is still listed then.
fn kill_until_gone(find: impl Fn() -> Vec<Marked>, also: impl Fn(&Marked)) -> Vec<Survivor> {
    let deadline = Instant::now() + REAP_WAIT;
    loop {
        let found = find();
        if found.is_empty() {
            return Vec::new();
        }
        for process in &found {
            also(process);
            if let Some(pid) = Pid::from_raw(process.pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        if Instant::now() > deadline {
            return found
                .into_iter()
                .map(|p| Survivor {
                    pid: p.pid,
                    command: p.command,
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let survivors = self.reap();
        if !survivors.is_empty() {
            let message = format!("processes outlived their test: {survivors:?}");
            if std::thread::panicking() {
                eprintln!("{message}");
            } else {
                panic!("{message}");
            }
        }
    }
}

/// A child process (and all it starts) that ends when this value is dropped.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    reaper: Reaper,
}

impl Peer {
    /// Starts `command` under a reaper of its own.
    pub fn spawn(command: &mut Command) -> io::Result<Peer> {
        let reaper = Reaper::new();
        let child = reaper.prepare(command).spawn()?;
        Ok(Peer { child, reaper })
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The first line the child writes to its standard output (which must be
    /// piped), trimmed, waiting at most `within`: the "ready" of a peer script.
    pub fn first_line(&mut self, within: Duration) -> String {
        use std::io::BufRead;
        let stdout = self
            .child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("the peer's standard output is not piped"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        rx.recv_timeout(within)
            .unwrap_or_else(|_| panic!("the peer said nothing within {within:?}"))
            .trim()
            .to_string()
    }

    /// Ends the child and its descendants now; fails if any survives.
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        let _ = self.child.kill();
        let survivors = self.reaper.reap();
        let _ = self.child.wait();
        if !survivors.is_empty() && !std::thread::panicking() {
            panic!("processes outlived their test: {survivors:?}");
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.end();
    }
}

/// Kills every live process whose command line mentions `needle` (a browser's
/// profile directory), waiting up to five seconds for them to go; returns those
/// still running. Chromium's zygotes write their title over their environment,
/// so the marker no longer finds them once they have started: their profile
/// directory, on their command line, still does.
pub fn reap_mentioning(needle: &str) -> Vec<Survivor> {
    kill_until_gone(
        || {
            live_processes()
                .into_iter()
                .filter(|p| p.command.contains(needle))
                .collect()
        },
        |_| {},
    )
}

/// Every running process started by any test (any tag), zombies aside: what
/// `.ci/run` asserts to be empty after the suite.
pub fn all_test_processes() -> Vec<Survivor> {
    marked(None)
        .into_iter()
        .map(|p| Survivor {
            pid: p.pid,
            command: p.command,
        })
        .collect()
}

struct Marked {
    pid: i32,
    group: i32,
    command: String,
}

/// The live processes whose environment holds [`MARKER`] (with value `tag`, when
/// given). A process may end while it is read: it is then simply not listed.
fn marked(tag: Option<&str>) -> Vec<Marked> {
    let wanted = tag.map(|t| format!("{MARKER}={t}"));
    let prefix = format!("{MARKER}=");
    scan(|environ| {
        environ.split(|b| *b == 0).any(|var| match &wanted {
            Some(w) => var == w.as_bytes(),
            None => var.starts_with(prefix.as_bytes()),
        })
    })
}

/// Every live process but this one, zombies aside.
fn live_processes() -> Vec<Marked> {
    scan(|_| true)
}

/// The live processes (this one and zombies aside) whose environment `keep`
/// accepts.
fn scan(keep: impl Fn(&[u8]) -> bool) -> Vec<Marked> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !keep(&environ) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or("?");
        if state == "Z" || state == "X" {
            continue;
        }
        let group = fields.nth(1).and_then(|g| g.parse().ok()).unwrap_or(0);
        let command = std::fs::read(entry.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        found.push(Marked {
            pid,
            group,
            command,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell that starts a grandchild which leaves the process group (`setsid`,
    /// as Chromium's crash handler does): both are gone after the reap.
    #[test]
    fn a_grandchild_that_left_the_group_is_reaped_too() {
        let reaper = Reaper::new();
        let mut command = Command::new("sh");
        command.args(["-c", "setsid sleep 300 & sleep 300 & wait"]);
        let mut child = reaper.prepare(&mut command).spawn().expect("sh");
        let deadline = Instant::now() + Duration::from_secs(5);
        // The three are seen as soon as they exist; `setsid` may not have left the
        // group yet (a loaded machine shows it): wait until it has.
        let groups = || -> std::collections::HashSet<i32> {
            marked(Some(reaper.tag())).iter().map(|p| p.group).collect()
        };
        while reaper.running().len() < 3 || groups().len() < 2 {
            assert!(
                Instant::now() < deadline,
                "{:?} in groups {:?}",
                reaper.running(),
                groups()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(groups().len(), 2, "the setsid sleep has a group of its own");
        assert_eq!(reaper.reap(), Vec::new());
        let _ = child.wait();
        assert!(reaper.running().is_empty());
    }

    #[test]
    fn a_peer_ends_with_its_children_when_dropped() {
        let peer = Peer::spawn(Command::new("sh").args(["-c", "sleep 300 & sleep 300 & wait"]))
            .expect("sh");
        let tag = peer.reaper.tag().to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        while marked(Some(&tag)).len() < 3 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(peer);
        assert!(marked(Some(&tag)).is_empty());
    }
}
