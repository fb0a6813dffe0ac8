//! Why a model is not fully on the GPU, and what to do about it.
//!
//! [`diagnose`] takes one [`Observation`] (a borrowed view of a capture bundle, or of what the
//! watchdog just read) and returns, per loaded or requested model, the placement verdict and
//! ranked [`Finding`]s with stable [`Code`]s. It is pure and cheap (microseconds: no regex, no
//! JSON, a handful of small strings), so the watchdog calls it on every tick. Codes, thresholds
//! and the memory model are documented in `docs/diagnosis.md`.

mod finding;
pub mod memory;

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

pub use finding::{Code, Evidence, EvidenceValue, Finding, Severity};
use memory::{FitModel, GIB, MIB, ModelShape};

use crate::capture::OllamaEnv;
use crate::gpu::{GpuSnapshot, NvmlStatus, Runner, blob_path_from_modelfile};
use crate::ollama::types::{LOAD_TIME_OPTIONS, Options, PsModel, ShowResponse, TagModel};
use crate::placement::{self, Placement, PlacementInput, PlacementReport};
use crate::scope::Scope;

/// What a remote-scope diagnosis sees of the GPU: nothing (and no complaint about NVML,
/// which is this machine's and beside the point).
static NO_GPU_FACTS: GpuSnapshot = GpuSnapshot {
    nvml: NvmlStatus::Ok,
    driver_version: None,
    gpus: Vec::new(),
};

/// Everything a diagnosis reads, borrowed. Build it from a bundle with
/// [`crate::capture::CaptureBundle::observation`], or directly from live data.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// When the data was read; `/api/ps` entries that expired before it count as unloaded.
    pub captured_at: Option<OffsetDateTime>,
    pub ps: &'a [PsModel],
    /// `/api/show` per model name.
    pub show: &'a BTreeMap<String, ShowResponse>,
    /// `/api/tags` entries (weights file sizes).
    pub tags: &'a [TagModel],
    pub gpu: &'a GpuSnapshot,
    pub runners: &'a [Runner],
    pub env: &'a OllamaEnv,
    /// Models the app wants loaded; those missing from `ps` get a `NOT_LOADED` diagnosis.
    pub requested_models: &'a [String],
    /// The options the app sends (`num_ctx`, `num_gpu`, …); they override the Modelfile.
    pub request_options: Option<&'a Options>,
    /// Where `gpu` and `runners` come from. Remote: they are ignored, whatever they hold.
    pub scope: &'a Scope,
}

/// The verdict for one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDiagnosis {
    pub model: String,
    /// Whether `/api/ps` lists it (and it has not expired).
    pub loaded: bool,
    pub placement: PlacementReport,
    /// Ranked, most likely first.
    pub findings: Vec<Finding>,
}

impl ModelDiagnosis {
    /// The most likely finding.
    pub fn top(&self) -> Option<&Finding> {
        self.findings.first()
    }

    /// The finding with `code`, if any.
    pub fn finding(&self, code: Code) -> Option<&Finding> {
        self.findings.iter().find(|f| f.code == code)
    }
}

/// Diagnoses every loaded model, then every requested model that is not loaded.
pub fn diagnose(obs: &Observation<'_>) -> Vec<ModelDiagnosis> {
    // This machine's GPU and processes say nothing about a remote server's model.
    let remote;
    let obs = if obs.scope.has_gpu_facts() {
        obs
    } else {
        remote = Observation {
            gpu: &NO_GPU_FACTS,
            runners: &[],
            ..*obs
        };
        &remote
    };
    let mut out = Vec::with_capacity(obs.ps.len() + obs.requested_models.len());
    let mut key = String::with_capacity(64);
    for ps in obs.ps {
        out.push(diagnose_model(obs, &ps.name, Some(ps), &mut key));
    }
    for name in obs.requested_models {
        let loaded = obs.ps.iter().any(|p| {
            &p.name == name
                || &p.model == name
                || show_blob(obs, name).is_some_and(|b| show_blob(obs, &p.name) == Some(b))
        });
        if !loaded {
            out.push(diagnose_model(obs, name, None, &mut key));
        }
    }
    out
}

fn show_for<'a>(obs: &Observation<'a>, name: &str) -> Option<&'a ShowResponse> {
    obs.show.get(name).or_else(|| {
        // `llama3.2` and `llama3.2:latest` are the same model.
        if name.contains(':') {
            name.strip_suffix(":latest").and_then(|n| obs.show.get(n))
        } else {
            obs.show
                .iter()
                .find(|(k, _)| k.strip_suffix(":latest") == Some(name))
                .map(|(_, v)| v)
        }
    })
}

