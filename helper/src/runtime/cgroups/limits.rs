//! OCI `linux.resources` as the list of cgroup files to write, for v1 or
//! v2. Pure, so "what would we write" is tested without root; `Cgroup`
//! performs the writes in order. Device rules are planned here for v1
//! (`device_plan`); on v2 they are a program (`super::device_rules`).

use oci_spec::runtime::{LinuxBlockIo, LinuxResources};

use super::device_rules::{self, Rule};

/// One file to write in the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The controller the file belongs to ("memory", "cpu", …): on v1 the
    /// hierarchy that holds it; on v2 every file is in the one directory,
    /// where the controller must be enabled.
    pub controller: &'static str,
    pub file: String,
    pub value: String,
    /// A limit the kernel may not offer (memsw without swap accounting, a
    /// blkio weight without CFQ/BFQ): skipped with a warning, not an error.
    pub optional: bool,
    /// Another name of the same file on kernels without the first (v1
    /// weights: CFQ's `blkio.weight`, BFQ's `blkio.bfq.weight`).
    pub fallback: Option<&'static str>,
}

fn write(controller: &'static str, file: impl Into<String>, value: impl ToString) -> Write {
    Write {
        controller,
        file: file.into(),
        value: value.to_string(),
        optional: false,
        fallback: None,
    }
}

fn optional(controller: &'static str, file: impl Into<String>, value: impl ToString) -> Write {
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

/// blkio weight (10..1000) to io.weight (1..10000), as runc converts it.
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight.clamp(10, 1000)) - 10) * 9999 / 990
}

/// The writes that apply `resources`, in an order the kernel accepts:
/// v1 memory before memory+swap (memsw must stay ≥ memory), cpu period
/// before quota. Device rules are not among them (see `device_plan`).
/// Errors name a value the spec got wrong.
pub fn plan(resources: &LinuxResources, v2: bool) -> Result<Vec<Write>, String> {
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
        // The same files on v1 and v2. An empty value means "not set"
        // (the v1 cgroup has its parent's, the v2 one inherits).
        if let Some(cpus) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
            writes.push(write("cpuset", "cpuset.cpus", cpus));
        }
        if let Some(mems) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
            writes.push(write("cpuset", "cpuset.mems", mems));
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
    if let Some(block_io) = resources.block_io() {
        block_io_plan(block_io, v2, &mut writes);
    }
    writes.extend(hugetlb_plan(resources, v2)?);
    Ok(writes)
}

/// Weights and throttles. A weight needs an I/O scheduler that knows it
/// (optional); a throttle names a device that must exist (an error if not).
fn block_io_plan(b: &LinuxBlockIo, v2: bool, writes: &mut Vec<Write>) {
    if let Some(weight) = b.weight() {
        if v2 {
            let weight = blkio_to_io_weight(weight);
            writes.push(optional("io", "io.weight", format!("default {weight}")));
        } else {
            writes.push(Write {
                fallback: Some("blkio.bfq.weight"),
                ..optional("blkio", "blkio.weight", weight)
            });
        }
    }
    for d in b.weight_device().iter().flatten() {
        let Some(weight) = d.weight() else { continue };
        let dev = format!("{}:{}", d.major(), d.minor());
        if v2 {
            let weight = blkio_to_io_weight(weight);
            writes.push(optional("io", "io.weight", format!("{dev} {weight}")));
        } else {
            writes.push(Write {
                fallback: Some("blkio.bfq.weight_device"),
                ..optional("blkio", "blkio.weight_device", format!("{dev} {weight}"))
            });
        }
    }
    let throttles = [
        (b.throttle_read_bps_device(), "read_bps_device", "rbps"),
        (b.throttle_write_bps_device(), "write_bps_device", "wbps"),
        (b.throttle_read_iops_device(), "read_iops_device", "riops"),
        (b.throttle_write_iops_device(), "write_iops_device", "wiops"),
    ];
    if !v2 {
        for (devices, file, _) in &throttles {
            for d in devices.iter().flatten() {
                writes.push(write(
                    "blkio",
                    format!("blkio.throttle.{file}"),
                    format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                ));
            }
        }
        return;
    }
    // v2: one io.max line per device with all its limits; 0, "no limit"
    // on v1, is "max".
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    for (devices, _, key) in &throttles {
        for d in devices.iter().flatten() {
            let dev = format!("{}:{}", d.major(), d.minor());
            let rate = match d.rate() {
                0 => "max".to_string(),
                r => r.to_string(),
            };
            let limit = format!("{key}={rate}");
            match lines.iter_mut().find(|(x, _)| *x == dev) {
                Some((_, limits)) => limits.push(limit),
                None => lines.push((dev, vec![limit])),
            }
        }
    }
    for (dev, limits) in lines {
        writes.push(write("io", "io.max", format!("{dev} {}", limits.join(" "))));
    }
}

