//! `yollayah doctor`: the headless check a user or a script runs instead of watching
//! `nvidia-smi` and `btop`. It reads Ollama (`/api/version`, `/api/ps`, `/api/tags`,
//! `/api/show`), the GPU (NVML) and the runner processes, diagnoses, and exits with a code
//! that says where the model runs. `--capture` saves everything it read as a bundle;
//! `--from` diagnoses such a bundle offline, with no Ollama and no GPU.

use std::path::PathBuf;

use serde::Serialize;
use yollayah_core::capture::CaptureBundle;
use yollayah_core::diagnose::{self, EvidenceValue, ModelDiagnosis};
use yollayah_core::gpu::{GpuSnapshot, NvmlStatus, Runner};
use yollayah_core::machine::{Machine, MachineView};
use yollayah_core::ollama::client::OllamaClient;
use yollayah_core::ollama::env::OllamaEnv;
use yollayah_core::ollama::types::{KeepAlive, Options};
use yollayah_core::placement::Placement;
use yollayah_core::scope::{self, Scope};

use crate::context::{Globals, client_for};
use crate::error::{CliError, Result};
use crate::exit;

/// Arguments of `doctor`. `--model` (global) names the model to check; without it every
/// loaded model is checked.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Load `--model` first (keep_alive 5m, server-default options unless --num-ctx).
    #[arg(long)]
    load: bool,
    /// num_ctx to load with (only with --load).
    #[arg(long, requires = "load")]
    num_ctx: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write everything that was read to FILE (a capture bundle, docs/capture-format.md).
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    capture: Option<PathBuf>,
    /// Diagnose a capture bundle offline instead of the live system.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    #[command(flatten)]
    gpu: GpuSource,
}

/// `--gpu-source`, shared by the commands that look at the GPU.
#[derive(Debug, Clone, clap::Args)]
pub struct GpuSource {
    /// Where GPU facts come from: `local` (NVML and /proc), `sim` (the Ollama simulator's
    /// private GPU view at the same URL, for demos and tests), or a GPU snapshot JSON file.
    #[arg(
        long = "gpu-source",
        default_value = "local",
        value_name = "local|sim|FILE"
    )]
    pub source: String,
}

impl GpuSource {
    /// The machine this source names.
    pub fn machine(&self, ollama_url: &str) -> Result<Machine> {
        machine_for(&self.source, ollama_url).map_err(CliError::BadInput)
    }
}

/// How to present a diagnosis.
#[derive(Debug, Default)]
pub struct Presentation<'a> {
    /// Judge only this model (else every loaded one).
    pub model: Option<&'a str>,
    pub json: bool,
    /// Where the bundle was written, to tell the user.
    pub captured: Option<&'a std::path::Path>,
    /// The bundle replayed with `--from`, to say so.
    pub replayed: Option<&'a std::path::Path>,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    ollama_url: &'a str,
    /// Where the GPU facts come from: `local`, `agent` or `remote`.
    scope: &'a Scope,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ollama_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// `gpu`, `partial`, `cpu`, `not_loaded`, `unknown`, `unverified` or `unreachable`.
    verdict: &'static str,
    exit_code: u8,
    gpu: &'a GpuSnapshot,
    runners: &'a [Runner],
    diagnoses: &'a [ModelDiagnosis],
}

/// Runs `doctor`; returns the exit code documented in `--help`.
pub async fn run(globals: &Globals, args: Args) -> Result<u8> {
    let model = globals.model.as_deref();
    if args.load && model.is_none() {
        eprintln!("yollayah: doctor --load needs --model MODEL");
        return Ok(exit::USAGE);
    }
    if args.from.is_none() {
        let config = globals.load_config()?;
        if let Some(route) = crate::host::route(globals, &config).await? {
            if args.load || args.capture.is_some() {
                eprintln!(
                    "yollayah: doctor --host on another machine takes neither --load nor --capture: \
                     use `yollayah warm --host`, or run doctor on that machine"
                );
                return Ok(exit::USAGE);
            }
            return crate::host::doctor(route, model, args.json).await;
        }
    }
    let (bundle, error) = match &args.from {
        // Offline: no config, no network; the bundle is all there is.
        Some(path) => (CaptureBundle::read(path).map_err(CliError::BadInput)?, None),
        None => {
            let config = globals.load_config()?;
            let client = client_for(globals.ollama_url(&config)?.as_deref(), &config)?;
            let machine = args.gpu.machine(client.base_url())?;
            if args.load {
                if let Some(model) = model {
                    load_first(&client, model, args.num_ctx).await?;
                }
            }
            capture(&client, machine, model).await
        }
    };
    if let Some(path) = &args.capture {
        bundle.write(path)?;
    }
    present(
        &bundle,
        error,
        &Presentation {
            model,
            json: args.json,
            captured: args.capture.as_deref(),
            replayed: args.from.as_deref(),
        },
    )
}

