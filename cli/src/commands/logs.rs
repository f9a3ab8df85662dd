//! `logs`: a container's output, or an installed app's. For an app, one
//! service's container, or every service's with each line prefixed
//! `service | ` as Compose does (with `-f`, following them all at once), all
//! on standard output.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use berth_api::AppInfo;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Keep printing new output until the container (every container of
    /// the app) stops.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (of each service, for an app).
    #[arg(long, value_name = "N")]
    tail: Option<i64>,
    /// Prefix each line with its time.
    #[arg(short = 'T', long)]
    timestamps: bool,
    /// A container, or an installed app.
    #[arg(value_name = "CONTAINER|APP")]
    container: String,
    /// For an app: only this service's output.
    service: Option<String>,
}

/// One log record, as berthd sends it.
struct Record {
    time: String,
    stderr: bool,
    text: String,
}

fn parse(line: &str) -> anyhow::Result<Record> {
    let v: serde_json::Value = serde_json::from_str(line)?;
    Ok(Record {
        time: v["time"].as_str().unwrap_or("").to_string(),
        stderr: v["stream"] == "stderr",
        text: v["log"].as_str().unwrap_or("").to_string(),
    })
}

/// Where a source's output stands: at the start of a line or in one (a
/// record may be part of a line, when the program wrote it in pieces).
struct Source {
    prefix: String,
    at_line_start: bool,
}

impl Source {
    fn new(prefix: String) -> Source {
        Source {
            prefix,
            at_line_start: true,
        }
    }

    /// The record's text with the prefix (and time) at each line start.
    /// Without a prefix, each record is written as it came, the time (if
    /// asked for) before it, as `berth logs CONTAINER` always did.
    fn render(&mut self, r: &Record, timestamps: bool) -> String {
        let mut out = String::with_capacity(self.prefix.len() + r.time.len() + r.text.len() + 1);
        if self.prefix.is_empty() {
            if timestamps {
                out.push_str(&r.time);
                out.push(' ');
            }
            out.push_str(&r.text);
            return out;
        }
        for piece in r.text.split_inclusive('\n') {
            if self.at_line_start {
                out.push_str(&self.prefix);
                if timestamps {
                    out.push_str(&r.time);
                    out.push(' ');
                }
            }
            out.push_str(piece);
            self.at_line_start = piece.ends_with('\n');
        }
        out
    }

    fn write(&mut self, r: &Record, timestamps: bool) -> std::io::Result<()> {
        let text = self.render(r, timestamps);
        // One write per record, so followed services do not interleave
        // mid-line. Prefixed (every service of an app) all goes to stdout,
        // as Compose does; a single container's keeps its two streams.
        if r.stderr && self.prefix.is_empty() {
            let mut err = std::io::stderr().lock();
            err.write_all(text.as_bytes())?;
            err.flush()
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()
        }
    }
}

/// Print every record from `file` as it comes.
fn pump(file: std::fs::File, mut source: Source, timestamps: bool) -> anyhow::Result<()> {
    for line in std::io::BufReader::new(file).lines() {
        source.write(&parse(&line?)?, timestamps)?;
    }
    Ok(())
}

async fn open_logs(ctx: &Ctx, id: &str, a: &Args) -> anyhow::Result<std::fs::File> {
    let fd = ctx
        .helper()
        .await?
        .container_logs(id, a.tail.unwrap_or(-1), a.follow, ctx.flags)
        .await?;
    Ok(std::fs::File::from(std::os::fd::OwnedFd::from(fd)))
}

pub async fn exec(ctx: &Ctx, a: Args) -> anyhow::Result<ExitCode> {
    let apps = super::apps::installed(&ctx.helper().await?).await;
    if let Some(app) = apps.get(&a.container) {
        return app_logs(ctx, app, &a).await;
    }
    if let Some(service) = &a.service {
        anyhow::bail!(
            "`{}` is not an installed app, so `{service}` cannot be one of its services; \
             `berth logs` takes a container, or an app and one of its services",
            a.container
        );
    }
    let file = open_logs(ctx, &a.container, &a).await?;
    let timestamps = a.timestamps;
    tokio::task::spawn_blocking(move || pump(file, Source::new(String::new()), timestamps))
        .await??;
    Ok(ExitCode::SUCCESS)
}

async fn app_logs(ctx: &Ctx, app: &AppInfo, a: &Args) -> anyhow::Result<ExitCode> {
    if let Some(name) = &a.service {
        let Some(s) = app.services.iter().find(|s| &s.name == name) else {
            let names: Vec<&str> = app.services.iter().map(|s| s.name.as_str()).collect();
            anyhow::bail!(
                "{} has no service `{name}`; its services: {}",
                app.id,
                names.join(", ")
            );
        };
        if s.container_id.is_empty() {
            anyhow::bail!(
                "service {name} of {} has no container ({}); `berth start {}` makes it again",
                app.id,
                s.state,
                app.id
            );
        }
        let file = open_logs(ctx, &s.container_id, a).await?;
        let timestamps = a.timestamps;
        tokio::task::spawn_blocking(move || pump(file, Source::new(String::new()), timestamps))
            .await??;
        return Ok(ExitCode::SUCCESS);
    }

    let width = app
        .services
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut sources = Vec::new();
    for s in &app.services {
        if s.container_id.is_empty() {
            eprintln!("berth: service {} has no container ({})", s.name, s.state);
            continue;
        }
        let prefix = format!("{:<width$} | ", s.name);
        sources.push((prefix, open_logs(ctx, &s.container_id, a).await?));
    }
    let timestamps = a.timestamps;
    if a.follow {
        // Every service at once, each line as it comes.
        let tasks: Vec<_> = sources
            .into_iter()
            .map(|(prefix, file)| {
                tokio::task::spawn_blocking(move || pump(file, Source::new(prefix), timestamps))
            })
            .collect();
        for t in tasks {
            t.await??;
        }
    } else {
        // What is there, merged in time order.
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut all = Vec::new();
            let mut states = Vec::new();
            for (n, (prefix, file)) in sources.into_iter().enumerate() {
                states.push(Source::new(prefix));
                for line in std::io::BufReader::new(file).lines() {
                    all.push((parse(&line?)?, n));
                }
            }
            all.sort_by(|(a, _), (b, _)| a.time.cmp(&b.time));
            for (r, n) in &all {
                states[*n].write(r, timestamps)?;
            }
            Ok(())
        })
        .await??;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str) -> Record {
        Record {
            time: "T".into(),
            stderr: false,
            text: text.into(),
        }
    }

    #[test]
    fn prefixes_go_at_line_starts_only() {
        let mut s = Source::new("web | ".into());
        assert_eq!(s.render(&rec("a\n"), false), "web | a\n");
        assert_eq!(s.render(&rec("b"), false), "web | b");
        assert_eq!(s.render(&rec("c\nd\n"), true), "c\nweb | T d\n");
        let mut plain = Source::new(String::new());
        assert_eq!(plain.render(&rec("x"), true), "T x");
        assert_eq!(plain.render(&rec("y\n"), false), "y\n");
    }
}