/// A huge page size as the kernel names its hugetlb files ("64KB", "2MB",
/// "1GB"); anything else could walk out of the cgroup directory.
fn page_size_ok(size: &str) -> bool {
    let Some(number) = ["KB", "MB", "GB"]
        .iter()
        .find_map(|unit| size.strip_suffix(unit))
    else {
        return false;
    };
    !number.is_empty() && number.len() <= 8 && number.bytes().all(|b| b.is_ascii_digit())
}

/// `hugepageLimits`: v1 hugetlb.<size>.limit_in_bytes, v2 hugetlb.<size>.max.
/// Not optional: a container that asked for a limit does not run without.
pub fn hugetlb_plan(resources: &LinuxResources, v2: bool) -> Result<Vec<Write>, String> {
    let mut writes = Vec::new();
    for limit in resources.hugepage_limits().iter().flatten() {
        let size = limit.page_size();
        if !page_size_ok(size) {
            return Err(format!(
                "hugepageLimits: page size {size:?} is not a size like \"2MB\" or \"1GB\""
            ));
        }
        writes.push(if v2 {
            write(
                "hugetlb",
                format!("hugetlb.{size}.max"),
                max_or(limit.limit()),
            )
        } else {
            write(
                "hugetlb",
                format!("hugetlb.{size}.limit_in_bytes"),
                limit.limit(),
            )
        });
    }
    Ok(writes)
}