/// Diagnoses `bundle`, prints the report and returns the verdict's exit code.
pub fn present(
    bundle: &CaptureBundle,
    error: Option<String>,
    how: &Presentation<'_>,
) -> Result<u8> {
    let diagnoses = diagnose::diagnose(&bundle.observation());
    let reachable = bundle.ollama_version.is_some();
    let (verdict, code) = verdict(reachable, how.model, &diagnoses);
    let report = Report {
        ollama_url: &bundle.ollama_url,
        scope: &bundle.scope,
        reachable,
        ollama_version: bundle.ollama_version.as_deref(),
        error,
        verdict,
        exit_code: code,
        gpu: &bundle.gpu,
        runners: &bundle.runners,
        diagnoses: &diagnoses,
    };
    if how.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if let Some(path) = how.replayed {
            print_replay(path, bundle);
        }
        print_human(&report, bundle, how.captured);
    }
    Ok(code)
}

/// The GPU source named by `--gpu-source`.
pub fn machine_for(source: &str, ollama_url: &str) -> yollayah_core::Result<Machine> {
    match source {
        "local" => Ok(Machine::local()),
        "sim" => Machine::simulator(ollama_url),
        path => Machine::recorded_file(path),
    }
}

async fn load_first(client: &OllamaClient, model: &str, num_ctx: Option<u32>) -> Result<()> {
    let mut options = Options::new();
    if let Some(n) = num_ctx {
        options.insert("num_ctx".into(), n.into());
    }
    let options = (!options.is_empty()).then_some(&options);
    client
        .load(model, Some(KeepAlive::Duration("5m".into())), options)
        .await?;
    Ok(())
}

/// Reads everything a diagnosis needs. Ollama being down is recorded, not fatal: the GPU
/// part is still worth reporting.
pub async fn capture(
    client: &OllamaClient,
    mut machine: Machine,
    model: Option<&str>,
) -> (CaptureBundle, Option<String>) {
    // Resolved before anything is read: a remote server is never compared with this
    // machine's GPU, so it is not even read.
    let scope = scope::resolve(client.base_url()).await;
    let observe = async {
        if scope.has_gpu_facts() {
            // Two samples 250 ms apart, so runner CPU use is a rate, not a single-sample 0.
            machine.observe_sampled().await
        } else {
            MachineView::none("not read: Ollama runs on another machine (remote scope)")
        }
    };
    let (view, (version, ps)) = tokio::join!(observe, async {
        tokio::join!(client.version(), client.ps())
    });
    let mut bundle = CaptureBundle::new(client.base_url(), view.gpu);
    bundle.scope = scope;
    bundle.runners = view.runners;
    bundle.env = OllamaEnv::from_process_env();
    bundle.requested_models = model.map(|m| vec![m.to_owned()]).unwrap_or_default();
    let (version, ps) = match (version, ps) {
        (Ok(v), Ok(ps)) => (v, ps),
        (Err(e), _) | (_, Err(e)) => return (bundle, Some(e.to_string())),
    };
    bundle.ollama_version = Some(version.version);
    let mut names: Vec<String> = ps.models.iter().map(|m| m.name.clone()).collect();
    // A derived model is judged against its base's PARAMETERs, so read the base too.
    names.extend(
        ps.models
            .iter()
            .map(|m| m.details.parent_model.clone())
            .filter(|p| !p.is_empty()),
    );
    names.extend(bundle.requested_models.iter().cloned());
    names.sort();
    names.dedup();
    bundle.ps = ps;
    for name in names {
        match client.show(&name).await {
            Ok(show) => {
                bundle.show.insert(name, show);
            }
            Err(e) => tracing::warn!("show {name}: {e}"),
        }
    }
    if let Ok(tags) = client.tags().await {
        bundle.tags = tags
            .models
            .into_iter()
            .filter(|t| bundle.show.contains_key(&t.name))
            .collect();
    }
    (bundle, None)
}

fn verdict(
    reachable: bool,
    model: Option<&str>,
    diagnoses: &[ModelDiagnosis],
) -> (&'static str, u8) {
    if !reachable {
        return ("unreachable", exit::UNREACHABLE);
    }
    let relevant: Vec<&ModelDiagnosis> = match model {
        Some(m) => diagnoses.iter().filter(|d| d.model == m).collect(),
        None => diagnoses.iter().collect(),
    };
    // A model made with `ollama create FROM base` shares its base's runner, and `/api/ps`
    // lists whichever name loaded it; diagnose then reports it under that name and emits no
    // NOT_LOADED entry for the requested one. So "no entry" means "loaded under another name".
    let relevant = if relevant.is_empty() {
        diagnoses.iter().filter(|d| d.loaded).collect()
    } else {
        relevant
    };
    if relevant.is_empty() || relevant.iter().all(|d| !d.loaded) {
        return ("not_loaded", exit::NOT_LOADED);
    }
    // The worst placement decides.
    let mut worst = ("gpu", exit::OK);
    for d in relevant.iter().filter(|d| d.loaded) {
        let this = match d.placement.placement {
            Placement::Gpu => ("gpu", exit::OK),
            Placement::Partial { .. } => ("partial", exit::PARTIAL),
            Placement::Cpu => ("cpu", exit::CPU),
            Placement::Unknown => ("unknown", exit::UNKNOWN),
            Placement::Unverified { .. } => ("unverified", exit::UNKNOWN),
        };
        if severity(this.1) > severity(worst.1) {
            worst = this;
        }
    }
    worst
}