fn show_blob<'a>(obs: &Observation<'a>, name: &str) -> Option<&'a str> {
    show_for(obs, name).and_then(|s| blob_path_from_modelfile(&s.modelfile))
}

fn tag_size(obs: &Observation<'_>, name: &str) -> Option<u64> {
    obs.tags
        .iter()
        .find(|t| t.name == name || t.model == name)
        .map(|t| t.size)
        .filter(|s| *s > 0)
}

/// An integer from `/api/show` `parameters` text without building the whole map.
fn param_i64(text: &str, key: &str) -> Option<i64> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(char::is_whitespace)?;
        if k != key {
            return None;
        }
        let f: f64 = v.trim().parse().ok()?;
        (f.fract() == 0.0).then_some(f as i64)
    })
}

fn param_raw<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim())
    })
}

fn option_i64(opts: Option<&Options>, key: &str) -> Option<i64> {
    let v = opts?.get(key)?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

fn env_u64(v: &Option<String>) -> Option<u64> {
    v.as_deref()
        .and_then(|s| s.trim().split(',').next()?.trim().parse().ok())
}

/// Architectures for which Ollama forces one slot (`sched.go` `load`).
fn forced_single_slot(arch: &str) -> bool {
    arch == "mllama"
        || arch == "qwen3next"
        || arch.starts_with("qwen3vl")
        || arch.starts_with("qwen35")
        || arch.starts_with("lfm2")
        || arch.starts_with("nemotron_h")
}

fn gib(b: u64) -> f64 {
    b as f64 / GIB as f64
}

fn mib(b: u64) -> u64 {
    b / MIB
}

/// Memory the model may use on the GPU(s) Ollama would give it.
struct Budget {
    total: u64,
    /// Held by everything except this model's runner.
    others: u64,
    margin: u64,
    /// GPU indices the budget covers.
    gpus: [Option<u32>; 8],
}

impl Budget {
    fn covers(&self, idx: u32) -> bool {
        self.gpus.contains(&Some(idx))
    }
    fn available(&self) -> u64 {
        self.total
            .saturating_sub(self.others)
            .saturating_sub(self.margin)
    }
}

fn budget(obs: &Observation<'_>, runner: Option<&Runner>, ps: Option<&PsModel>) -> Option<Budget> {
    if !obs.gpu.is_ok() || obs.gpu.gpus.is_empty() {
        return None;
    }
    let margin_one =
        env_u64(&obs.env.llama_arg_fit_target).unwrap_or(memory::DEFAULT_FIT_MARGIN_MIB) * MIB;
    let mut b = Budget {
        total: 0,
        others: 0,
        margin: 0,
        gpus: [None; 8],
    };
    let mut n = 0;
    if let Some(r) = runner {
        for g in &obs.gpu.gpus {
            if g.used_by(r.pid).is_some_and(|x| x > 0) && n < b.gpus.len() {
                b.total += g.memory_total;
                b.others += g.memory_used.saturating_sub(g.used_by(r.pid).unwrap_or(0));
                b.gpus[n] = Some(g.index);
                n += 1;
            }
        }
    }
    if n == 0 {
        // Not on any GPU yet: Ollama would pick the GPU with the most room. If the model is
        // loaded but its runner's memory is unknown, count its size_vram as its own.
        let own = ps.map_or(0, |p| p.size_vram);
        let g = obs
            .gpu
            .gpus
            .iter()
            .max_by_key(|g| g.memory_total.saturating_sub(g.memory_used))?;
        let runner_known = runner.is_some_and(|r| g.lists(r.pid));
        b.total = g.memory_total;
        b.others = if runner_known {
            g.memory_used
        } else {
            g.memory_used.saturating_sub(own)
        };
        if ps.is_none() {
            // Predicting a load: Ollama evicts idle models when the newcomer does not fit, so
            // other runners' memory is not a fixed cost here.
            let runners: u64 = obs.runners.iter().filter_map(|r| g.used_by(r.pid)).sum();
            b.others = b.others.saturating_sub(runners);
        }
        b.gpus[0] = Some(g.index);
        n = 1;
    }
    b.margin = margin_one * n as u64;
    Some(b)
}

struct Facts<'a> {
    shape: Option<ModelShape>,
    ctx: u64,
    ctx_source: &'static str,
    parallel: u64,
    kv_type: &'a str,
    kv_bpe: f64,
    flash_off: bool,
    num_gpu: Option<(i64, &'static str)>,
    weights: Option<(u64, &'static str)>,
}

fn facts<'a>(
    obs: &Observation<'a>,
    name: &str,
    ps: Option<&'a PsModel>,
    show: Option<&'a ShowResponse>,
    runner: Option<&'a Runner>,
    suspicious: bool,
    key: &mut String,
) -> Facts<'a> {
    let shape = show.and_then(|s| memory::model_shape(&s.model_info, key));
    // The app's request options only reach the model the app asked for (or one sharing its
    // weights blob); another client's model is loaded with its own options.
    let blob = show.and_then(|s| blob_path_from_modelfile(&s.modelfile));
    let request_options = obs.request_options.filter(|_| {
        obs.requested_models
            .iter()
            .any(|r| r == name || (blob.is_some() && show_blob(obs, r) == blob))
    });
    let arch = show
        .and_then(|s| s.model_info.get("general.architecture"))
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let params = show.map_or("", |s| s.parameters.as_str());
    let args = runner.map(Runner::args).unwrap_or_default();
    let embedding = show.is_some_and(|s| s.capabilities.iter().any(|c| c == "embedding"));

    let (parallel, _) = match args.parallel {
        Some(p) if p > 0 => (p, "runner"),
        _ if forced_single_slot(arch) || embedding => (1, "forced"),
        _ => (
            env_u64(&obs.env.num_parallel)
                .filter(|p| *p > 0)
                .unwrap_or(1),
            "env",
        ),
    };
    let train = shape.map_or(0, |s| s.train_ctx);
    let cap = |c: u64| if train > 0 { c.min(train) } else { c };
    let total_vram: u64 = obs.gpu.gpus.iter().map(|g| g.memory_total).sum();
    let (ctx, ctx_source) = if let Some(c) = args.ctx_total.filter(|c| *c > 0) {
        (c / parallel.max(1), "runner -c")
    } else if let Some(c) = ps.and_then(|p| p.context_length).filter(|c| *c > 0) {
        (c, "/api/ps context_length")
    } else if let Some(c) = option_i64(request_options, "num_ctx").filter(|c| *c > 0) {
        (cap(c as u64), "request options")
    } else if let Some(c) = param_i64(params, "num_ctx").filter(|c| *c > 0) {
        (cap(c as u64), "Modelfile PARAMETER")
    } else if let Some(c) = env_u64(&obs.env.context_length).filter(|c| *c > 0) {
        (cap(c), "OLLAMA_CONTEXT_LENGTH")
    } else {
        let tier = if total_vram >= 47 * GIB {
            262_144
        } else if total_vram >= 23 * GIB {
            32_768
        } else {
            4_096
        };
        (cap(tier), "VRAM tier default")
    };

    let kv_type = args
        .cache_type_k
        .or(obs
            .env
            .kv_cache_type
            .as_deref()
            .filter(|s| !s.trim().is_empty()))
        .unwrap_or("f16");
    let kv_bpe = memory::kv_bytes_per_element(kv_type).unwrap_or(2.0);
    let flash_off = match args.flash_attn {
        Some(v) => v == "off" || v == "0" || v == "false",
        None => matches!(
            obs.env.flash_attention.as_deref().map(str::trim),
            Some("0" | "false" | "FALSE" | "False")
        ),
    };

    let num_gpu = option_i64(request_options, "num_gpu")
        .filter(|n| *n >= 0)
        .map(|n| (n, "request options"))
        .or_else(|| {
            param_i64(params, "num_gpu")
                .filter(|n| *n >= 0)
                .map(|n| (n, "Modelfile PARAMETER"))
        });
    // The runner's -ngl is not used here: runners before 0.30 always received Ollama's own
    // computed layer count, which is a consequence of placement, not a user setting.

    let kv_now =
        |s: &ModelShape| (s.kv_elements_per_token as f64 * kv_bpe * (ctx * parallel) as f64) as u64;
    let weights = tag_size(obs, name)
        .map(|w| (w, "/api/tags size"))
        .or_else(|| {
            let p = ps.filter(|p| p.size > 0)?;
            if suspicious {
                return Some((p.size, "/api/ps size"));
            }
            let kv = shape.as_ref().map_or(0, kv_now);
            p.size
                .checked_sub(kv + memory::RESERVE)
                .filter(|w| *w > 0)
                .map(|w| (w, "/api/ps size minus KV estimate"))
        });

    Facts {
        shape,
        ctx,
        ctx_source,
        parallel,
        kv_type,
        kv_bpe,
        flash_off,
        num_gpu,
        weights,
    }
}

