//! What a process costs, from `/proc/<pid>/`: CPU time (user + system) and resident memory.

use anyhow::Context;

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`getconf CLK_TCK`, 100 almost everywhere).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The user + system CPU time `pid` has used so far, in milliseconds.
pub(super) fn cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which ends with the last ')': state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("a stat line")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        Ok(fields.get(index).context("a stat field")?.parse()?)
    };
    Ok((ticks(11)? + ticks(12)?) * 1000.0 / ticks_per_second())
}

/// The summed CPU time of several processes, in milliseconds.
pub(super) fn total_cpu_ms(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|pid| cpu_ms(*pid)).sum()
}

/// The resident set size of `pid` (`VmRSS`), in KB.
pub(super) fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .context("a VmRSS line")?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}
