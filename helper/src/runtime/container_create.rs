//! `create`: from a bundle to a container whose init waits for `start`.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::channel::{CreateConfig, FromInit, ToInit};
use super::container::{spawn_init, validate_id, Container, CreateOptions, InitIo};
use super::state::{self, State, EXEC_FIFO};
use super::{namespaces, spec, Context, Error, Result};

/// Removes a half-made container (its init, its state directory) unless
/// disarmed.
struct Undo {
    dir: PathBuf,
    pid: Option<i32>,
    /// The cgroup made for the container (relative path).
    cgroup: Option<String>,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(rel) = &self.cgroup {
            let _ = super::container_delete::destroy_cgroup(rel);
        }
    }
}

impl Container {
    /// Create the container `opts.id` from `opts.bundle`: on return its
    /// init is the container's pid 1, set up and waiting for
    /// [`Container::start`].
    pub fn create(opts: CreateOptions) -> Result<Container> {
        validate_id(&opts.id)?;
        let bundle = std::fs::canonicalize(&opts.bundle)
            .ctx(|| format!("opening the bundle {}", opts.bundle.display()))?;
        let spec = spec::load(&bundle)?;
        let root = spec.root().as_ref().expect("validated: root is set");
        let rootfs = std::fs::canonicalize(bundle.join(root.path()))
            .ctx(|| format!("opening the rootfs {}", root.path().display()))?;
        let process = spec.process().as_ref().expect("validated");
        if process.terminal() == Some(true) && opts.console_socket.is_none() {
            return Err(Error::InvalidSpec(
                "process.terminal is true: pass a console socket, or set terminal to false".into(),
            ));
        }

        let traverse_gid = namespaces::traverse_gid(&spec)?;
        // Made by the runtime only when used on its own (berthd makes it):
        // runc's 0711, for inits in a user namespace to reach their fifo.
        crate::fsmode::make_dir(&opts.state_root, 0o711)
            .ctx(|| format!("creating the state directory {}", opts.state_root.display()))?;
        let dir = opts.state_root.join(&opts.id);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(opts.id.clone()))
            }
            r => r.ctx(|| format!("creating {}", dir.display()))?,
        }
        state_dir_mode(&dir, &spec, traverse_gid)?;
        let mut undo = Undo {
            dir: dir.clone(),
            pid: None,
            cgroup: None,
            armed: true,
        };
        let fifo = dir.join(EXEC_FIFO);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o622),
            0,
        )
        .map_err(std::io::Error::from)
        .ctx(|| format!("creating {}", fifo.display()))?;
        fifo_for_init(&fifo, &spec)?;

        let (mut child, mut ch) = spawn_init(
            opts.runtime_exe.as_deref(),
            opts.sealed_exe,
            InitIo {
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
                console_socket: opts.console_socket.clone(),
            },
        )?;
        let stage1 = child.id() as i32;
        undo.pid = Some(stage1);
        let cgroup = apply_cgroups(&spec, &opts.id, stage1)?;
        let cgroups_path = cgroup.path;
        undo.cgroup = cgroups_path
            .as_ref()
            .map(|p| super::container_delete::cgroup_rel(p));
        let mut init_spec = spec.clone();
        if cgroup.devices_unenforced {
            if let Some(process) = init_spec.process_mut() {
                without_mknod(process);
            }
        }

        let config = CreateConfig {
            id: opts.id.clone(),
            spec: init_spec,
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            fifo,
            console: opts.console_socket.is_some(),
            cgroup_tasks: cgroup.tasks,
            traverse_gid,
        };
        let talk = (|| -> Result<i32> {
            ch.send(&ToInit::Create(Box::new(config)))
                .ctx(|| "sending the container's config to its init".into())?;
            // Stage 1 reports the pid after its fork and the child reports
            // ready on the same channel: either may come first.
            let (mut pid, mut ready) = (None, false);
            loop {
                if let (Some(p), true) = (pid, ready) {
                    return Ok(p);
                }
                let msg = ch.recv::<FromInit>().map_err(|e| {
                    Error::Init(format!(
                        "the init exited without saying why ({e}); see its stderr"
                    ))
                })?;
                match msg {
                    FromInit::WriteMaps => {
                        namespaces::write_id_maps(stage1, &spec)?;
                        ch.send(&ToInit::MapsWritten)
                            .ctx(|| "answering the init".into())?;
                    }
                    FromInit::Pid(p) => {
                        pid = Some(p);
                        undo.pid = Some(p);
                    }
                    FromInit::Ready => ready = true,
                    FromInit::NotFound(c) => return Err(Error::CommandNotFound(c)),
                    FromInit::NotExecutable(c) => return Err(Error::NotExecutable(c)),
                    FromInit::Failed(m) => return Err(Error::Init(m)),
                }
            }
        })();
        // Stage 1 exits once it has reported the pid; reap it either way.
        if talk.is_err() {
            let _ = child.kill();
        }
        let _ = child.wait();
        let pid = talk?;

        let start_time = state::proc_stat(pid).map(|s| s.start_time).ok_or_else(|| {
            Error::Init(format!("the container process {pid} exited during create"))
        })?;
        let state = State {
            oci_version: spec.version().clone(),
            id: opts.id.clone(),
            pid,
            start_time,
            bundle,
            rootfs,
            annotations: spec.annotations().clone().unwrap_or_default(),
            created: state::now_rfc3339(),
            cgroups_path,
            devices_unenforced: cgroup.devices_unenforced,
        };
        state.save(&dir)?;
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, pid)?;
        }
        undo.armed = false;
        Ok(Container {
            id: opts.id,
            dir,
            state,
        })
    }
}

