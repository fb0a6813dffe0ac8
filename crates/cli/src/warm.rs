//! `yollayah warm` and `yollayah unload`: load the configured model exactly as the watchdog
//! and the chat do (same keep_alive, same load-time options, so nothing reloads later), then
//! say where it landed with the same one-shot diagnosis as `doctor`.

use std::time::Instant;

use crate::context::{Context, Globals};
use crate::doctor::{self, GpuSource, Presentation};
use crate::error::Result;
use crate::exit;
use crate::host::{self, Route};

/// Arguments of `warm`.
#[derive(Debug, clap::Args)]
pub struct WarmArgs {
    /// Print the diagnosis as JSON (the same report as `doctor --json`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    gpu: GpuSource,
}

/// Arguments of `unload`.
#[derive(Debug, clap::Args)]
pub struct UnloadArgs {}

/// Runs `warm`; the exit code is `doctor`'s verdict for the warmed model.
pub async fn warm(globals: &Globals, args: WarmArgs) -> Result<u8> {
    let ctx = Context::load(globals)?;
    let persona = ctx.persona()?;
    let profile = ctx.profile(&persona);
    let route = host::route(globals, &ctx.config).await?;
    if let Some(Route::Agent { host, agent }) = &route {
        // The agent loads its own model with its own profile, so nothing reloads there later.
        return host::warm_via_agent(host, agent, globals.model.as_deref(), args.json).await;
    }
    let machine = args.gpu.machine(ctx.client.base_url())?;
    let started = Instant::now();
    // The same call the watchdog makes: a mismatch in any load-time option or keep_alive would
    // make the first chat reload the model.
    ctx.client
        .load(
            &profile.model,
            Some(profile.keep_alive.clone()),
            Some(profile.load_options()),
        )
        .await?;
    let took = started.elapsed();
    if !args.json {
        println!(
            "Loaded {} in {:.1} s (keep_alive {}, options {}).",
            profile.model,
            took.as_secs_f64(),
            serde_json::to_string(&profile.keep_alive)?,
            serde_json::to_string(profile.load_options())?
        );
    }
    if let Some(Route::Unverified { host, client }) = &route {
        return host::after_remote_warm(host, client, &profile.model, args.json).await;
    }
    let (mut bundle, error) = doctor::capture(&ctx.client, machine, Some(&profile.model)).await;
    // The diagnosis must judge what we actually sent (num_gpu, num_ctx), not only the Modelfile.
    bundle.request_options = Some(profile.load_options().clone());
    doctor::present(
        &bundle,
        error,
        &Presentation {
            model: Some(&profile.model),
            json: args.json,
            captured: None,
            replayed: None,
        },
    )
}

/// Runs `unload`: asks Ollama to unload the configured model now.
pub async fn unload(globals: &Globals, _args: UnloadArgs) -> Result<u8> {
    let ctx = Context::load(globals)?;
    let persona = ctx.persona()?;
    let profile = ctx.profile(&persona);
    if let Some(Route::Agent { host, agent }) = host::route(globals, &ctx.config).await? {
        return host::unload_via_agent(host, &agent, globals.model.as_deref()).await;
    }
    ctx.client.unload(&profile.model).await?;
    println!("Asked Ollama to unload {}.", profile.model);
    Ok(exit::OK)
}