fn severity(code: u8) -> u8 {
    match code {
        exit::OK => 0,
        exit::UNKNOWN => 1,
        exit::PARTIAL => 2,
        exit::CPU => 3,
        _ => 4,
    }
}

fn print_replay(path: &std::path::Path, bundle: &CaptureBundle) {
    let when = crate::output::local_date_time(bundle.captured_at);
    let age = time::OffsetDateTime::now_utc() - bundle.captured_at;
    println!(
        "Replaying the capture {} taken at {when} ({} ago); nothing live was read.",
        path.display(),
        crate::output::age(age)
    );
}

fn print_human(r: &Report<'_>, bundle: &CaptureBundle, captured: Option<&std::path::Path>) {
    match (r.reachable, r.ollama_version) {
        (true, Some(v)) => println!("Ollama {v} at {} ({} scope)", r.ollama_url, r.scope),
        _ => {
            println!("Ollama is NOT reachable at {}", r.ollama_url);
            if let Some(e) = &r.error {
                println!("  {e}");
            }
            println!("  Start it with `ollama serve` (or `systemctl start ollama`).");
        }
    }
    match &r.gpu.nvml {
        _ if !r.scope.has_gpu_facts() => {
            println!(
                "GPU: not consulted. Ollama runs on another machine, and this machine's GPU says nothing about it."
            );
            println!("  {}", scope::REMOTE_HINT);
        }
        NvmlStatus::Unavailable { reason } => {
            println!("GPU: NVML unavailable ({reason}); placement rests on /api/ps alone.")
        }
        NvmlStatus::Ok => {
            for g in &r.gpu.gpus {
                let util = g
                    .utilization_gpu
                    .map(|u| format!(" · util {u}%"))
                    .unwrap_or_default();
                println!(
                    "GPU {}: {} · VRAM {}/{} GiB{util}",
                    g.index,
                    g.name,
                    crate::output::gib(g.memory_used),
                    crate::output::gib(g.memory_total)
                );
                for p in &g.processes {
                    let mem = p
                        .used_memory
                        .map(|b| format!("{} MiB", b >> 20))
                        .unwrap_or_else(|| "unknown".into());
                    println!("  pid {:>7}  {:<20} {mem}", p.pid, p.name);
                }
            }
        }
    }
    if r.reachable && r.diagnoses.is_empty() {
        println!("No model is loaded. Load yours with `yollayah warm`.");
    }
    for d in r.diagnoses {
        let p = &d.placement;
        let state = if !d.loaded {
            "not loaded".to_owned()
        } else {
            match p.placement {
                Placement::Gpu => "fully on the GPU".to_owned(),
                Placement::Partial { cpu_pct } => format!("{cpu_pct}% on the CPU"),
                Placement::Cpu => "on the CPU".to_owned(),
                Placement::Unknown => "placement unknown".to_owned(),
                Placement::Unverified { .. } => {
                    "on the GPU according to Ollama, UNVERIFIED".to_owned()
                }
            }
        };
        println!();
        if d.loaded {
            println!("{}: {state} (ollama ps: {})", d.model, p.ps_processor);
        } else {
            println!("{}: {state}", d.model);
            if r.reachable && !bundle.show.contains_key(&d.model) {
                println!(
                    "  the server does not have it: download it with `ollama pull {}`",
                    d.model
                );
            } else {
                println!("  load it with `yollayah warm`");
            }
        }
        match (p.runner_pid, p.runner_gpu_bytes, p.nvml_agrees) {
            (Some(pid), Some(bytes), agrees) => println!(
                "  runner pid {pid} holds {} MiB of GPU memory{}",
                bytes >> 20,
                match agrees {
                    Some(true) => " (agrees with /api/ps)",
                    Some(false) => " (CONTRADICTS /api/ps)",
                    None => "",
                }
            ),
            (Some(pid), None, _) => println!("  runner pid {pid} (GPU memory unknown)"),
            _ => {}
        }
        for f in &d.findings {
            println!("  {}. {} — {}", f.rank, f.code, f.title);
            println!("     fix: {}", f.remedy);
            // The exact commands, ready to paste: the remedy names them, these spell them out.
            for c in &f.commands {
                println!("       $ {c}");
            }
            let ev: Vec<String> = f
                .evidence
                .iter()
                .map(|e| {
                    let v = match &e.value {
                        EvidenceValue::Int(v) => v.to_string(),
                        EvidenceValue::Uint(v) => v.to_string(),
                        EvidenceValue::Float(v) => format!("{v:.2}"),
                        EvidenceValue::Bool(v) => v.to_string(),
                        EvidenceValue::Text(v) => v.clone(),
                    };
                    format!("{}={v}", e.label)
                })
                .collect();
            if !ev.is_empty() {
                println!("     evidence: {}", ev.join(", "));
            }
        }
    }
    if let Some(path) = captured {
        println!(
            "\nCapture written to {} (attach it to a bug report; it holds the names and command \
             lines of the GPU processes and Ollama's runners).",
            path.display()
        );
    }
}
