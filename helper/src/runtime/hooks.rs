//! The config's lifecycle hooks (`hooks` in config.md): programs the
//! runtime runs in its own namespaces at points of the lifecycle, each
//! given the container's state as JSON on stdin.
//!
//! `berth-runtime` runs `createRuntime` and `prestart` hooks at the end of
//! `create` (once the container's init is set up and waiting for `start`),
//! `poststart` after `start`, `poststop` after `delete`. The hooks are saved
//! in the state directory at `create`, so later edits of config.json change
//! nothing. `createContainer` and `startContainer` hooks, which run inside
//! the container, are not supported: `create` warns about them.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use oci_spec::runtime::{Hook, Hooks};

use super::state::OciState;

/// In the container's state directory.
pub const HOOKS_FILE: &str = "hooks.json";

/// A hook that could not run, failed, or timed out.
#[derive(Debug, thiserror::Error)]
#[error("{kind} hook {path}: {reason}")]
pub struct HookError {
    pub kind: &'static str,
    pub path: String,
    pub reason: String,
}

/// Save the hooks the runtime runs after `create` (none: no file).
pub fn save(dir: &Path, hooks: Option<&Hooks>) -> std::io::Result<()> {
    let Some(hooks) = hooks else {
        return Ok(());
    };
    let json = serde_json::to_vec(hooks).map_err(std::io::Error::other)?;
    crate::fsmode::write(&dir.join(HOOKS_FILE), &json)
}

/// The hooks saved at `create` (none if there were none).
pub fn load(dir: &Path) -> Hooks {
    std::fs::read(dir.join(HOOKS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Run `hooks` in order; stop at the first that fails.
pub fn run(
    kind: &'static str,
    hooks: Option<&Vec<Hook>>,
    state: &OciState,
) -> Result<(), HookError> {
    for hook in hooks.into_iter().flatten() {
        run_one(hook, state).map_err(|reason| HookError {
            kind,
            path: hook.path().display().to_string(),
            reason,
        })?;
    }
    Ok(())
}

/// Run `hooks` and only warn (on stderr) about failures, as the spec asks
/// for `poststart` and `poststop`.
pub fn run_warn(kind: &'static str, hooks: Option<&Vec<Hook>>, state: &OciState) {
    for hook in hooks.into_iter().flatten() {
        if let Err(reason) = run_one(hook, state) {
            eprintln!(
                "berth-runtime: warning: {kind} hook {}: {reason}",
                hook.path().display()
            );
        }
    }
}

fn run_one(hook: &Hook, state: &OciState) -> Result<(), String> {
    let json = serde_json::to_vec(state).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(hook.path());
    let args = hook.args().clone().unwrap_or_default();
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // stdout and stderr share one pipe: what the hook says, in order, for
    // the error message.
    let (mut reader, writer) = std::io::pipe().map_err(|e| format!("creating a pipe: {e}"))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| format!("creating a pipe: {e}"))?;
    cmd.stdin(Stdio::piped()).stdout(writer).stderr(writer2);
    let spawned = cmd.spawn();
    // Our copies of the pipe's write end go, so reading ends with the hook.
    drop(cmd);
    let mut child = spawned.map_err(|e| format!("cannot run it: {e}"))?;
    let pid = child.id() as i32;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is no error.
        let _ = stdin.write_all(&json);
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = reader.read_to_end(&mut text);
        let _ = tx.send((child.wait(), String::from_utf8_lossy(&text).into_owned()));
    });
    let timeout = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let (status, output) = match timeout {
        Some(t) => match rx.recv_timeout(t) {
            Ok(r) => r,
            Err(_) => {
                // SAFETY: plain syscall; the child is not reaped yet (the
                // waiting thread has not returned), so the pid is its.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return Err(format!("timed out after {} s", t.as_secs()));
            }
        },
        None => rx.recv().map_err(|e| e.to_string())?,
    };
    let status = status.map_err(|e| format!("waiting for it: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let output = output.trim();
    Err(if output.is_empty() {
        format!("{status}")
    } else {
        format!("{status}: {output}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;

    fn state() -> OciState {
        OciState {
            oci_version: "1.0.2".into(),
            id: "hooked".into(),
            status: super::super::Status::Created,
            pid: 42,
            bundle: "/b".into(),
            annotations: Default::default(),
            created: String::new(),
        }
    }

    fn sh(script: &str, timeout: Option<i64>) -> Hook {
        let mut b = HookBuilder::default()
            .path("/bin/sh")
            .args(vec!["sh".into(), "-c".into(), script.into()])
            .env(vec!["HOOK_VAR=set".into()]);
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().unwrap()
    }

    #[test]
    fn hooks_get_the_state_on_stdin_and_their_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "cat > {}; echo \"$HOOK_VAR\" >> {}",
            out.display(),
            out.display()
        );
        run("prestart", Some(&vec![sh(&script, None)]), &state()).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            text.contains("\"id\":\"hooked\"") && text.contains("\"pid\":42"),
            "{text}"
        );
        assert!(text.ends_with("set\n"), "{text}");
    }

    #[test]
    fn a_failing_hook_stops_the_rest_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("second");
        let hooks = vec![
            sh("echo broken >&2; exit 3", None),
            sh(&format!("touch {}", out.display()), None),
        ];
        let e = run("prestart", Some(&hooks), &state()).unwrap_err();
        assert!(e.to_string().contains("broken"), "{e}");
        assert!(!out.exists());
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let t = std::time::Instant::now();
        let e = run("poststart", Some(&vec![sh("sleep 30", Some(1))]), &state()).unwrap_err();
        assert!(e.reason.contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn hooks_are_saved_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).poststop().is_none());
        let hooks = oci_spec::runtime::HooksBuilder::default()
            .poststop(vec![sh("true", None)])
            .build()
            .unwrap();
        save(dir.path(), Some(&hooks)).unwrap();
        assert_eq!(load(dir.path()).poststop().as_ref().unwrap().len(), 1);
    }
}
