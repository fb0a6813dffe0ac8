//! `yollayah bench`: warm the model, send N identical chats through the real [`ChatEngine`]
//! (in-memory history, so nothing is kept), and report per request and in summary the time to
//! first token, tokens/s, Ollama's load time and how many reloads happened. A reload is either
//! a `load_duration` over 100 ms or a change of the model's `/api/ps` entry (gone, or another
//! `context_length`) across the request. This is the figure set users paste into bug reports.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use yollayah_core::chat::{ChatEngine, Outgoing};
use yollayah_core::history::History;
use yollayah_core::ollama::client::OllamaClient;
use yollayah_core::ollama::types::PsModel;
use yollayah_core::placement::Placement;

use crate::context::{Context, Globals};
use crate::error::Result;
use crate::exit;

/// A load that took longer than this was a real (re)load, not a warm hit.
const RELOAD_LOAD_MS: f64 = 100.0;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many chats to send after warming.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    requests: u32,
    /// The user message of every chat.
    #[arg(long, default_value = "Say hello in one short sentence.")]
    prompt: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    ollama_url: String,
    ollama_version: String,
    model: String,
    keep_alive: serde_json::Value,
    load_options: serde_json::Value,
    /// Wall time of the warm-up call.
    warm_ms: u64,
    /// Where the model was after the last request, by the `ollama ps` rule.
    placement: Option<String>,
    requests: Vec<RequestLine>,
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct RequestLine {
    n: u32,
    ttft_ms: Option<u64>,
    tokens_per_second: Option<f64>,
    load_ms: Option<f64>,
    eval_count: Option<u64>,
    total_ms: u64,
    reloaded: bool,
    /// Why the reply did not complete, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    requests: u32,
    completed: u32,
    reloads: u32,
    ttft_ms_min: Option<u64>,
    ttft_ms_median: Option<u64>,
    ttft_ms_max: Option<u64>,
    tokens_per_second_mean: Option<f64>,
    load_ms_max: Option<f64>,
}

