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

        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&opts.state_root)
            .ctx(|| format!("creating the state directory {}", opts.state_root.display()))?;
        let dir = opts.state_root.join(&opts.id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(opts.id.clone()))
            }
            r => r.ctx(|| format!("creating {}", dir.display()))?,
        }
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

        let (mut child, mut ch) = spawn_init(
            opts.runtime_exe.as_deref(),
            InitIo {
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
                console_socket: opts.console_socket.clone(),
            },
        )?;
        let stage1 = child.id() as i32;
        undo.pid = Some(stage1);
        let cgroups_path = apply_cgroups(&spec, stage1)?;
        undo.cgroup = cgroups_path
            .as_ref()
            .map(|p| super::container_delete::cgroup_rel(p));

        let config = CreateConfig {
            id: opts.id.clone(),
            spec: spec.clone(),
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            fifo,
            console: opts.console_socket.is_some(),
        };
        let talk = (|| -> Result<i32> {
            ch.send(&ToInit::Create(Box::new(config)))
                .ctx(|| "sending the container's config to its init".into())?;
            let mut pid = None;
            loop {
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
                    FromInit::Ready => {
                        return pid.ok_or_else(|| {
                            Error::Init("the init was ready before it had a pid".into())
                        })
                    }
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

/// Put the init (and so everything it forks) into the container's cgroup
/// with the spec's limits, before it runs anything of the container.
///
/// The one place the cgroups manager is called from: until it lands the
/// container stays in the caller's cgroup, and `linux.resources` is not
/// enforced.
fn apply_cgroups(spec: &oci_spec::runtime::Spec, pid: i32) -> Result<Option<PathBuf>> {
    let Some(linux) = spec.linux() else {
        return Ok(None);
    };
    let Some(path) = linux.cgroups_path() else {
        return Ok(None);
    };
    let rel = super::container_delete::cgroup_rel(path);
    let resources = linux.resources().clone().unwrap_or_default();
    let cg = super::cgroups::Cgroup::create(&rel, &resources)
        .map_err(|e| Error::Init(format!("setting up the cgroup {rel}: {e}")))?;
    if let Err(e) = cg.add_task(pid as u32) {
        let _ = cg.delete();
        return Err(Error::Init(format!(
            "moving the container into cgroup {rel}: {e}"
        )));
    }
    Ok(Some(path.clone()))
}

/// Write atomically, so a supervisor never reads half a pid.
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .ctx(|| format!("writing the pid file {}", path.display()))
}