fn not_loaded_report() -> PlacementReport {
    PlacementReport {
        placement: Placement::Unknown,
        ps_placement: Placement::Unknown,
        ps_processor: String::new(),
        cpu_share_pct: None,
        nvml_agrees: None,
        contradiction: false,
        suspicious_no_buffer_fallback: false,
        cpu_busy_gpu_idle: false,
        runner_pid: None,
        runner_gpu_bytes: None,
        runner_gpu_layers: None,
        block_count: None,
    }
}

fn diagnose_model(
    obs: &Observation<'_>,
    name: &str,
    ps: Option<&PsModel>,
    key: &mut String,
) -> ModelDiagnosis {
    let show = show_for(obs, name).or_else(|| ps.and_then(|p| show_for(obs, &p.model)));
    let blob = show.and_then(|s| blob_path_from_modelfile(&s.modelfile));
    let runner = blob.and_then(|b| obs.runners.iter().find(|r| r.model_path == b));
    let expired = match (ps.and_then(|p| p.expires_at), obs.captured_at) {
        (Some(exp), Some(now)) => exp <= now,
        _ => false,
    };
    let report = match ps {
        Some(p) => placement::assess(&PlacementInput {
            ps: p,
            runner,
            runners: obs.runners,
            gpu: obs.gpu,
            model_file_size: tag_size(obs, name),
            block_count: show
                .and_then(|s| memory::model_shape(&s.model_info, key))
                .map(|s| s.block_count),
            scope: obs.scope,
        }),
        None => not_loaded_report(),
    };
    let loaded = ps.is_some() && !expired;
    let f = facts(
        obs,
        name,
        ps,
        show,
        runner,
        report.suspicious_no_buffer_fallback,
        key,
    );
    let budget = budget(obs, runner, ps);
    let fit = match (&budget, f.shape, f.weights) {
        (Some(b), Some(s), Some((w, _))) => Some(FitModel {
            weights: w,
            kv_per_token: s.kv_elements_per_token as f64 * f.kv_bpe,
            parallel: f.parallel,
            no_fa_per_token: if f.flash_off {
                memory::no_fa_per_token(s.head_count_max)
            } else {
                0.0
            },
            available: b.available(),
        }),
        _ => None,
    };

    let mut findings = Vec::new();
    if let NvmlStatus::Unavailable { reason } = &obs.gpu.nvml {
        let mut x = Finding::new(
            Code::NvmlUnavailable,
            Severity::Info,
            5,
            "NVML is unavailable, so this verdict rests on Ollama's /api/ps alone.".into(),
            "Install or repair the NVIDIA driver (nvidia-smi must work) to get cross-checked verdicts.".into(),
        );
        x.evidence.push(Evidence::t("reason", reason.clone()));
        findings.push(x);
    }

    if let (true, Placement::Unverified { reason }) = (loaded, report.placement) {
        let mut x = Finding::new(
            Code::PlacementUnverified,
            Severity::Warning,
            95,
            format!(
                "ollama ps says {}, but it cannot be checked: {}",
                report.ps_processor,
                reason.text()
            ),
            reason.hint().into(),
        );
        x.evidence.push(Evidence::t("scope", obs.scope.label()));
        if let Some(p) = ps {
            x.evidence
                .push(Evidence::u("ps_size_vram_bytes", p.size_vram));
        }
        findings.push(x);
    }

    if !loaded {
        let mut x = Finding::new(
            Code::NotLoaded,
            Severity::Info,
            100,
            if expired {
                format!("{name} is being unloaded (its keep-alive expired).")
            } else {
                format!("{name} is not loaded, so it is on neither the GPU nor the CPU right now.")
            },
            "Load it with a request that sets keep_alive (Yollayah warms it with the same options it chats with).".into(),
        );
        if let Some(p) = ps.and_then(|p| p.expires_at) {
            x.evidence.push(Evidence::t("expires_at", p.to_string()));
        }
        findings.push(x);
    }

    // Unverified is not "off the GPU" either: hunting for causes would be guesswork.
    let full_gpu = loaded
        && (report.placement.is_full_gpu()
            || matches!(report.placement, Placement::Unverified { .. }))
        && !report.contradiction;
    // A model that is not loaded is diagnosed predictively: would it fit as configured?
    let predict_miss = !loaded && fit.is_some_and(|m| !m.fits(f.ctx));
    let not_on_gpu = (loaded && !full_gpu) || predict_miss;

    // Checks on the truth of /api/ps itself.
    let near_zero = report.runner_gpu_bytes.is_some_and(|b| {
        b <= placement::NEAR_ZERO
            .min(ps.map_or(0, |p| p.size_vram) / 4)
            .max(MIB)
    });
    let backend_lost_ps_gpu = loaded
        && obs.gpu.is_ok()
        && !obs.gpu.gpus.is_empty()
        && ps.is_some_and(|p| p.size_vram >= 512 * MIB)
        && near_zero;
    let gpu_util = obs.gpu.gpus.iter().filter_map(|g| g.utilization_gpu).max();
    if backend_lost_ps_gpu {
        let mut x = Finding::new(
            Code::GpuBackendLost,
            Severity::Cause,
            100,
            "Ollama says the model is on the GPU, but its runner holds no GPU memory: the GPU backend failed to load and it runs on the CPU.".into(),
            "Reload the NVIDIA UVM module (sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm), which suspend/resume often breaks, or restart Ollama.".into(),
        );
        push_ps_vs_runner(&mut x, ps, &report, runner, gpu_util);
        findings.push(x);
    }
    if report.contradiction {
        let mut x = Finding::new(
            Code::PsContradictsNvml,
            Severity::Warning,
            if backend_lost_ps_gpu { 60 } else { 90 },
            format!(
                "ollama ps says {}, but NVML and the runner's activity say otherwise.",
                report.ps_processor
            ),
            "Trust the NVML figures: restart the model (ollama stop, then load it again) and check the Ollama server log for GPU errors.".into(),
        );
        push_ps_vs_runner(&mut x, ps, &report, runner, gpu_util);
        if report.cpu_busy_gpu_idle {
            x.evidence.push(Evidence::t(
                "cpu_busy_gpu_idle",
                "runner uses several cores while the GPU is idle",
            ));
        }
        findings.push(x);
    }
    if report.suspicious_no_buffer_fallback {
        let mut x = Finding::new(
            Code::NoBufferFallback,
            Severity::Warning,
            65,
            "Ollama's size equals the model file size: it parsed no GPU buffer lines and its \"100% GPU\" is a fallback, not a measurement.".into(),
            "Check the real placement with NVML (nvidia-smi); the server log says \"llama-server VRAM tracking: no per-device buffer sizes were parsed\".".into(),
        );
        if let Some(p) = ps {
            x.evidence.push(Evidence::u("ps_size_bytes", p.size));
            x.evidence
                .push(Evidence::u("ps_size_vram_bytes", p.size_vram));
        }
        if let Some(s) = tag_size(obs, name) {
            x.evidence.push(Evidence::u("model_file_bytes", s));
        }
        findings.push(x);
    }

    if not_on_gpu {
        causes(
            obs,
            name,
            ps,
            show,
            runner,
            &report,
            &f,
            budget.as_ref(),
            fit,
            loaded,
            &mut findings,
        );
    }

    findings.sort_by_key(|f| std::cmp::Reverse(f.score));
    for (i, x) in findings.iter_mut().enumerate() {
        x.rank = i as u32 + 1;
    }
    ModelDiagnosis {
        model: name.to_owned(),
        loaded,
        placement: report,
        findings,
    }
}