/// v1 device rules: deny everything first (as runc does), then `rules` in
/// order, each to devices.allow or devices.deny.
pub fn device_plan(rules: &[Rule]) -> Vec<Write> {
    let mut writes = vec![write("devices", "devices.deny", "a")];
    for (allow, line) in device_rules::v1_lines(rules) {
        let file = if allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        writes.push(write("devices", file, line));
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
        LinuxPidsBuilder, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
        LinuxWeightDeviceBuilder,
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
        writes
            .iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect()
    }

    #[test]
    fn v1_writes_in_kernel_order() {
        assert_eq!(
            files(&plan(&resources(), false).unwrap()),
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
            files(&plan(&resources(), true).unwrap()),
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
            files(&plan(&r, true).unwrap()),
            vec![
                ("memory.max", "max"),
                ("memory.swap.max", "max"),
                ("cpu.max", "max 100000"),
                ("pids.max", "max")
            ]
        );
        assert_eq!(
            files(&plan(&r, false).unwrap()),
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

    fn throttle(major: i64, minor: i64, rate: u64) -> oci_spec::runtime::LinuxThrottleDevice {
        LinuxThrottleDeviceBuilder::default()
            .major(major)
            .minor(minor)
            .rate(rate)
            .build()
            .unwrap()
    }

    /// cpuset, hugetlb and every blkio field, as a conformance run sets them.
    fn more() -> LinuxResources {
        LinuxResourcesBuilder::default()
            .cpu(
                LinuxCpuBuilder::default()
                    .cpus("0")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight_device(vec![LinuxWeightDeviceBuilder::default()
                        .major(8i64)
                        .minor(0i64)
                        .weight(300u16)
                        .build()
                        .unwrap()])
                    .throttle_read_bps_device(vec![throttle(7, 0, 102_400), throttle(8, 0, 0)])
                    .throttle_write_bps_device(vec![throttle(7, 0, 204_800)])
                    .throttle_read_iops_device(vec![throttle(7, 0, 100)])
                    .throttle_write_iops_device(vec![throttle(7, 0, 300)])
                    .build()
                    .unwrap(),
            )
            .hugepage_limits(vec![
                LinuxHugepageLimitBuilder::default()
                    .page_size("2MB")
                    .limit(4i64 << 20)
                    .build()
                    .unwrap(),
                LinuxHugepageLimitBuilder::default()
                    .page_size("1GB")
                    .limit(-1i64)
                    .build()
                    .unwrap(),
            ])
            .build()
            .unwrap()
    }

    #[test]
    fn v1_cpuset_blkio_and_hugetlb() {
        let writes = plan(&more(), false).unwrap();
        assert_eq!(
            files(&writes),
            vec![
                ("cpuset.cpus", "0"),
                ("cpuset.mems", "0"),
                ("blkio.weight_device", "8:0 300"),
                ("blkio.throttle.read_bps_device", "7:0 102400"),
                ("blkio.throttle.read_bps_device", "8:0 0"),
                ("blkio.throttle.write_bps_device", "7:0 204800"),
                ("blkio.throttle.read_iops_device", "7:0 100"),
                ("blkio.throttle.write_iops_device", "7:0 300"),
                ("hugetlb.2MB.limit_in_bytes", "4194304"),
                ("hugetlb.1GB.limit_in_bytes", "-1"),
            ]
        );
        let controllers: Vec<_> = writes.iter().map(|w| w.controller).collect();
        assert_eq!(controllers[..3], ["cpuset", "cpuset", "blkio"]);
        assert_eq!(controllers[9], "hugetlb");
        // A weight needs CFQ or BFQ (BFQ names the file differently); a
        // throttle or a huge page limit is never skipped.
        assert!(writes[2].optional);
        assert_eq!(writes[2].fallback, Some("blkio.bfq.weight_device"));
        assert!(writes[3..].iter().all(|w| !w.optional));
    }

    #[test]
    fn v2_cpuset_io_max_and_hugetlb() {
        let writes = plan(&more(), true).unwrap();
        assert_eq!(
            files(&writes),
            vec![
                ("cpuset.cpus", "0"),
                ("cpuset.mems", "0"),
                ("io.weight", "8:0 2930"),
                ("io.max", "7:0 rbps=102400 wbps=204800 riops=100 wiops=300"),
                ("io.max", "8:0 rbps=max"),
                ("hugetlb.2MB.max", "4194304"),
                ("hugetlb.1GB.max", "max"),
            ]
        );
        let controllers: Vec<_> = writes.iter().map(|w| w.controller).collect();
        assert_eq!(
            controllers,
            ["cpuset", "cpuset", "io", "io", "io", "hugetlb", "hugetlb"]
        );
    }

    #[test]
    fn v1_weight_falls_back_to_bfq() {
        let w = &plan(&resources(), false).unwrap()[7];
        assert_eq!(
            (w.file.as_str(), w.fallback, w.optional),
            ("blkio.weight", Some("blkio.bfq.weight"), true)
        );
    }

    #[test]
    fn empty_cpuset_values_are_not_written() {
        let r = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().cpus("").build().unwrap())
            .build()
            .unwrap();
        assert!(plan(&r, false).unwrap().is_empty());
    }

    #[test]
    fn page_sizes_are_checked() {
        for bad in ["../../x", "2mb", "MB", "2 MB", "2MB/", "123456789MB"] {
            let r = LinuxResourcesBuilder::default()
                .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                    .page_size(bad)
                    .limit(1i64)
                    .build()
                    .unwrap()])
                .build()
                .unwrap();
            let err = plan(&r, false).unwrap_err();
            assert!(err.contains("hugepageLimits"), "{bad}: {err}");
        }
        assert!(page_size_ok("64KB") && page_size_ok("2MB") && page_size_ok("1GB"));
    }

    #[test]
    fn v1_device_rules_start_with_deny_all() {
        use super::device_rules::{Kind, Rule, MKNOD, READ};
        let rules = [
            Rule::allow(Kind::Char, Some(1), Some(3), READ),
            Rule::allow(Kind::Block, None, None, MKNOD),
            Rule {
                allow: false,
                ..Rule::allow(Kind::Char, Some(1), Some(3), READ)
            },
        ];
        assert_eq!(
            files(&device_plan(&rules)),
            vec![
                ("devices.deny", "a"),
                ("devices.allow", "c 1:3 r"),
                ("devices.allow", "b *:* m"),
                ("devices.deny", "c 1:3 r"),
            ]
        );
        assert!(device_plan(&rules)
            .iter()
            .all(|w| w.controller == "devices" && !w.optional));
    }
}
