//! Following a job: per-layer progress bars on a terminal, plain lines
//! otherwise. Ctrl-C cancels the job (berthd removes what it wrote half-way).
//! App jobs (install, update, uninstall) also show their phase: a spinner
//! line above the bars, or one line per phase.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use berth_api::{Job1Proxy, JobProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use zbus::zvariant::OwnedObjectPath;

/// Follow the job at `path` to its end; returns its JSON result.
pub async fn follow(
    conn: &zbus::Connection,
    path: &OwnedObjectPath,
    quiet: bool,
) -> anyhow::Result<String> {
    follow_with(conn, path, quiet, false).await
}

/// Follow an app job (install, update, uninstall): as [`follow`], and
/// shows each phase (`pulling docker.io/library/nginx:latest`, `starting web`).
pub async fn follow_phases(
    conn: &zbus::Connection,
    path: &OwnedObjectPath,
) -> anyhow::Result<String> {
    follow_with(conn, path, false, true).await
}

async fn follow_with(
    conn: &zbus::Connection,
    path: &OwnedObjectPath,
    quiet: bool,
    phases: bool,
) -> anyhow::Result<String> {
    let mut view = if quiet {
        View::Quiet
    } else if std::io::stderr().is_terminal() {
        View::Bars(Bars::new(phases))
    } else {
        View::Lines {
            seen: HashMap::new(),
            phase: phases.then(String::new),
        }
    };
    let outcome = {
        let watch = berth_api::watch_job(conn, path, |p| view.update(p));
        tokio::pin!(watch);
        tokio::select! {
            o = &mut watch => o,
            _ = tokio::signal::ctrl_c() => {
                let job = Job1Proxy::builder(conn).path(path.clone())?.build().await?;
                let _ = job.cancel().await;
                watch.await
            }
        }
    };
    view.finish();
    Ok(outcome?)
}

enum View {
    Quiet,
    Bars(Bars),
    Lines {
        /// Last status printed per layer.
        seen: HashMap<String, String>,
        /// Last phase printed, when phases are shown.
        phase: Option<String>,
    },
}

impl View {
    fn update(&mut self, p: &JobProgress) {
        match self {
            View::Quiet => {}
            View::Bars(b) => b.update(p),
            View::Lines { seen, phase } => {
                if let Some(last) = phase {
                    if *last != p.phase {
                        last.clone_from(&p.phase);
                        if shown_phase(&p.phase) {
                            eprintln!("{}", p.phase);
                        }
                    }
                }
                for l in &p.layers {
                    if seen.get(&l.digest) != Some(&l.status) {
                        seen.insert(l.digest.clone(), l.status.clone());
                        eprintln!(
                            "{}: {} ({} / {} bytes)",
                            short(&l.digest),
                            l.status,
                            l.done,
                            l.total
                        );
                    }
                }
            }
        }
    }

    fn finish(&mut self) {
        if let View::Bars(b) = self {
            if let Some(phase) = &b.phase {
                phase.finish_and_clear();
            }
            for bar in b.bars.values() {
                bar.finish();
            }
        }
    }
}

/// Phases worth a line: not the empty one nor the final `done`.
fn shown_phase(phase: &str) -> bool {
    !phase.is_empty() && phase != "done"
}

struct Bars {
    multi: MultiProgress,
    /// A spinner with the phase, above the layers (app jobs only).
    phase: Option<ProgressBar>,
    bars: HashMap<String, ProgressBar>,
    style: ProgressStyle,
}

impl Bars {
    fn new(phases: bool) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let phase = phases.then(|| {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .expect("valid template")
                    .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Bars {
            multi,
            phase,
            bars: HashMap::new(),
            style: ProgressStyle::with_template(
                "{prefix} {msg:11} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        }
    }

    fn update(&mut self, p: &JobProgress) {
        if let Some(phase) = &self.phase {
            if shown_phase(&p.phase) {
                phase.set_message(p.phase.clone());
            }
        }
        for l in &p.layers {
            let bar = self.bars.entry(l.digest.clone()).or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new(l.total));
                b.set_style(self.style.clone());
                b.set_prefix(short(&l.digest).to_string());
                b
            });
            bar.set_length(l.total);
            bar.set_position(l.done);
            bar.set_message(l.status.clone());
        }
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}