fn push_ps_vs_runner(
    x: &mut Finding,
    ps: Option<&PsModel>,
    report: &PlacementReport,
    runner: Option<&Runner>,
    gpu_util: Option<u32>,
) {
    if let Some(p) = ps {
        x.evidence
            .push(Evidence::t("ps_processor", report.ps_processor.clone()));
        x.evidence
            .push(Evidence::u("ps_size_vram_bytes", p.size_vram));
    }
    if let Some(b) = report.runner_gpu_bytes {
        x.evidence.push(Evidence::u("runner_gpu_bytes", b));
    }
    if let Some(r) = runner {
        x.evidence.push(Evidence::u("runner_pid", u64::from(r.pid)));
        x.evidence
            .push(Evidence::f("runner_cpu_percent", f64::from(r.cpu_percent)));
    }
    if let Some(u) = gpu_util {
        x.evidence
            .push(Evidence::u("gpu_utilization_pct", u64::from(u)));
    }
}

/// Likelihood that freeing `bytes` explains a `deficit`: certain if it covers it, else
/// proportional.
fn share_score(bytes: u64, deficit: u64, full: u8) -> u8 {
    if deficit == 0 || bytes >= deficit {
        full
    } else {
        30 + (40.0 * bytes as f64 / deficit as f64) as u8
    }
}

