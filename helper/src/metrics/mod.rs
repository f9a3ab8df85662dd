//! Resource use of running containers, sampled once a second.
//!
//! A sampler task reads every running container's cgroup counters (CPU,
//! memory, pids, block I/O) and its network namespace's interface counters
//! (`/proc/<pid>/net/dev` of its pid 1), derives CPU % from the CPU time
//! used since the previous sample, and keeps the last [`HISTORY`] samples
//! per container in a ring buffer. Containers that stop are dropped from
//! the map at the next tick; nothing is written to disk.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::containers::Containers;
use crate::runtime::cgroups::Cgroup;

/// Samples kept per container: ten minutes at 1 Hz.
pub const HISTORY: usize = 600;

/// One sample of one container: the API's type, as clients read it.
pub use berth_api::ContainerSample as Sample;

/// The sampler and its history.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<HashMap<String, VecDeque<Sample>>>>,
    /// Open cgroup handles, so a tick reads counters and does not look the
    /// hierarchies up again (that costs more than the reading).
    handles: Arc<Mutex<HashMap<String, Cgroup>>>,
}

impl Metrics {
    /// Start sampling every `interval`.
    pub fn spawn(containers: Containers, interval: Duration) -> Metrics {
        let m = Metrics::default();
        let this = m.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let this = this.clone();
                let containers = containers.clone();
                let _ = tokio::task::spawn_blocking(move || this.sample_all(&containers)).await;
            }
        });
        m
    }

    /// Take one sample of every running container.
    pub fn sample_all(&self, containers: &Containers) {
        let Ok(running) = containers.list(false) else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut fresh = HashMap::new();
        {
            let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
            handles.retain(|id, _| running.iter().any(|c| &c.id == id));
            for c in &running {
                if !handles.contains_key(&c.id) {
                    match Cgroup::load(&Containers::cgroup_path(&c.id)) {
                        Ok(cg) => {
                            handles.insert(c.id.clone(), cg);
                        }
                        Err(_) => continue,
                    }
                }
                if let Some(s) = sample(&handles[&c.id], c.pid, now) {
                    fresh.insert(c.id.clone(), s);
                }
            }
        }
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|id, _| fresh.contains_key(id));
        for (id, mut s) in fresh {
            let ring = map.entry(id).or_default();
            if let Some(prev) = ring.back() {
                let dt = (s.time - prev.time).max(1) as f64 * 1e6;
                s.cpu_percent = s.cpu_ns.saturating_sub(prev.cpu_ns) as f64 / dt * 100.0;
            }
            if ring.len() == HISTORY {
                ring.pop_front();
            }
            ring.push_back(s);
        }
    }

    /// The latest sample of each of `ids` (all running containers if empty).
    pub fn current(&self, ids: &[String]) -> HashMap<String, Sample> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(id, _)| ids.is_empty() || ids.contains(id))
            .filter_map(|(id, r)| r.back().map(|s| (id.clone(), s.clone())))
            .collect()
    }

    /// Samples of `id` taken after `since` (ms since the epoch).
    pub fn history(&self, id: &str, since: i64) -> Vec<Sample> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .map(|r| r.iter().filter(|s| s.time > since).cloned().collect())
            .unwrap_or_default()
    }
}

fn sample(cg: &Cgroup, pid: Option<i32>, now: i64) -> Option<Sample> {
    let st = cg.stats().ok()?;
    let (net_rx, net_tx) = pid.map(net_bytes).unwrap_or((0, 0));
    Some(Sample {
        time: now,
        cpu_ns: st.cpu_usage_ns,
        cpu_percent: 0.0,
        memory_usage: st.memory_usage,
        memory_limit: st.memory_limit,
        memory_working_set: st.memory_working_set,
        pids: st.pids_current,
        block_read: st.blkio_read_bytes,
        block_write: st.blkio_write_bytes,
        net_rx,
        net_tx,
    })
}

/// Bytes received and sent on every interface but `lo` in `pid`'s network
/// namespace.
fn net_bytes(pid: i32) -> (u64, u64) {
    std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .map(|t| parse_net_dev(&t))
        .unwrap_or((0, 0))
}

/// Sum of rx and tx bytes of `/proc/net/dev`, loopback left out.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_skips_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:  2048      20    0    0    0     0          0         0      512       5    0    0    0     0       0          0
";
        assert_eq!(parse_net_dev(text), (2048, 512));
    }

    #[test]
    fn ring_keeps_ten_minutes() {
        let m = Metrics::default();
        {
            let mut map = m.inner.lock().unwrap();
            let ring = map.entry("x".into()).or_default();
            for i in 0..(HISTORY as i64 + 50) {
                if ring.len() == HISTORY {
                    ring.pop_front();
                }
                ring.push_back(Sample {
                    time: i,
                    ..Sample::default()
                });
            }
        }
        assert_eq!(m.history("x", -1).len(), HISTORY);
        assert_eq!(m.history("x", HISTORY as i64 + 40).len(), 9);
        assert_eq!(m.current(&[]).len(), 1);
        assert!(m.current(&["y".into()]).is_empty());
    }
}
