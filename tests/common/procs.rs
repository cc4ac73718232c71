//! Processes as the kernel sees them (`/proc`), signals, and waiting for
//! a child with its output.

use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

/// Live (not zombie) processes whose command line contains `needle`, as
/// (pid, command line).
pub fn processes_with(needle: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if !zombie && cmdline.contains(needle) && pid != std::process::id() as i32 {
            out.push((pid, cmdline.trim().to_string()));
        }
    }
    out
}

/// Live processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str()) {
            out.push(pid);
        }
    }
    out
}

/// Sends a signal with kill(1).
/// Sends signal `sig` ("9", "KILL", "SIGKILL", "ABRT", ...) to `pid` with
/// kill(2) directly, so a loop over several processes hits them within
/// microseconds of each other ("at once"), not a fork and exec apart.
pub fn kill(pid: i64, sig: &str) {
    use nix::sys::signal::{self, Signal};
    let signal = match sig.parse::<i32>() {
        Ok(n) => Signal::try_from(n),
        Err(_) if sig.starts_with("SIG") => sig.parse::<Signal>(),
        Err(_) => format!("SIG{sig}").parse::<Signal>(),
    }
    .unwrap_or_else(|_| panic!("no signal {sig}"));
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    signal::kill(pid, signal).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

/// Waits for `child` to exit within `within` (killing it otherwise) and
/// returns its output, read while it runs (a child blocked on a full pipe
/// never exits).
pub fn wait_output(child: Child, within: Duration) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            kill(pid as i64, "KILL");
            panic!("process {pid} ran past {within:?}");
        }
    }
}

/// Resident memory of a process, bytes (VmRSS from /proc/PID/status).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}