#[allow(clippy::too_many_arguments)]
fn causes(
    obs: &Observation<'_>,
    name: &str,
    ps: Option<&PsModel>,
    show: Option<&ShowResponse>,
    runner: Option<&Runner>,
    report: &PlacementReport,
    f: &Facts<'_>,
    budget: Option<&Budget>,
    fit: Option<FitModel>,
    loaded: bool,
    out: &mut Vec<Finding>,
) {
    let deficit = fit.map(|m| m.deficit(f.ctx));
    let ps_cpu_only = ps.is_some_and(|p| p.size_vram == 0);
    let placement_cpu = report.placement == Placement::Cpu;
    let layers = f.shape.map_or(0, |s| s.block_count);

    // num_gpu: the explicit switches come first, they override every memory consideration.
    if let Some((n, src)) = f.num_gpu {
        if n == 0 {
            let mut x = Finding::new(
                Code::NumGpuZero,
                Severity::Cause,
                if placement_cpu || ps_cpu_only || !loaded { 95 } else { 40 },
                format!("num_gpu is 0 ({src}), which tells Ollama to run {name} on the CPU only."),
                "Remove PARAMETER num_gpu 0 from the Modelfile and re-create the model (or send \"num_gpu\": -1 after unloading it).".into(),
            );
            x.evidence.push(Evidence::i("num_gpu", n));
            x.evidence.push(Evidence::t("num_gpu_source", src));
            out.push(x);
        } else if layers > 0 && (n as u64) < layers + 1 {
            let mut x = Finding::new(
                Code::NumGpuSet,
                Severity::Cause,
                88,
                format!("num_gpu is {n} ({src}): only {n} of {} layers may go to the GPU.", layers + 1),
                "Remove the num_gpu setting (automatic placement is -1) so llama.cpp can fit as many layers as VRAM allows.".into(),
            );
            x.evidence.push(Evidence::i("num_gpu", n));
            x.evidence
                .push(Evidence::u("offloadable_layers", layers + 1));
            x.evidence.push(Evidence::t("num_gpu_source", src));
            out.push(x);
        }
    }

    // The GPU is there and the model would fit, yet nothing is on it: the backend is gone.
    if ps_cpu_only
        && loaded
        && f.num_gpu.is_none_or(|(n, _)| n != 0)
        && report.runner_gpu_bytes == Some(0)
        && fit.is_some_and(|m| m.fits(f.ctx))
    {
        let mut x = Finding::new(
            Code::GpuBackendLost,
            Severity::Cause,
            72,
            "The model fits in free VRAM but runs 100% on the CPU and its runner has no GPU context: the GPU backend did not load.".into(),
            "Reload the NVIDIA UVM module (sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm), which suspend/resume often breaks, or restart Ollama.".into(),
        );
        if let (Some(m), Some(b)) = (fit, budget) {
            x.evidence.push(Evidence::u("needed_bytes", m.need(f.ctx)));
            x.evidence
                .push(Evidence::u("available_bytes", b.available()));
        }
        out.push(x);
    }

    let kv_now = fit.map(|m| m.kv_bytes(f.ctx)).or_else(|| {
        f.shape.map(|s| {
            (s.kv_elements_per_token as f64 * f.kv_bpe * (f.ctx * f.parallel) as f64) as u64
        })
    });

    // Weights alone do not fit.
    if let (Some(m), Some(b)) = (fit, budget) {
        if m.weights + memory::RESERVE > m.available {
            let whole_gpu = m.weights + memory::RESERVE + b.margin > b.total;
            let mut x = Finding::new(
                Code::ModelTooLarge,
                Severity::Cause,
                if whole_gpu { 85 } else { 50 },
                format!(
                    "The weights alone ({:.1} GiB) do not fit in the {:.1} GiB of VRAM left for the model.",
                    gib(m.weights),
                    gib(m.available)
                ),
                if whole_gpu {
                    "Use a smaller model or a smaller quantisation (e.g. Q4_K_M instead of Q8_0); no setting makes it fit this GPU.".into()
                } else {
                    "Free VRAM (see the other findings) or use a smaller quantisation.".into()
                },
            );
            x.evidence.push(Evidence::u("weights_bytes", m.weights));
            x.evidence.push(Evidence::u("available_bytes", m.available));
            x.evidence.push(Evidence::u("gpu_total_bytes", b.total));
            out.push(x);
        }
    }

    // Context too large.
    if let Some(kv) = kv_now {
        let cap = f.shape.map_or(0, |s| s.train_ctx);
        let advice = fit.and_then(|m| m.largest_fit(cap)).or_else(|| {
            // Without NVML: the part ps puts on the CPU is what must move; shrink the KV by it.
            if fit.is_some() || budget.is_some() {
                return None;
            }
            let p = ps?;
            if p.size_vram == 0 || p.size_vram >= p.size {
                return None;
            }
            let per_ctx = kv as f64 / f.ctx.max(1) as f64;
            let cut = ((p.size - p.size_vram) as f64 / per_ctx).ceil() as u64;
            let c = f.ctx.checked_sub(cut)? / memory::CTX_STEP * memory::CTX_STEP;
            (c >= memory::MIN_CTX).then_some(c)
        });
        let helps = advice.is_some_and(|a| a < f.ctx);
        let big = f.ctx > 8192;
        if helps || (big && fit.is_none_or(|m| !m.fits(f.ctx))) {
            let score = match (helps, big) {
                (true, true) => 80,
                (true, false) => 55,
                _ => 35,
            };
            let title = format!(
                "The context (num_ctx {}{}) needs {:.1} GiB of KV cache, more than the GPU has room for next to the weights.",
                f.ctx,
                if f.parallel > 1 {
                    format!(" × {} slots", f.parallel)
                } else {
                    String::new()
                },
                gib(kv)
            );
            let remedy = match advice.filter(|a| *a < f.ctx) {
                Some(a) => format!(
                    "Set num_ctx to {a} (Modelfile: PARAMETER num_ctx {a}; API: \"options\": {{\"num_ctx\": {a}}}) so the whole model fits on the GPU."
                ),
                None => "Lower num_ctx and free VRAM; at this size even a small context does not fit next to the weights.".into(),
            };
            let mut x = Finding::new(Code::CtxTooLarge, Severity::Cause, score, title, remedy);
            x.suggested_num_ctx = advice.filter(|a| *a < f.ctx);
            x.evidence.push(Evidence::u("num_ctx", f.ctx));
            x.evidence.push(Evidence::t("num_ctx_source", f.ctx_source));
            x.evidence.push(Evidence::u("parallel", f.parallel));
            x.evidence.push(Evidence::u("kv_cache_bytes", kv));
            x.evidence.push(Evidence::t("kv_cache_type", f.kv_type));
            if let Some(s) = f.shape {
                x.evidence.push(Evidence::u(
                    "kv_bytes_per_token",
                    (s.kv_elements_per_token as f64 * f.kv_bpe) as u64,
                ));
                if s.kv_heads_assumed {
                    x.evidence.push(Evidence::t(
                        "kv_heads",
                        "unknown (truncated array): assumed head_count, an upper bound",
                    ));
                }
            }
            if let Some((w, src)) = f.weights {
                x.evidence.push(Evidence::u("weights_bytes", w));
                x.evidence.push(Evidence::t("weights_source", src));
            }
            if let Some(m) = fit {
                x.evidence.push(Evidence::u("needed_bytes", m.need(f.ctx)));
                x.evidence.push(Evidence::u("available_bytes", m.available));
            }
            out.push(x);
        }
    }

    // Other processes on the GPU(s) the model uses.
    let runner_pids = |pid: u32| obs.runners.iter().any(|r| r.pid == pid);
    if let Some(b) = budget {
        let mut held = 0u64;
        let mut ev = Vec::new();
        let mut names = String::new();
        for g in obs.gpu.gpus.iter().filter(|g| b.covers(g.index)) {
            for p in g
                .processes
                .iter()
                .filter(|p| !runner_pids(p.pid) && Some(p.pid) != runner.map(|r| r.pid))
            {
                match p.used_memory {
                    Some(m) if m >= 32 * MIB => {
                        held += m;
                        if !names.is_empty() {
                            names.push_str(", ");
                        }
                        let label = if p.name.is_empty() {
                            "pid"
                        } else {
                            p.name.as_str()
                        };
                        names.push_str(&format!("{label} ({}) {} MiB", p.pid, mib(m)));
                        ev.push(Evidence::u("process_bytes", m));
                    }
                    None => {
                        if !names.is_empty() {
                            names.push_str(", ");
                        }
                        names.push_str(&format!("{} ({}) unknown MiB", p.name, p.pid));
                    }
                    _ => {}
                }
            }
        }
        let d = deficit.unwrap_or(0);
        if held >= 256 * MIB && (d > 0 || !loaded && fit.is_none()) {
            let mut x = Finding::new(
                Code::VramHeldByOtherProcess,
                Severity::Cause,
                share_score(held, d, 75),
                format!(
                    "Other programs hold {} MiB of GPU memory: {names}.",
                    mib(held)
                ),
                "Close those programs (or move them to another GPU) and reload the model.".into(),
            );
            x.evidence.push(Evidence::u("held_bytes", held));
            x.evidence.push(Evidence::u("deficit_bytes", d));
            x.evidence.extend(ev);
            out.push(x);
        }
    }

    // Other Ollama models loaded at the same time.
    let own_blob = show.and_then(|s| blob_path_from_modelfile(&s.modelfile));
    let mut other_bytes = 0u64;
    let mut other_names = String::new();
    for p in obs.ps.iter().filter(|p| p.name != name) {
        let blob = show_blob(obs, &p.name);
        if blob.is_some() && blob == own_blob {
            continue;
        }
        let r = blob.and_then(|b| obs.runners.iter().find(|r| r.model_path == b));
        let bytes = r
            .and_then(|r| placement::runner_gpu_bytes(obs.gpu, r.pid, p.size_vram))
            .unwrap_or(p.size_vram);
        if bytes == 0 {
            continue;
        }
        other_bytes += bytes;
        if !other_names.is_empty() {
            other_names.push_str(", ");
        }
        other_names.push_str(&format!("{} ({} MiB)", p.name, mib(bytes)));
    }
    if other_bytes > 0 && deficit.is_none_or(|d| d > 0) {
        let mut x = Finding::new(
            Code::SecondModelLoaded,
            Severity::Cause,
            match deficit {
                Some(d) => share_score(other_bytes, d, 78),
                None => 45,
            },
            format!("Another model is loaded and holds GPU memory: {other_names}."),
            "Unload it (ollama stop <model>) or set OLLAMA_MAX_LOADED_MODELS=1, then reload this model.".into(),
        );
        x.evidence
            .push(Evidence::u("other_models_bytes", other_bytes));
        if let Some(d) = deficit {
            x.evidence.push(Evidence::u("deficit_bytes", d));
        }
        out.push(x);
    }

    // Parallel slots multiply the KV cache.
    if f.parallel > 1 {
        if let Some(kv) = kv_now {
            let saving = kv - kv / f.parallel;
            let d = deficit.unwrap_or(0);
            if deficit.is_none_or(|d| d > 0) {
                let mut x = Finding::new(
                    Code::ParallelMultipliesKv,
                    Severity::Cause,
                    if deficit.is_some() { share_score(saving, d, 70) } else { 40 },
                    format!(
                        "OLLAMA_NUM_PARALLEL={} keeps {} copies of the context: {:.1} GiB of KV cache instead of {:.1} GiB.",
                        f.parallel,
                        f.parallel,
                        gib(kv),
                        gib(kv / f.parallel)
                    ),
                    "Set OLLAMA_NUM_PARALLEL=1 for the Ollama server (one chat at a time) and restart it.".into(),
                );
                x.evidence.push(Evidence::u("parallel", f.parallel));
                x.evidence.push(Evidence::u("kv_cache_bytes", kv));
                x.evidence.push(Evidence::u("saving_bytes", saving));
                out.push(x);
            }
        }
    }

    // A derived model whose load-time parameters differ from its base.
    if let Some(s) = show {
        let parent = s.details.parent_model.as_str();
        let base = (!parent.is_empty())
            .then(|| show_for(obs, parent))
            .flatten()
            .map(|b| (parent, b))
            .or_else(|| {
                let own = blob_path_from_modelfile(&s.modelfile)?;
                obs.show
                    .iter()
                    .filter(|(n, _)| n.as_str() != name)
                    .find(|(_, b)| blob_path_from_modelfile(&b.modelfile) == Some(own))
                    .map(|(n, b)| (n.as_str(), b))
            });
        let mut diffs = String::new();
        let mut ev = Vec::new();
        let mut any = false;
        for k in LOAD_TIME_OPTIONS {
            let mine = param_raw(&s.parameters, k);
            let theirs = base.and_then(|(_, b)| param_raw(&b.parameters, k));
            let differs = match base {
                Some(_) => mine != theirs,
                // Base not captured: only a load-time PARAMETER of the derived model is known.
                None => !parent.is_empty() && mine.is_some(),
            };
            if differs {
                any = true;
                if !diffs.is_empty() {
                    diffs.push_str(", ");
                }
                diffs.push_str(&format!(
                    "{k} {} vs {}",
                    mine.unwrap_or("unset"),
                    if base.is_some() {
                        theirs.unwrap_or("unset")
                    } else {
                        "unknown"
                    }
                ));
                if let Some(v) = param_i64(&s.parameters, k) {
                    ev.push(Evidence::i(k, v));
                }
            }
        }
        if any {
            let base_name = base.map_or(parent, |(n, _)| n);
            let mut x = Finding::new(
                Code::DerivedParamsDiffer,
                Severity::Cause,
                if base.is_some() { 45 } else { 40 },
                format!(
                    "{name} is derived from {base_name} but loads with different settings ({diffs}); switching between them reloads the model every time."
                ),
                format!(
                    "Keep load-time PARAMETERs (num_ctx, num_gpu…) of {name} equal to {base_name}'s, or use the base model with request options."
                ),
            );
            x.evidence.push(Evidence::t("base_model", base_name));
            x.evidence.extend(ev);
            out.push(x);
        }
    }
}
