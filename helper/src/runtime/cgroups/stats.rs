//! Reading a cgroup's counters: the file formats of v1 and v2, parsed by
//! pure functions.

use serde::{Deserialize, Serialize};

/// One sample of a container's cgroup counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupStats {
    /// CPU time used, all CPUs, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory charged to the cgroup (page cache included), bytes.
    pub memory_usage: u64,
    /// The memory limit, `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Usage minus inactive file cache, as docker stats and cAdvisor show.
    pub memory_working_set: u64,
    pub pids_current: u64,
    /// The pids limit, `None` when unlimited.
    pub pids_limit: Option<u64>,
    pub blkio_read_bytes: u64,
    pub blkio_write_bytes: u64,
    /// Processes the kernel's OOM killer killed in this cgroup.
    pub oom_kills: u64,
}

/// Above this a v1 memory limit means "unlimited" (the kernel reports
/// PAGE_COUNTER_MAX × page size, 0x7FFFFFFFFFFFF000 on x86_64).
const V1_UNLIMITED: u64 = 1 << 62;

/// A single-number file: "12345\n", or "max" (`None`).
pub fn parse_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse::<u64>().ok().filter(|v| *v < V1_UNLIMITED)
}

/// A single counter; unreadable or garbled is 0.
pub fn parse_u64(text: &str) -> u64 {
    text.trim().parse().unwrap_or(0)
}

/// A flat-keyed file ("key value" per line: memory.stat, cpu.stat,
/// memory.events, memory.oom_control): the value of `key`.
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(key)).then(|| words.next()?.parse().ok())?
    })
}

/// v1 `blkio.throttle.io_service_bytes[_recursive]`: "MAJ:MIN Read N" lines
/// (and a "Total N" line): summed (read, write) bytes.
pub fn parse_v1_blkio(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [_, op, n] = words[..] {
            let n: u64 = n.parse().unwrap_or(0);
            match op {
                "Read" => read = read.saturating_add(n),
                "Write" => write = write.saturating_add(n),
                _ => {}
            }
        }
    }
    (read, write)
}

/// v2 `io.stat`: "MAJ:MIN rbytes=N wbytes=N rios=N …" lines: summed bytes.
pub fn parse_v2_io_stat(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for field in text.split_whitespace() {
        if let Some((key, value)) = field.split_once('=') {
            let n: u64 = value.parse().unwrap_or(0);
            match key {
                "rbytes" => read = read.saturating_add(n),
                "wbytes" => write = write.saturating_add(n),
                _ => {}
            }
        }
    }
    (read, write)
}

/// Working set as docker stats computes it: usage minus inactive file
/// cache (`total_inactive_file` on v1, `inactive_file` on v2).
pub fn working_set(usage: u64, memory_stat: &str, v2: bool) -> u64 {
    let key = if v2 {
        "inactive_file"
    } else {
        "total_inactive_file"
    };
    usage.saturating_sub(keyed(memory_stat, key).unwrap_or(0))
}

/// OOM kills from v1 `memory.oom_control`: the `oom_kill` counter (kernel
/// ≥ 4.13), else 1 if the cgroup is under OOM now.
pub fn v1_oom_kills(oom_control: &str) -> u64 {
    keyed(oom_control, "oom_kill")
        .unwrap_or_else(|| keyed(oom_control, "under_oom").unwrap_or(0).min(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("33554432\n"), Some(33_554_432));
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_u64("garbage"), 0);
    }

    #[test]
    fn keyed_files() {
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(v1_oom_kills(oom), 3);
        assert_eq!(v1_oom_kills("oom_kill_disable 0\nunder_oom 1\n"), 1);
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed(events, "oom_kill"), Some(1));
        assert_eq!(keyed(events, "oom"), Some(2));
        assert_eq!(
            keyed("usage_usec 1500\nuser_usec 1000\n", "usage_usec"),
            Some(1500)
        );
    }

    #[test]
    fn working_set_subtracts_inactive_file() {
        let v1 = "cache 100\ninactive_file 5\ntotal_inactive_file 400\n";
        assert_eq!(working_set(1000, v1, false), 600);
        let v2 = "anon 10\nfile 800\ninactive_file 300\n";
        assert_eq!(working_set(1000, v2, true), 700);
        assert_eq!(working_set(100, v2, true), 0);
    }

    #[test]
    fn block_io() {
        let v1 = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:16 Read 100\nTotal 12388\n";
        assert_eq!(parse_v1_blkio(v1), (4196, 8192));
        let v2 = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=1 wbytes=2 rios=1 wios=1\n";
        assert_eq!(parse_v2_io_stat(v2), (4097, 8194));
    }
}
