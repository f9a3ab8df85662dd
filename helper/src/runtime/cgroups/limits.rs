//! OCI `linux.resources` as the list of cgroup files to write, for v1 or
//! v2. Pure, so "what would we write" is tested without root; `Cgroup`
//! performs the writes in order.

use oci_spec::runtime::LinuxResources;

/// One file to write in the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The v1 controller whose hierarchy holds the file ("memory", "cpu",
    /// …); on v2 every file is in the one directory.
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
    /// A limit the kernel may not offer (memsw without swap accounting, a
    /// blkio weight without CFQ/BFQ): skipped with a warning, not an error.
    pub optional: bool,
}

fn write(controller: &'static str, file: &'static str, value: impl ToString) -> Write {
    Write {
        controller,
        file,
        value: value.to_string(),
        optional: false,
    }
}

fn optional(controller: &'static str, file: &'static str, value: impl ToString) -> Write {
    Write {
        optional: true,
        ..write(controller, file, value)
    }
}

/// OCI limit (-1 or absent = unlimited, per the spec) as a v2 value.
fn max_or(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

/// cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default
/// 100), as runc and crun convert it.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The writes that apply `resources`, in an order the kernel accepts:
/// v1 memory before memory+swap (memsw must stay ≥ memory), cpu period
/// before quota.
pub fn plan(resources: &LinuxResources, v2: bool) -> Vec<Write> {
    let mut writes = Vec::new();
    if let Some(memory) = resources.memory() {
        if v2 {
            if let Some(limit) = memory.limit() {
                writes.push(write("memory", "memory.max", max_or(limit)));
            }
            if let Some(swap) = memory.swap() {
                // OCI's swap is memory+swap; v2's swap.max is swap alone.
                let value = match memory.limit() {
                    _ if swap < 0 => "max".to_string(),
                    Some(limit) if limit >= 0 => swap.saturating_sub(limit).max(0).to_string(),
                    _ => swap.to_string(),
                };
                writes.push(optional("memory", "memory.swap.max", value));
            }
            if let Some(reservation) = memory.reservation() {
                writes.push(write("memory", "memory.low", max_or(reservation)));
            }
            // v2 has no switch for the OOM killer; the kernel always kills.
        } else {
            if let Some(limit) = memory.limit() {
                writes.push(write("memory", "memory.limit_in_bytes", limit));
            }
            if let Some(swap) = memory.swap() {
                writes.push(optional("memory", "memory.memsw.limit_in_bytes", swap));
            }
            if let Some(reservation) = memory.reservation() {
                writes.push(write("memory", "memory.soft_limit_in_bytes", reservation));
            }
            if let Some(swappiness) = memory.swappiness() {
                writes.push(optional("memory", "memory.swappiness", swappiness));
            }
            // Hitting the limit kills (Docker's default): the container
            // must not hang in the OOM handler waiting for memory.
            let disable = memory.disable_oom_killer().unwrap_or(false);
            writes.push(write("memory", "memory.oom_control", u8::from(disable)));
        }
    }
    if let Some(cpu) = resources.cpu() {
        if v2 {
            if let Some(shares) = cpu.shares() {
                writes.push(write("cpu", "cpu.weight", shares_to_weight(shares)));
            }
            if cpu.quota().is_some() || cpu.period().is_some() {
                let period = cpu.period().unwrap_or(100_000);
                let quota = cpu
                    .quota()
                    .filter(|q| *q > 0)
                    .map_or("max".to_string(), |q| q.to_string());
                writes.push(write("cpu", "cpu.max", format!("{quota} {period}")));
            }
        } else {
            if let Some(shares) = cpu.shares() {
                writes.push(write("cpu", "cpu.shares", shares));
            }
            if let Some(period) = cpu.period() {
                writes.push(write("cpu", "cpu.cfs_period_us", period));
            }
            if let Some(quota) = cpu.quota() {
                writes.push(write(
                    "cpu",
                    "cpu.cfs_quota_us",
                    if quota > 0 { quota } else { -1 },
                ));
            }
        }
    }
    if let Some(pids) = resources.pids() {
        writes.push(write(
            "pids",
            "pids.max",
            if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".into()
            },
        ));
    }
    if let Some(weight) = resources.block_io().as_ref().and_then(|b| b.weight()) {
        if v2 {
            // blkio weight 10..1000 to io.weight 1..10000, as runc does.
            let weight = 1 + (u64::from(weight.clamp(10, 1000)) - 10) * 9999 / 990;
            writes.push(optional("io", "io.weight", format!("default {weight}")));
        } else {
            writes.push(optional("blkio", "blkio.weight", weight));
        }
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };

    fn resources() -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(32i64 << 20)
                    .swap(64i64 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000i64)
                    .period(100_000u64)
                    .shares(512u64)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(16i64).build().unwrap())
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight(500u16)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    fn files(writes: &[Write]) -> Vec<(&str, &str)> {
        writes.iter().map(|w| (w.file, w.value.as_str())).collect()
    }

    #[test]
    fn v1_writes_in_kernel_order() {
        assert_eq!(
            files(&plan(&resources(), false)),
            vec![
                ("memory.limit_in_bytes", "33554432"),
                ("memory.memsw.limit_in_bytes", "67108864"),
                ("memory.oom_control", "0"),
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("pids.max", "16"),
                ("blkio.weight", "500"),
            ]
        );
    }

    #[test]
    fn v2_converts_swap_shares_and_quota() {
        assert_eq!(
            files(&plan(&resources(), true)),
            vec![
                ("memory.max", "33554432"),
                ("memory.swap.max", "33554432"),
                ("cpu.weight", "20"),
                ("cpu.max", "50000 100000"),
                ("pids.max", "16"),
                ("io.weight", "default 4950"),
            ]
        );
    }

    #[test]
    fn unlimited_values() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(-1i64)
                    .swap(-1i64)
                    .build()
                    .unwrap(),
            )
            .cpu(LinuxCpuBuilder::default().quota(-1i64).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(0i64).build().unwrap())
            .build()
            .unwrap();
        assert_eq!(
            files(&plan(&r, true)),
            vec![
                ("memory.max", "max"),
                ("memory.swap.max", "max"),
                ("cpu.max", "max 100000"),
                ("pids.max", "max")
            ]
        );
        assert_eq!(
            files(&plan(&r, false)),
            vec![
                ("memory.limit_in_bytes", "-1"),
                ("memory.memsw.limit_in_bytes", "-1"),
                ("memory.oom_control", "0"),
                ("cpu.cfs_quota_us", "-1"),
                ("pids.max", "max"),
            ]
        );
    }

    #[test]
    fn shares_convert_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 100);
    }
}
