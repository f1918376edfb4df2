//! Readings of another process from `/proc`: CPU time and resident memory, of a process and all
//! its descendants (ejabberd's VM has helper children; Starling and Prosody are one process).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::OnceLock;

/// `utime`, `stime` and `ppid` from a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces or parentheses, so fields are counted after the last `)`.
pub fn parse_stat(line: &str) -> Option<StatFields> {
    let rest = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime(14) stime(15), i.e. indices 0, 1, 11, 12 here.
    Some(StatFields {
        ppid: fields.get(1)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

/// The fields of `/proc/<pid>/stat` that the bench uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFields {
    pub ppid: u32,
    /// Clock ticks in user mode.
    pub utime: u64,
    /// Clock ticks in kernel mode.
    pub stime: u64,
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless configured otherwise).
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

fn stat_of(pid: u32) -> io::Result<StatFields> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&line).ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))
}

/// `pid` and every process descending from it.
pub fn process_tree(pid: u32) -> io::Result<Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes can end while the directory is read.
        if let Ok(stat) = stat_of(p) {
            children.entry(stat.ppid).or_default().push(p);
        }
    }
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no process {pid}"),
        ));
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        if let Some(kids) = children.get(&tree[i]) {
            tree.extend(kids);
        }
        i += 1;
    }
    Ok(tree)
}

/// CPU seconds (user + system) used so far by `pid` and its descendants.
pub fn cpu_seconds_tree(pid: u32) -> io::Result<f64> {
    let mut ticks = 0;
    for p in process_tree(pid)? {
        if let Ok(s) = stat_of(p) {
            ticks += s.utime + s.stime;
        }
    }
    Ok(ticks as f64 / clock_ticks() as f64)
}

/// CPU seconds (user + system) used so far by this process.
pub fn own_cpu_seconds() -> f64 {
    let line = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    parse_stat(&line).map_or(0.0, |s| (s.utime + s.stime) as f64 / clock_ticks() as f64)
}

/// `VmRSS` of `/proc/<pid>/status`, in KiB.
fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| io::Error::other(format!("no VmRSS for {pid}")))
}

/// The `VmRSS:   1234 kB` line of a `/proc/<pid>/status` text.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory of `pid` and its descendants, in KiB.
pub fn rss_kib_tree(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for p in process_tree(pid)? {
        total += rss_kib(p).unwrap_or(0);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A name with spaces and a parenthesis, as `(a b) c)` would be.
        let line = "4242 (beam.smp (x) y) S 17 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 30 0 12345 2000000 5000 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(StatFields {
                ppid: 17,
                utime: 250,
                stime: 75
            })
        );
        assert_eq!(parse_stat("12 (short) S"), None);
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tstarling\nVmPeak:\t  99999 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(20480));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_is_found_with_its_memory() {
        let me = std::process::id();
        assert_eq!(process_tree(me).unwrap()[0], me);
        assert!(rss_kib_tree(me).unwrap() > 0);
        assert!(process_tree(u32::MAX - 1).is_err());
    }
}
