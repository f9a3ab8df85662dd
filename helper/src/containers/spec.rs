//! From an image config and `berth run` options to an OCI runtime spec, with
//! Docker's semantics for entrypoint, cmd, env, workdir and user, and
//! Docker's defaults for isolation.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    UserBuilder,
};

use super::options::{Network, RunOptions};
use crate::registry::ImageConfig;

/// Docker's default PATH, used when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// CPU period for `--cpus` (100 ms, as Docker).
const CPU_PERIOD: u64 = 100_000;

/// The command a container runs: `--entrypoint` replaces the image's
/// entrypoint and drops its Cmd; given args replace the Cmd.
pub fn command(config: &ImageConfig, opts: &RunOptions) -> Result<Vec<String>, String> {
    let c = config.config.clone().unwrap_or_default();
    let (entrypoint, default_cmd) = match &opts.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.clone()], Vec::new()),
        None => (
            c.entrypoint.clone().unwrap_or_default(),
            c.cmd.clone().unwrap_or_default(),
        ),
    };
    let cmd = if opts.cmd.is_empty() {
        default_cmd
    } else {
        opts.cmd.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(
            "the image has no command and none was given: add one after the image name".into(),
        );
    }
    Ok(args)
}

/// The environment: the image's, then `-e` (later wins), PATH and HOSTNAME
/// filled in, TERM for a terminal.
pub fn environment(
    config: &ImageConfig,
    opts: &RunOptions,
    hostname: &str,
    home: Option<&str>,
) -> Vec<String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut set = |kv: &str, env: &mut BTreeMap<String, String>| {
        if let Some((k, v)) = kv.split_once('=') {
            if env.insert(k.to_string(), v.to_string()).is_none() {
                order.push(k.to_string());
            }
        }
    };
    set(&format!("PATH={DEFAULT_PATH}"), &mut env);
    set(&format!("HOSTNAME={hostname}"), &mut env);
    if opts.tty {
        set("TERM=xterm", &mut env);
    }
    for e in config.config.iter().flat_map(|c| c.env.iter().flatten()) {
        set(e, &mut env);
    }
    for e in &opts.env {
        set(e, &mut env);
    }
    if !env.contains_key("HOME") {
        set(&format!("HOME={}", home.unwrap_or("/")), &mut env);
    }
    order
        .into_iter()
        .map(|k| format!("{k}={}", env[&k]))
        .collect()
}

/// Everything the spec needs besides the image config and options.
pub struct SpecInputs<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<&'a str>,
    /// Per-container files bind-mounted over /etc/hosts, /etc/hostname, /etc/resolv.conf.
    pub etc_files: Vec<(String, String)>,
    /// Host uid/gid range for `--userns=auto`: (first host id, count).
    pub userns_range: Option<(u32, u32)>,
    /// The current hard limit on open files (rlimits never go above it).
    pub nofile_hard: u64,
}

