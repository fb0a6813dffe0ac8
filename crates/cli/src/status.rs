//! `yollayah status`: is Ollama up, which version, and where each loaded model runs, by the
//! same PROCESSOR rule `ollama ps` uses. It deliberately reads only `/api/version` and
//! `/api/ps` so it stays instant; `doctor` is the command that cross-checks with the GPU.

use serde::Serialize;
use time::OffsetDateTime;
use yollayah_core::ollama::client::OllamaClient;
use yollayah_core::ollama::types::PsModel;
use yollayah_core::placement::Placement;

use crate::context::{Globals, client_for};
use crate::error::Result;
use crate::exit;
use crate::output::{human_bytes, until};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    url: String,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    models: Vec<ModelLine>,
}

#[derive(Debug, Serialize)]
struct ModelLine {
    name: String,
    size: u64,
    size_vram: u64,
    /// Exactly what `ollama ps` prints in its PROCESSOR column.
    processor: String,
    placement: Placement,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_length: Option<u64>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    expires_at: Option<OffsetDateTime>,
}

impl ModelLine {
    fn from_ps(m: &PsModel) -> Self {
        let placement = Placement::from_ps(m.size, m.size_vram);
        ModelLine {
            name: m.name.clone(),
            size: m.size,
            size_vram: m.size_vram,
            processor: placement.ps_label(),
            placement,
            context_length: m.context_length,
            expires_at: m.expires_at,
        }
    }
}

/// Runs `status`; returns the exit code (0 reachable, 3 unreachable).
pub async fn run(globals: &Globals, args: Args) -> Result<u8> {
    let config = globals.load_config()?;
    if let Some(route) = crate::host::route(globals, &config).await? {
        return crate::host::status(route, args.json).await;
    }
    let client = client_for(globals.ollama_url(&config)?.as_deref(), &config)?;
    let report = gather(&client).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(if report.reachable {
        exit::OK
    } else {
        exit::UNREACHABLE
    })
}

async fn gather(client: &OllamaClient) -> Report {
    let url = client.base_url().to_owned();
    let (version, ps) = tokio::join!(client.version(), client.ps());
    match (version, ps) {
        (Ok(v), Ok(ps)) => Report {
            url,
            reachable: true,
            version: Some(v.version),
            error: None,
            models: ps.models.iter().map(ModelLine::from_ps).collect(),
        },
        (Err(e), _) | (_, Err(e)) => Report {
            url,
            reachable: false,
            version: None,
            error: Some(e.to_string()),
            models: Vec::new(),
        },
    }
}

fn print_human(r: &Report) {
    let Some(version) = &r.version else {
        println!("Ollama is not reachable at {}", r.url);
        if let Some(e) = &r.error {
            println!("  {e}");
        }
        println!("  Start it with `ollama serve` (or `systemctl start ollama`), or point");
        println!("  OLLAMA_HOST / --url at the right server.");
        return;
    };
    println!("Ollama {version} at {}", r.url);
    if r.models.is_empty() {
        println!("No model is loaded.");
        return;
    }
    let now = OffsetDateTime::now_utc();
    let width = r
        .models
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:width$}  {:>8}  {:<18}  {:>7}  UNTIL",
        "NAME", "SIZE", "PROCESSOR", "CONTEXT"
    );
    for m in &r.models {
        let ctx = m
            .context_length
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:width$}  {:>8}  {:<18}  {:>7}  {}",
            m.name,
            human_bytes(m.size),
            m.processor,
            ctx,
            until(m.expires_at, now)
        );
    }
    // `/api/ps` can claim 100% GPU for a model that runs on the CPU (fact sheet): say where
    // the check is rather than let this table pass for it.
    println!("PROCESSOR is what Ollama reports; `yollayah doctor` checks it against the GPU.");
}