/// The container's cgroup, as `apply_cgroups` made it.
struct CgroupMade {
    path: Option<PathBuf>,
    /// `tasks` files through which the init moves itself in (v1).
    tasks: Vec<PathBuf>,
    /// The device rules could not be enforced: the container's processes
    /// get no CAP_MKNOD.
    devices_unenforced: bool,
}

/// Make the container's cgroup with the spec's limits and see that the init
/// (and so everything it forks) is in it before it runs anything of the
/// container: on v1 the init moves itself in, through the `tasks` files
/// returned (much faster, see `Cgroup::self_join_files`); on v2 it is moved
/// here. The device rules are those of [`device_rules`].
///
/// The one place the cgroups manager is called from. Without
/// `linux.cgroupsPath` the cgroup is `/<id>`, as runc and crun name it.
fn apply_cgroups(spec: &oci_spec::runtime::Spec, id: &str, pid: i32) -> Result<CgroupMade> {
    let linux = spec.linux().as_ref();
    let path = linux
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| PathBuf::from(format!("/{id}")));
    let rel = super::container_delete::cgroup_rel(&path);
    let mut resources = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    resources.set_devices(Some(device_rules(spec)));
    let cg = super::cgroups::Cgroup::create(&rel, &resources)
        .map_err(|e| Error::Init(format!("setting up the cgroup {rel}: {e}")))?;
    let devices_unenforced = !cg.devices_enforced();
    if let Some(tasks) = cg.self_join_files() {
        return Ok(CgroupMade {
            path: Some(path),
            tasks,
            devices_unenforced,
        });
    }
    if let Err(e) = cg.add_task(pid as u32) {
        let _ = cg.delete();
        return Err(Error::Init(format!(
            "moving the container into cgroup {rel}: {e}"
        )));
    }
    Ok(CgroupMade {
        path: Some(path),
        tasks: Vec::new(),
        devices_unenforced,
    })
}

/// The container's device cgroup rules (after the "deny everything" the
/// cgroups manager puts first): the spec's `linux.resources.devices`, then,
/// as runc and crun append theirs, read, write and mknod of the devices
/// the runtime itself supplies (its default nodes, /dev/console, /dev/ptmx
/// and the terminals of the container's devpts), then mknod of the spec's
/// `linux.devices`: the rules are in force before the init makes those
/// nodes, and whether the container may open them is the spec's to say.
pub(super) fn device_rules(
    spec: &oci_spec::runtime::Spec,
) -> Vec<oci_spec::runtime::LinuxDeviceCgroup> {
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};
    let rule = |typ: LinuxDeviceType, major: i64, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .major(major)
            .access(access);
        if let Some(minor) = minor {
            b = b.minor(minor);
        }
        b.build().expect("a device rule")
    };
    let linux = spec.linux().as_ref();
    let mut rules = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    for d in super::devices::default_devices() {
        let typ = if d.kind == libc::S_IFBLK {
            LinuxDeviceType::B
        } else {
            LinuxDeviceType::C
        };
        rules.push(rule(typ, d.major.into(), Some(d.minor.into()), "rwm"));
    }
    rules.push(rule(LinuxDeviceType::C, 5, Some(1), "rwm")); // /dev/console
    rules.push(rule(LinuxDeviceType::C, 5, Some(2), "rwm")); // /dev/ptmx
    rules.push(rule(LinuxDeviceType::C, 136, None, "rwm")); // /dev/pts/*
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let typ = match d.typ() {
            LinuxDeviceType::B => LinuxDeviceType::B,
            LinuxDeviceType::C | LinuxDeviceType::U => LinuxDeviceType::C,
            // Fifos and the like are no business of the device cgroup.
            _ => continue,
        };
        rules.push(rule(typ, d.major(), Some(d.minor()), "m"));
    }
    rules
}