/// Build the spec. `base` is the runtime's default spec (mounts, masked and
/// read-only paths, capabilities, seccomp), which this adjusts.
pub fn build(
    mut base: Spec,
    config: &ImageConfig,
    opts: &RunOptions,
    input: &SpecInputs<'_>,
) -> Result<Spec, String> {
    let args = command(config, opts)?;
    let cwd = opts
        .workdir
        .clone()
        .or_else(|| config.config.as_ref().and_then(|c| c.working_dir.clone()))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let env = environment(config, opts, input.hostname, input.home);

    let mut process = base.process().clone().unwrap_or_default();
    let user = UserBuilder::default()
        .uid(input.uid)
        .gid(input.gid)
        .additional_gids(input.additional_gids.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let nofile = input.nofile_hard.min(1_048_576);
    let rlimits = vec![PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(nofile)
        .soft(nofile)
        .build()
        .map_err(|e| e.to_string())?];
    process = ProcessBuilder::default()
        .terminal(opts.tty)
        .args(args)
        .env(env)
        .cwd(cwd)
        .user(user)
        .capabilities(capabilities(
            process.capabilities().clone().unwrap_or_default(),
            opts,
        ))
        .rlimits(rlimits)
        .no_new_privileges(true)
        .build()
        .map_err(|e| e.to_string())?;
    base.set_process(Some(process));
    base.set_hostname(Some(input.hostname.to_string()));
    base.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(false)
            .build()
            .map_err(|e| e.to_string())?,
    ));

    // Mounts: the runtime's defaults, the per-container /etc files, volumes.
    let mut mounts: Vec<Mount> = base.mounts().clone().unwrap_or_default();
    // berthd's own files (the /etc files, named volumes) are bound nosuid,
    // nodev: no_new_privs already disarms set-id bits inside, and with
    // these flags that holds without it (issue 11). A `-v` host path is
    // the caller's, bound as asked.
    let bind = |src: &str, dst: &str, ro: bool, berthds: bool| -> Result<Mount, String> {
        let mut o = vec!["rbind".to_string(), "rprivate".to_string()];
        o.push(if ro { "ro" } else { "rw" }.to_string());
        if berthds {
            o.extend(["nosuid".to_string(), "nodev".to_string()]);
        }
        MountBuilder::default()
            .destination(dst)
            .typ("bind")
            .source(src)
            .options(o)
            .build()
            .map_err(|e| e.to_string())
    };
    for (host, inside) in &input.etc_files {
        mounts.push(bind(host, inside, false, true)?);
    }
    for v in &opts.volumes {
        // `populate` marks the named volumes berthd made (never `-v`).
        mounts.push(bind(&v.host, &v.container, v.read_only, v.populate)?);
    }
    base.set_mounts(Some(mounts));

    // Namespaces: Docker's set, network per option, cgroup always.
    let mut linux = base.linux().clone().unwrap_or_default();
    let mut namespaces: Vec<LinuxNamespace> = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|t| {
        LinuxNamespaceBuilder::default()
            .typ(t)
            .build()
            .expect("namespace")
    })
    .collect();
    if opts.network == Network::None {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()
                .expect("namespace"),
        );
    }
    if let Some((first, count)) = input.userns_range {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()
                .expect("namespace"),
        );
        let map = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(first)
            .size(count)
            .build()
            .map_err(|e| e.to_string())?;
        linux.set_uid_mappings(Some(vec![map]));
        linux.set_gid_mappings(Some(vec![map]));
    }
    linux.set_namespaces(Some(namespaces));

    // Limits.
    let mut resources = LinuxResourcesBuilder::default();
    if opts.memory > 0 {
        // Docker's default: as much swap as memory.
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(opts.memory as i64)
                .swap((opts.memory * 2) as i64)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    if opts.millicpus > 0 {
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota((opts.millicpus * CPU_PERIOD / 1000) as i64)
                .period(CPU_PERIOD)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    resources = resources.devices(docker_device_rules());
    if opts.pids_limit > 0 {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(opts.pids_limit)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    linux.set_resources(Some(resources.build().map_err(|e| e.to_string())?));
    linux.set_cgroups_path(Some(
        format!("/{}", super::Containers::cgroup_path(input.id)).into(),
    ));
    base.set_linux(Some(linux));
    Ok(base)
}

/// The base spec's capabilities (Docker's set), without `CAP_NET_RAW` for a
/// container in a prepared network namespace: an app's (the bus refuses
/// `netns` from callers; issue 11). As Podman does for every container:
/// raw sockets let a process forge packets (ARP and IPv6 router spoofing
/// of its neighbours, addresses it does not have), and a `ping` that uses
/// ICMP echo sockets (iputils') works without them: the network module
/// opens those to every group in the app's namespace
/// ([`crate::network::PING_GROUP_RANGE`]). `berth run`
/// keeps Docker's set, `CAP_NET_RAW` included, as `docker run` does: whoever
/// may run it holds a right that equals root anyway.
fn capabilities(
    mut caps: oci_spec::runtime::LinuxCapabilities,
    opts: &RunOptions,
) -> oci_spec::runtime::LinuxCapabilities {
    use oci_spec::runtime::{Capabilities, Capability};
    if opts.netns.is_none() {
        return caps;
    }
    let without = |set: &Option<Capabilities>| {
        set.as_ref().map(|s| {
            s.iter()
                .filter(|c| **c != Capability::NetRaw)
                .copied()
                .collect::<Capabilities>()
        })
    };
    let (b, e, p) = (
        without(caps.bounding()),
        without(caps.effective()),
        without(caps.permitted()),
    );
    let (i, a) = (without(caps.inheritable()), without(caps.ambient()));
    caps.set_bounding(b)
        .set_effective(e)
        .set_permitted(p)
        .set_inheritable(i)
        .set_ambient(a);
    caps
}

/// Docker's device cgroup rules: deny everything, allow mknod of any node
/// (the container can make one but not open it), and read/write/mknod of
/// null, zero, full, random, urandom, tty, console, ptmx and the pts.
/// What keeps a container (it has CAP_MKNOD) from using a host disk.
pub fn docker_device_rules() -> Vec<oci_spec::runtime::LinuxDeviceCgroup> {
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};
    let rule = |allow: bool,
                typ: Option<LinuxDeviceType>,
                dev: Option<(i64, Option<i64>)>,
                access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .access(access);
        if let Some(typ) = typ {
            b = b.typ(typ);
        }
        if let Some((major, minor)) = dev {
            b = b.major(major);
            if let Some(minor) = minor {
                b = b.minor(minor);
            }
        }
        b.build().expect("a device rule")
    };
    let (c, b) = (Some(LinuxDeviceType::C), Some(LinuxDeviceType::B));
    let mut rules = vec![
        rule(false, None, None, "rwm"),
        rule(true, c, None, "m"),
        rule(true, b, None, "m"),
    ];
    // null, zero, full, random, urandom, tty, console, ptmx, pts/*.
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(rule(true, c, Some((major, Some(minor))), "rwm"));
    }
    rules.push(rule(true, c, Some((136, None)), "rwm"));
    rules
}

