use std::process::ExitCode;

use crate::format::size;
use crate::Ctx;

pub async fn exec_version(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    println!("berth  {}", env!("CARGO_PKG_VERSION"));
    match ctx.helper().await?.version().await {
        Ok(v) => println!("berthd {v}"),
        Err(e) => println!(
            "berthd not reachable: {}",
            berth_api::Error::from(e).message()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn exec_info(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let i = ctx.helper().await?.info().await?;
    println!("berthd version:  {}", i.version);
    println!("Bus:             {}", i.bus);
    println!("Root:            {}", i.root);
    println!("Run root:        {}", i.run_root);
    println!("Storage used:    {}", size(i.storage_bytes));
    println!("Images:          {}", i.images);
    println!("Layers:          {}", i.layers);
    println!("Blobs:           {}", i.blobs);
    println!("Cgroup version:  {}", i.cgroup_version);
    Ok(ExitCode::SUCCESS)
}
