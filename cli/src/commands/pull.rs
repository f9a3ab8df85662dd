use std::process::ExitCode;

use crate::{progress, Ctx};

#[derive(clap::Args)]
pub struct Args {
    /// Image reference: `busybox`, `ghcr.io/owner/app:tag`, `repo@sha256:…`.
    reference: String,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

pub async fn exec(ctx: &Ctx, a: Args) -> anyhow::Result<ExitCode> {
    let job = ctx.helper().await?.pull(&a.reference, ctx.flags).await?;
    let result = progress::follow(&ctx.conn, &job, a.quiet).await?;
    let r: berth_api::PullResult = serde_json::from_str(&result)?;
    if !a.quiet {
        println!("Pulled {}", crate::format::familiar(&r.name));
        println!("Digest: {}", r.digest);
    }
    Ok(ExitCode::SUCCESS)
}