/// Puts the container in the network namespace mounted at `path` (an app
/// network's endpoint, see [`crate::network::Networks::attach`]) instead of
/// a new, empty one or the host's.
pub fn join_network_namespace(spec: &mut Spec, path: &std::path::Path) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(path)
            .build()
            .expect("namespace"),
    );
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ImageConfig;

    fn config(json: &str) -> ImageConfig {
        serde_json::from_str(json).unwrap()
    }

    fn busybox() -> ImageConfig {
        config(
            r#"{"architecture":"amd64","os":"linux",
                "config":{"Env":["PATH=/bin","FOO=image"],"Cmd":["sh"],"WorkingDir":"/work"},
                "rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
    }

    #[test]
    fn docker_command_rules() {
        let c = config(
            r#"{"config":{"Entrypoint":["/entry"],"Cmd":["default"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        );
        let mut o = RunOptions::default();
        assert_eq!(command(&c, &o).unwrap(), ["/entry", "default"]);
        o.cmd = vec!["mine".into()];
        assert_eq!(command(&c, &o).unwrap(), ["/entry", "mine"]);
        o.entrypoint = Some("/other".into());
        assert_eq!(command(&c, &o).unwrap(), ["/other", "mine"]);
        o.cmd.clear();
        assert_eq!(
            command(&c, &o).unwrap(),
            ["/other"],
            "image Cmd dropped with --entrypoint"
        );
        let empty = config(r#"{"rootfs":{"type":"layers","diff_ids":[]}}"#);
        assert!(command(&empty, &RunOptions::default()).is_err());
    }

    #[test]
    fn environment_order_and_overrides() {
        let o = RunOptions {
            env: vec!["FOO=mine".into(), "NEW=1".into()],
            tty: true,
            ..RunOptions::default()
        };
        let env = environment(&busybox(), &o, "web", Some("/root"));
        assert_eq!(
            env,
            [
                "PATH=/bin",
                "HOSTNAME=web",
                "TERM=xterm",
                "FOO=mine",
                "NEW=1",
                "HOME=/root"
            ]
        );
    }

    #[test]
    fn spec_has_limits_namespaces_and_process() {
        let o = RunOptions {
            memory: 64 << 20,
            millicpus: 500,
            pids_limit: 64,
            cmd: vec!["echo".into(), "hi".into()],
            ..RunOptions::default()
        };
        let input = SpecInputs {
            id: "abc",
            hostname: "web",
            uid: 65534,
            gid: 65534,
            additional_gids: vec![],
            home: None,
            etc_files: vec![("/run/x/hosts".into(), "/etc/hosts".into())],
            userns_range: None,
            nofile_hard: 4096,
        };
        let spec = build(Spec::default(), &busybox(), &o, &input).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["echo", "hi"]);
        assert_eq!(p.cwd().to_str(), Some("/work"));
        assert_eq!(p.user().uid(), 65534);
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(spec.hostname().as_deref(), Some("web"));
        let linux = spec.linux().as_ref().unwrap();
        let r = linux.resources().as_ref().unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50_000));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 64);
        let devices: Vec<String> = r
            .devices()
            .as_ref()
            .unwrap()
            .iter()
            .map(|d| format!("{} {d}", if d.allow() { "allow" } else { "deny" }))
            .collect();
        assert_eq!(devices[0], "deny a *:* rwm", "{devices:?}");
        for want in [
            "allow c *:* m",
            "allow b *:* m",
            "allow c 1:3 rwm",
            "allow c 5:2 rwm",
            "allow c 136:* rwm",
        ] {
            assert!(
                devices.iter().any(|d| d == want),
                "{want} not in {devices:?}"
            );
        }
        assert!(!devices
            .iter()
            .any(|d| d.starts_with("allow b") && !d.ends_with(" m")));
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(ns.contains(&LinuxNamespaceType::Network));
        assert!(ns.contains(&LinuxNamespaceType::Pid));
        assert!(!ns.contains(&LinuxNamespaceType::User));
        let mounts = spec.mounts().as_ref().unwrap();
        assert!(mounts
            .iter()
            .any(|m| m.destination().to_str() == Some("/etc/hosts")));
    }

    /// A container `abc` running as root, without /etc files, with
    /// `userns_range`.
    fn root_inputs(userns_range: Option<(u32, u32)>) -> SpecInputs<'static> {
        SpecInputs {
            id: "abc",
            hostname: "web",
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            home: None,
            etc_files: vec![],
            userns_range,
            nofile_hard: 4096,
        }
    }

    #[test]
    fn berthds_own_binds_are_nosuid_nodev_and_a_callers_as_asked() {
        use crate::containers::Volume;
        let vol = |host: &str, container: &str, populate: bool| Volume {
            host: host.into(),
            container: container.into(),
            read_only: false,
            populate,
        };
        let o = RunOptions {
            volumes: vec![
                vol("/var/lib/berth/volumes/a_data/_data", "/data", true),
                vol("/home/alice/src", "/src", false),
            ],
            ..RunOptions::default()
        };
        let input = SpecInputs {
            etc_files: vec![(
                "/var/lib/berth/containers/abc/hosts".into(),
                "/etc/hosts".into(),
            )],
            ..root_inputs(None)
        };
        let spec = build(Spec::default(), &busybox(), &o, &input).unwrap();
        let options = |dst: &str| {
            let m = spec.mounts().as_ref().unwrap().iter();
            m.clone()
                .find(|m| m.destination().to_str() == Some(dst))
                .and_then(|m| m.options().clone())
                .unwrap()
        };
        for dst in ["/etc/hosts", "/data"] {
            let o = options(dst);
            assert!(
                o.iter().any(|x| x == "nosuid") && o.iter().any(|x| x == "nodev"),
                "{dst}: {o:?}"
            );
        }
        assert_eq!(options("/src"), ["rbind", "rprivate", "rw"]);
    }

    #[test]
    fn app_containers_have_no_net_raw() {
        let input = root_inputs(None);
        let mut base = crate::runtime::spec::default_spec();
        crate::runtime::spec::with_docker_security(&mut base);
        let sets = |o: &RunOptions| {
            let spec = build(base.clone(), &busybox(), o, &input).unwrap();
            let c = spec.process().as_ref().unwrap().capabilities().clone();
            let c = c.unwrap();
            [
                c.bounding().clone(),
                c.effective().clone(),
                c.permitted().clone(),
            ]
            .map(|s| s.unwrap_or_default())
        };
        use oci_spec::runtime::Capability;
        // `berth run`: Docker's set, NET_RAW included.
        for s in sets(&RunOptions::default()) {
            assert!(s.contains(&Capability::NetRaw) && s.contains(&Capability::Chown));
        }
        let app = RunOptions {
            netns: Some("/run/berth/netns/abc".into()),
            ..RunOptions::default()
        };
        for s in sets(&app) {
            assert!(!s.contains(&Capability::NetRaw), "{s:?}");
            assert!(s.contains(&Capability::Chown) && s.contains(&Capability::NetBindService));
            assert_eq!(s.len(), 13, "Docker's 14 less NET_RAW: {s:?}");
        }
    }

    #[test]
    fn userns_range_gives_a_user_namespace_mapping_root_to_it() {
        let input = root_inputs(Some((0x7000_0000, 65536)));
        let spec = build(Spec::default(), &busybox(), &RunOptions::default(), &input).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User));
        for maps in [linux.uid_mappings(), linux.gid_mappings()] {
            let m = maps.as_ref().unwrap();
            assert_eq!(m.len(), 1);
            assert_eq!(
                (m[0].container_id(), m[0].host_id(), m[0].size()),
                (0, 0x7000_0000, 65536)
            );
        }
    }

    #[test]
    fn joining_a_network_namespace_replaces_the_new_one() {
        // oci-spec's default spec has a new network namespace among others.
        let mut spec = Spec::default();
        join_network_namespace(&mut spec, std::path::Path::new("/run/berth/netns/abc"));
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        let net: Vec<_> = ns
            .iter()
            .filter(|n| n.typ() == LinuxNamespaceType::Network)
            .collect();
        assert_eq!(net.len(), 1);
        assert_eq!(
            net[0].path().as_deref(),
            Some(std::path::Path::new("/run/berth/netns/abc"))
        );
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Pid));
    }
}
