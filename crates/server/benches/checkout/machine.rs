//! What the machine spent: CPU time by process (from `/proc`), and a process's peak memory.

use std::time::{Duration, Instant};

/// Clock ticks a second, as `/proc` counts CPU time (`getconf CLK_TCK`; 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU time all cores spent busy, in ticks (`/proc/stat`).
fn busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or_default();
    // user nice system idle iowait irq softirq steal
    let fields: Vec<u64> = cpu.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum()
}

/// Fields of `/proc/<pid>/stat` after the command name, from `state` (field 3) on.
fn stat_fields(pid: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect()
}

/// A process's own CPU time (user + system), in ticks.
fn process_ticks(pid: &str) -> u64 {
    let f = stat_fields(pid);
    // utime and stime are fields 14 and 15; `f` starts at field 3.
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// The CPU time of this process's children that have been waited for (cutime + cstime).
fn children_ticks() -> u64 {
    let f = stat_fields("self");
    f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0)
}

/// A process's peak resident memory, in MiB (`VmHWM`).
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// A reading taken before a run, to compare with the machine after it.
pub struct Meter {
    started: Instant,
    busy: u64,
    server: Option<(u32, u64)>,
    own: u64,
    children: u64,
}

/// Where the cores went during a run, in cores busy on average (2.0 = both cores all the time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Split {
    /// The server process.
    pub server: f64,
    /// The load generator: a child process (wrk, pgbench) or this process's own threads.
    pub generator: f64,
    /// Everything else: the database server on PostgreSQL, and whatever else ran.
    pub rest: f64,
}

impl Meter {
    /// Starts a reading; `server` is the server's process, if one is measured.
    pub fn start(server: Option<u32>) -> Self {
        Self {
            started: Instant::now(),
            busy: busy_ticks(),
            server: server.map(|pid| (pid, process_ticks(&pid.to_string()))),
            own: process_ticks("self"),
            children: children_ticks(),
        }
    }

    /// The split since the start. The generator is this process's threads (when it generated the
    /// load itself) plus the children it waited for since (wrk, pgbench).
    pub fn stop(self) -> Split {
        let seconds = self.started.elapsed().as_secs_f64();
        let cores = |ticks: u64| ticks as f64 / TICKS / seconds.max(1e-9);
        let busy = busy_ticks().saturating_sub(self.busy);
        let server = self.server.map_or(0, |(pid, before)| process_ticks(&pid.to_string()).saturating_sub(before));
        let generator =
            (process_ticks("self").saturating_sub(self.own)) + children_ticks().saturating_sub(self.children);
        Split {
            server: cores(server),
            generator: cores(generator),
            rest: cores(busy.saturating_sub(server + generator)),
        }
    }
}

impl Split {
    pub fn text(&self) -> String {
        format!(
            "CPU (cores): server {:.2}, generator {:.2}, database and rest {:.2}",
            self.server, self.generator, self.rest
        )
    }
}

/// Waits until `ready` answers true, at most `limit`.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