/// Runs `bench`: 0 when every request completed, 3 when Ollama is down, 8 when one failed.
pub async fn run(globals: &Globals, args: Args) -> Result<u8> {
    let ctx = Context::load(globals)?;
    let persona = ctx.persona()?;
    let profile = Arc::new(ctx.profile(&persona));
    let client = ctx.client.clone();
    let version = client.version().await?.version;

    let started = Instant::now();
    client
        .load(
            &profile.model,
            Some(profile.keep_alive.clone()),
            Some(profile.load_options()),
        )
        .await?;
    let warm_ms = started.elapsed().as_millis() as u64;

    let history = Arc::new(Mutex::new(History::open_in_memory()?));
    let engine = ChatEngine::new(client.clone(), persona, profile.clone(), history, None);
    let mut before = ours(&client, &profile.model).await?;
    if !args.json {
        // The header first, then one row per request as it finishes.
        println!("yollayah bench · Ollama {version} at {}", client.base_url());
        println!(
            "model {} · keep_alive {} · load options {} · warm-up {warm_ms} ms",
            profile.model,
            serde_json::to_string(&profile.keep_alive)?,
            serde_json::to_string(profile.load_options())?,
        );
    }
    let mut lines = Vec::new();
    for n in 1..=args.requests {
        let t0 = Instant::now();
        let outcome = engine
            .send_message(
                None,
                Outgoing::text(args.prompt.clone()),
                CancellationToken::new(),
                |_| {},
            )
            .await?;
        let total = t0.elapsed();
        let after = ours(&client, &profile.model).await?;
        let stats = outcome.stats;
        let load_ms = stats.and_then(|s| s.load_ms);
        let reloaded = load_ms.is_some_and(|l| l > RELOAD_LOAD_MS) || changed(&before, &after);
        lines.push(RequestLine {
            n,
            ttft_ms: stats.map(|s| s.ttft_ms),
            tokens_per_second: stats.and_then(|s| s.tokens_per_second),
            load_ms,
            eval_count: stats.and_then(|s| s.eval_count),
            total_ms: stats.map_or(total.as_millis() as u64, |s| s.total_ms),
            reloaded,
            error: outcome.incomplete,
        });
        if !args.json {
            if let Some(l) = lines.last() {
                println!("{}", request_row(l));
            }
        }
        before = after;
    }
    let report = Report {
        ollama_url: client.base_url().to_owned(),
        ollama_version: version,
        model: profile.model.clone(),
        keep_alive: serde_json::to_value(&profile.keep_alive)?,
        load_options: serde_json::Value::Object(profile.load_options().clone()),
        warm_ms,
        placement: before
            .as_ref()
            .map(|m| Placement::from_ps(m.size, m.size_vram).ps_label()),
        summary: summarise(&lines, args.requests),
        requests: lines,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(if report.summary.completed == args.requests {
        exit::OK
    } else {
        exit::BAD_INPUT
    })
}

/// Our model's `/api/ps` entry, if loaded. Bounded by the client's request timeout.
async fn ours(client: &OllamaClient, model: &str) -> Result<Option<PsModel>> {
    let ps = client.ps().await?;
    Ok(ps
        .models
        .into_iter()
        .find(|m| m.name == model || m.model == model))
}

fn changed(before: &Option<PsModel>, after: &Option<PsModel>) -> bool {
    match (before, after) {
        (Some(b), Some(a)) => b.context_length != a.context_length || b.digest != a.digest,
        // Not loaded before: this request loaded it. Gone after: it was unloaded under us.
        _ => true,
    }
}

fn summarise(lines: &[RequestLine], requests: u32) -> Summary {
    let done: Vec<&RequestLine> = lines.iter().filter(|l| l.error.is_none()).collect();
    let mut ttft: Vec<u64> = done.iter().filter_map(|l| l.ttft_ms).collect();
    ttft.sort_unstable();
    let tps: Vec<f64> = done.iter().filter_map(|l| l.tokens_per_second).collect();
    Summary {
        requests,
        completed: done.len() as u32,
        reloads: lines.iter().filter(|l| l.reloaded).count() as u32,
        ttft_ms_min: ttft.first().copied(),
        ttft_ms_median: ttft.get(ttft.len() / 2).copied(),
        ttft_ms_max: ttft.last().copied(),
        tokens_per_second_mean: (!tps.is_empty())
            .then(|| tps.iter().sum::<f64>() / tps.len() as f64),
        load_ms_max: done
            .iter()
            .filter_map(|l| l.load_ms)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>, unit: &str) -> String {
    v.map(|v| format!("{v}{unit}"))
        .unwrap_or_else(|| "-".into())
}

fn request_row(l: &RequestLine) -> String {
    format!(
        "#{:<3} TTFT {:>8}  {:>11}  load {:>9}  {:>4} tokens  total {:>6}  {}",
        l.n,
        opt(l.ttft_ms, " ms"),
        opt(l.tokens_per_second.map(|t| format!("{t:.1}")), " tok/s"),
        opt(l.load_ms.map(|t| format!("{t:.1}")), " ms"),
        opt(l.eval_count, ""),
        format!("{} ms", l.total_ms),
        match (&l.error, l.reloaded) {
            (Some(e), _) => format!("FAILED: {e}"),
            (None, true) => "RELOADED".to_owned(),
            (None, false) => "warm".to_owned(),
        }
    )
}

fn print_human(r: &Report) {
    let s = &r.summary;
    println!(
        "summary: {}/{} completed · reloads {} · TTFT min/median/max {}/{}/{} · {} · load max {} · placement {}",
        s.completed,
        s.requests,
        s.reloads,
        opt(s.ttft_ms_min, ""),
        opt(s.ttft_ms_median, ""),
        opt(s.ttft_ms_max, " ms"),
        opt(
            s.tokens_per_second_mean.map(|t| format!("{t:.1}")),
            " tok/s"
        ),
        opt(s.load_ms_max.map(|t| format!("{t:.1}")), " ms"),
        r.placement.as_deref().unwrap_or("not loaded"),
    );
}
