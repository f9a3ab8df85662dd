//! Fault injection for the crash tests: with `BERTH_CRASH_AT=<point>` in
//! berthd's environment, berthd kills itself with SIGKILL when it reaches
//! that point of an install, an uninstall or the deletion of a volume,
//! exactly as `kill -9` would. The points are named where [`crash_point`]
//! is called; the tests restart berthd without the variable and check
//! every app is whole or gone.

use std::sync::OnceLock;

/// SIGKILL this process if `BERTH_CRASH_AT` names `point`.
pub fn crash_point(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("BERTH_CRASH_AT")
            .ok()
            .filter(|s| !s.is_empty())
    });
    if at.as_deref() == Some(point) {
        tracing::warn!("BERTH_CRASH_AT={point}: killing berthd with SIGKILL");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL is not delivered synchronously on every kernel: wait for it.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}
