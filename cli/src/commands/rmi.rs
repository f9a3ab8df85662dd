use std::process::ExitCode;

use crate::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Images to remove: names or ids.
    #[arg(required = true)]
    images: Vec<String>,
}

pub async fn exec(ctx: &Ctx, a: Args) -> anyhow::Result<ExitCode> {
    let helper = ctx.helper().await?;
    let mut code = ExitCode::SUCCESS;
    for image in &a.images {
        match helper.remove_image(image, ctx.flags).await {
            Ok(()) => println!("Removed {image}"),
            Err(e) => {
                eprintln!("berth: {}", e.message());
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