/// Takes CAP_MKNOD out of every capability set of `process`: what keeps a
/// container whose device rules could not be enforced from making a node
/// for a host device (it can still use the nodes the runtime made).
pub(super) fn without_mknod(process: &mut oci_spec::runtime::Process) {
    use oci_spec::runtime::{Capabilities, Capability};
    let Some(mut caps) = process.capabilities().clone() else {
        return;
    };
    let strip = |set: &Option<Capabilities>| {
        set.clone().map(|mut s| {
            s.remove(&Capability::Mknod);
            s
        })
    };
    let (b, e, p, i, a) = (
        strip(caps.bounding()),
        strip(caps.effective()),
        strip(caps.permitted()),
        strip(caps.inheritable()),
        strip(caps.ambient()),
    );
    caps.set_bounding(b)
        .set_effective(e)
        .set_permitted(p)
        .set_inheritable(i)
        .set_ambient(a);
    process.set_capabilities(Some(caps));
}

/// Write atomically, so a supervisor never reads half a pid.
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    crate::fsmode::write(path, pid.to_string().as_bytes())
        .ctx(|| format!("writing the pid file {}", path.display()))
}

/// The container's state directory holds its fifo, which its init opens
/// from inside the container's user namespace, if it has one (where host
/// root's directories are "other"): 0710 with the traverse group the spec
/// names (see [`namespaces::TRAVERSE_GID_ANNOTATION`]), else 0711 as runc
/// makes it. Without a user namespace the init is host root: 0700.
fn state_dir_mode(
    dir: &Path,
    spec: &oci_spec::runtime::Spec,
    traverse_gid: Option<u32>,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match traverse_gid {
        Some(gid) => {
            std::os::unix::fs::chown(dir, Some(0), Some(gid))
                .ctx(|| format!("giving {} to group {gid}", dir.display()))?;
            0o710
        }
        None if namespaces::Plan::from_spec(spec)?.has_user() => 0o711,
        None => return Ok(()),
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .ctx(|| format!("setting the mode of {}", dir.display()))
}

/// The init opens `exec.fifo` for writing from inside the container's user
/// namespace, if it has one, where files of host root fall under "other":
/// keep the fifo writable by others whatever the umask, and give it to the
/// container's root (as runc does).
fn fifo_for_init(fifo: &Path, spec: &oci_spec::runtime::Spec) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fifo, std::fs::Permissions::from_mode(0o622))
        .ctx(|| format!("setting the mode of {}", fifo.display()))?;
    let linux = spec.linux().as_ref();
    let root_of = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.into_iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
    };
    let uid = root_of(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = root_of(linux.and_then(|l| l.gid_mappings().as_ref()));
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(fifo, uid, gid)
            .ctx(|| format!("giving {} to the container's root", fifo.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Capability, LinuxDeviceBuilder, LinuxDeviceType};

    fn line(r: &oci_spec::runtime::LinuxDeviceCgroup) -> String {
        format!("{} {r}", if r.allow() { "allow" } else { "deny" })
    }

    #[test]
    fn device_rules_are_the_specs_then_the_runtimes_devices() {
        let mut s = spec::default_spec();
        let dev = |typ, path: &str, major, minor| {
            LinuxDeviceBuilder::default()
                .typ(typ)
                .path(path)
                .major(major)
                .minor(minor)
                .build()
                .unwrap()
        };
        s.linux_mut().as_mut().unwrap().set_devices(Some(vec![
            dev(LinuxDeviceType::B, "/dev/loop0", 7, 0),
            dev(LinuxDeviceType::P, "/dev/fifo", 0, 0),
        ]));
        let rules: Vec<String> = device_rules(&s).iter().map(line).collect();
        assert_eq!(rules[0], "deny a *:* rwm", "the spec's own rule first");
        for want in [
            "allow c 1:3 rwm",
            "allow c 1:9 rwm",
            "allow c 5:0 rwm",
            "allow c 5:2 rwm",
            "allow c 136:* rwm",
            "allow b 7:0 m",
        ] {
            assert!(rules.contains(&want.to_string()), "{want} not in {rules:?}");
        }
        assert_eq!(
            rules.last().unwrap(),
            "allow b 7:0 m",
            "no rule for the fifo"
        );
        // Nothing of a host disk, nor mknod of anything else.
        assert!(!rules
            .iter()
            .any(|r| r.starts_with("allow b") && r != "allow b 7:0 m"));
    }

    #[test]
    fn without_mknod_takes_it_from_every_set() {
        let mut s = spec::default_spec();
        spec::with_docker_security(&mut s);
        let p = s.process_mut().as_mut().unwrap();
        let has = |p: &oci_spec::runtime::Process,
                   set: fn(
            &oci_spec::runtime::LinuxCapabilities,
        ) -> &Option<oci_spec::runtime::Capabilities>| {
            set(p.capabilities().as_ref().unwrap())
                .as_ref()
                .is_some_and(|c| c.contains(&Capability::Mknod))
        };
        assert!(has(p, |c| c.bounding()) && has(p, |c| c.effective()));
        without_mknod(p);
        assert!(!has(p, |c| c.bounding()));
        assert!(!has(p, |c| c.effective()));
        assert!(!has(p, |c| c.permitted()));
        let caps = p.capabilities().as_ref().unwrap();
        assert!(caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::Chown));
    }
}
