//! Following a job: per-layer progress bars on a terminal, plain lines
//! otherwise. Ctrl-C cancels the job (berthd removes what it wrote half-way).

use std::collections::HashMap;
use std::io::IsTerminal;

use berth_api::{Job1Proxy, JobProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use zbus::zvariant::OwnedObjectPath;

/// Follow the job at `path` to its end; returns its JSON result.
pub async fn follow(
    conn: &zbus::Connection,
    path: &OwnedObjectPath,
    quiet: bool,
) -> anyhow::Result<String> {
    let mut view = if quiet {
        View::Quiet
    } else if std::io::stderr().is_terminal() {
        View::Bars(Bars::new())
    } else {
        View::Lines(HashMap::new())
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
    /// Last status printed per layer.
    Lines(HashMap<String, String>),
}

impl View {
    fn update(&mut self, p: &JobProgress) {
        match self {
            View::Quiet => {}
            View::Bars(b) => b.update(p),
            View::Lines(seen) => {
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
            for bar in b.bars.values() {
                bar.finish();
            }
        }
    }
}

struct Bars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    style: ProgressStyle,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: HashMap::new(),
            style: ProgressStyle::with_template(
                "{prefix} {msg:11} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        }
    }

    fn update(&mut self, p: &JobProgress) {
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
