//! [`Ctx`]: everything the rules read about one model, worked out once. Each rule in
//! [`super::rules`] is a small function of a `Ctx`, so it reads (and is tested) on its own.

use serde_json::Value;

use super::Observation;
use super::history::ModelLoads;
use super::memory::{self, FitModel, GIB, MIB, ModelShape};
use super::server::{self, Era, Version};
use crate::gpu::{GpuInfo, NvmlFailure, NvmlStatus, Runner, blob_path_from_modelfile};
use crate::ollama::types::{Options, PsModel, ShowResponse};
use crate::placement::{self, Placement, PlacementReport};

pub(crate) fn show_for<'a>(obs: &Observation<'a>, name: &str) -> Option<&'a ShowResponse> {
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

pub(crate) fn show_blob<'a>(obs: &Observation<'a>, name: &str) -> Option<&'a str> {
    show_for(obs, name).and_then(|s| blob_path_from_modelfile(&s.modelfile))
}

pub(crate) fn tag_size(obs: &Observation<'_>, name: &str) -> Option<u64> {
    obs.tags
        .iter()
        .find(|t| t.name == name || t.model == name)
        .map(|t| t.size)
        .filter(|s| *s > 0)
}

/// An integer from `/api/show` `parameters` text without building the whole map.
pub(crate) fn param_i64(text: &str, key: &str) -> Option<i64> {
    let v = param_raw(text, key)?;
    let f: f64 = v.parse().ok()?;
    (f.fract() == 0.0).then_some(f as i64)
}

pub(crate) fn param_raw<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim())
    })
}

pub(crate) fn option_i64(opts: Option<&Options>, key: &str) -> Option<i64> {
    let v = opts?.get(key)?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

pub(crate) fn env_u64(v: &Option<String>) -> Option<u64> {
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

/// Ollama's minimum free memory per GPU before its own layout (≤ 0.24) places anything on it
/// (`gpu.go` `CudaMinimumMemory`, logged as `minimum_memory=479199232`).
pub const OLLAMA_MIN_MEMORY: u64 = 457 * MIB;

/// Memory the model may use on the GPU(s) Ollama would give it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub total: u64,
    /// Held by everything except this model's runner.
    pub others: u64,
    pub margin: u64,
    /// GPU indices the budget covers.
    pub gpus: [Option<u32>; 8],
    pub n: u64,
}

impl Budget {
    pub fn covers(&self, idx: u32) -> bool {
        self.gpus.contains(&Some(idx))
    }
    pub fn available(&self) -> u64 {
        self.total
            .saturating_sub(self.others)
            .saturating_sub(self.margin)
    }
}

/// What `CUDA_VISIBLE_DEVICES` leaves visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// Unset: every GPU.
    All,
    /// Set; bit `i` = GPU index `i` is visible.
    Some(u64),
}

impl Visibility {
    pub fn parse(v: Option<&str>, gpus: &[GpuInfo]) -> Visibility {
        let Some(v) = v else {
            return Visibility::All;
        };
        let mut mask = 0u64;
        for tok in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if let Ok(i) = tok.parse::<i64>() {
                // CUDA stops at the first invalid ordinal (e.g. -1).
                if !(0..64).contains(&i) {
                    break;
                }
                mask |= 1 << i;
            } else if tok.starts_with("GPU-") {
                for g in gpus {
                    if g.uuid.as_deref().is_some_and(|u| u.starts_with(tok)) && g.index < 64 {
                        mask |= 1 << g.index;
                    }
                }
            }
        }
        Visibility::Some(mask)
    }
    pub fn shows(&self, g: &GpuInfo) -> bool {
        match self {
            Visibility::All => true,
            Visibility::Some(m) => g.index < 64 && m & (1 << g.index) != 0,
        }
    }
}

/// Settings the model is (or would be) loaded with, and where each came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    pub shape: Option<ModelShape>,
    pub ctx: u64,
    pub ctx_source: &'static str,
    pub parallel: u64,
    pub kv_type: &'a str,
    pub kv_bpe: f64,
    pub flash_off: bool,
    /// `num_gpu` from the app's options or the Modelfile.
    pub num_gpu: Option<(i64, &'static str)>,
    pub weights: Option<(u64, &'static str)>,
    /// The runner's `-ngl` on llama-server (≥ 0.30 passes it only when a client set num_gpu).
    pub runner_ngl: Option<i64>,
    /// `--mmproj` in the runner's argv, and whether `--no-mmproj-offload` keeps it on the CPU.
    pub projector: Option<bool>,
    /// Projector bytes from `/api/show` `projector_info` (parameter count × type size).
    pub projector_bytes: Option<u64>,
    pub request_options: Option<&'a Options>,
    /// `(total VRAM, default)` when the context is Ollama's VRAM-based default (fact sheet §5,
    /// §12) as far as we can see: nothing here set num_ctx and it equals the tier for the
    /// visible GPUs' total, capped to the training context.
    pub tier_default: Option<(u64, u64)>,
}

/// A GPU the installed Ollama cannot use.
#[derive(Debug, Clone)]
/// The NVIDIA driver is older than the installed Ollama's CUDA build needs: Ollama drops every
/// GPU at discovery and runs on the CPU.
pub(crate) struct DriverIssue {
    /// As NVML reports it, e.g. `535.183.01`.
    pub driver: String,
    /// The oldest driver branch this Ollama accepts.
    pub required: u32,
}

pub(crate) struct ArchIssue {
    pub gpu: String,
    pub index: u32,
    pub cc: (u32, u32),
    pub why: &'static str,
}

/// Everything the rules read about one model.
pub(crate) struct Ctx<'a> {
    pub obs: &'a Observation<'a>,
    pub name: &'a str,
    pub ps: Option<&'a PsModel>,
    pub show: Option<&'a ShowResponse>,
    pub blob: Option<&'a str>,
    pub runner: Option<&'a Runner>,
    pub report: PlacementReport,
    pub era: Era,
    /// Listed by `/api/ps` and not expired.
    pub loaded: bool,
    /// Listed, but its `expires_at` has passed: being unloaded.
    pub expired: bool,
    /// Loaded, fully on the GPU, and nothing contradicts it.
    pub full_gpu: bool,
    /// Loaded and not fully on the GPU (an unverified GPU claim is neither), or not loaded and
    /// would not fit as configured.
    pub not_on_gpu: bool,
    pub f: Facts<'a>,
    pub budget: Option<Budget>,
    pub fit: Option<FitModel>,
    pub deficit: Option<u64>,
    pub kv_now: Option<u64>,
    pub visibility: Visibility,
    pub nvml_failure: Option<NvmlFailure>,
    pub gpu_util: Option<u32>,
    /// NVML shows the runner holding next to nothing although `/api/ps` claims ≥ 512 MiB.
    pub backend_lost_ps_gpu: bool,
    /// `/api/ps` says 100 % CPU.
    pub ps_cpu_only: bool,
    /// Another runner of the same server holds GPU memory: `(pid, bytes)`.
    pub sibling_on_gpu: Option<(u32, u64)>,
    pub arch_issue: Option<ArchIssue>,
    pub driver_issue: Option<DriverIssue>,
    pub history: Option<&'a ModelLoads>,
}

impl<'a> Ctx<'a> {
    /// Whether the effective placement has a CPU share (partial or CPU).
    pub fn offloaded(&self) -> bool {
        self.loaded
            && matches!(
                self.report.placement,
                Placement::Partial { .. } | Placement::Cpu
            )
    }

    pub fn placement_cpu(&self) -> bool {
        self.report.placement == Placement::Cpu
    }

    /// Bytes of one repeating layer (weights / blocks).
    pub fn layer_bytes(&self) -> Option<u64> {
        let (w, _) = self.f.weights?;
        let l = self.f.shape?.block_count;
        w.checked_div(l + 1)
    }

    /// A `num_gpu 0` that explains a CPU placement: our options, the Modelfile, or a client.
    pub fn num_gpu_zero_explains(&self) -> bool {
        self.f.num_gpu.is_some_and(|(n, _)| n == 0) || self.client_num_gpu_zero().is_some()
    }

    /// Something other than memory keeps the model off the GPU (num_gpu 0, an unusable or
    /// hidden GPU, a broken driver); memory rules stay quiet then.
    pub fn forced_off_gpu(&self) -> bool {
        self.num_gpu_zero_explains()
            || self.build_skips_gpu()
            || self.nvml_failure == Some(NvmlFailure::VersionMismatch)
            || (self.obs.gpu.is_ok()
                && !self.obs.gpu.gpus.is_empty()
                && self.obs.gpu.gpus.iter().all(|g| !self.visibility.shows(g)))
    }

    /// The installed Ollama cannot use the GPU at all (its architecture is not compiled in,
    /// or the driver is too old for its CUDA build): no memory or backend story applies.
    pub fn build_skips_gpu(&self) -> bool {
        self.arch_issue.is_some() || self.driver_issue.is_some()
    }

    /// Evidence that a client (not the Modelfile, not the app) asked for num_gpu 0.
    pub fn client_num_gpu_zero(&self) -> Option<&'static str> {
        if self.f.num_gpu.is_some_and(|(n, _)| n == 0) {
            return None;
        }
        if self.f.runner_ngl == Some(0) {
            return Some(
                "runner argv -ngl 0 (llama-server gets -ngl only when a client sets num_gpu)",
            );
        }
        let cpu = self.ps_cpu_only || self.placement_cpu();
        let fits = self.fit.is_some_and(|m| m.fits(self.f.ctx))
            || self.fit.is_none() && self.budget.is_some();
        if self.loaded && cpu && fits && self.sibling_on_gpu.is_some() {
            return Some("another runner of the same server uses the GPU, so its backend works");
        }
        None
    }
}

/// A rough compute capability from the board name (NVML's name; no capability query in the
/// snapshot contract). `None` when the family is not recognised.
pub(crate) fn compute_capability(name: &str) -> Option<(u32, u32)> {
    let n = name.to_ascii_uppercase();
    const TABLE: &[(&str, (u32, u32))] = &[
        ("RTX 50", (12, 0)),
        ("B200", (10, 0)),
        ("B100", (10, 0)),
        ("H100", (9, 0)),
        ("H200", (9, 0)),
        ("GH200", (9, 0)),
        ("RTX 40", (8, 9)),
        ("L40", (8, 9)),
        ("L4", (8, 9)),
        (" ADA", (8, 9)),
        ("A100", (8, 0)),
        ("A30", (8, 0)),
        ("RTX 30", (8, 6)),
        ("RTX A", (8, 6)),
        ("A40", (8, 6)),
        ("A10", (8, 6)),
        ("RTX 20", (7, 5)),
        ("GTX 16", (7, 5)),
        ("QUADRO RTX", (7, 5)),
        ("TESLA T4", (7, 5)),
        ("V100", (7, 0)),
        ("TITAN V", (7, 0)),
        ("P100", (6, 0)),
        ("GTX 10", (6, 1)),
        ("P40", (6, 1)),
        ("QUADRO P", (6, 1)),
        ("GTX 9", (5, 2)),
        ("M40", (5, 2)),
        ("M60", (5, 2)),
        ("QUADRO M", (5, 2)),
        ("GTX 7", (3, 5)),
        ("K80", (3, 7)),
        ("K40", (3, 5)),
        ("TESLA K", (3, 5)),
    ];
    TABLE.iter().find(|(k, _)| n.contains(k)).map(|(_, cc)| *cc)
}

/// Why the installed Ollama would skip a GPU with this capability, if it would.
fn arch_unsupported(cc: (u32, u32), version: Option<Version>) -> Option<&'static str> {
    if cc < (5, 0) {
        // Official builds dropped Kepler (3.x) long ago (ollama/ollama#1756).
        return Some("compute capability below 5.0 is not compiled into official Ollama builds");
    }
    if cc == (8, 6) && version == Some(Version(0, 32, 14)) {
        return Some(
            "Ollama 0.32.14's CUDA 13 kernels omit sm_86 and its CUDA 12 fallback is broken (ollama/ollama#17841)",
        );
    }
    None
}

fn driver_too_old(driver: &str, version: Option<Version>) -> Option<DriverIssue> {
    server::driver_too_old(driver, version?).map(|required| DriverIssue {
        driver: driver.to_owned(),
        required,
    })
}

fn projector_bytes(show: &ShowResponse) -> Option<u64> {
    let info = &show.projector_info;
    let params = info
        .get("general.parameter_count")
        .and_then(Value::as_u64)?;
    // Projectors ship as F16 almost always; F32 and Q8_0 exist.
    let bpe = match info.get("general.file_type").and_then(Value::as_u64) {
        Some(0) => 4.0,
        Some(7) => 1.0625,
        _ => 2.0,
    };
    Some((params as f64 * bpe) as u64)
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

/// The model being diagnosed and what identifies its server: the inputs of [`facts`].
#[derive(Clone, Copy)]
struct Subject<'a> {
    name: &'a str,
    ps: Option<&'a PsModel>,
    show: Option<&'a ShowResponse>,
    runner: Option<&'a Runner>,
    era: Era,
    version: Option<Version>,
    /// `/api/ps` looks like the no-buffer fallback (its size is the file size).
    suspicious: bool,
}

fn facts<'a>(obs: &Observation<'a>, sub: &Subject<'a>, key: &mut String) -> Facts<'a> {
    let Subject {
        name,
        ps,
        show,
        runner,
        era,
        version,
        suspicious,
    } = *sub;
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

    let parallel = match args.parallel {
        Some(p) if p > 0 => p,
        _ if forced_single_slot(arch) || embedding => 1,
        _ => env_u64(&obs.env.num_parallel)
            .filter(|p| *p > 0)
            .unwrap_or(1),
    };
    let train = shape.map_or(0, |s| s.train_ctx);
    let cap = |c: u64| if train > 0 { c.min(train) } else { c };
    // The tier counts the GPUs the server can see (fact sheet §12).
    let vis = Visibility::parse(obs.env.cuda_visible_devices.as_deref(), &obs.gpu.gpus);
    let total_vram: u64 = obs
        .gpu
        .gpus
        .iter()
        .filter(|g| vis.shows(g))
        .map(|g| g.memory_total)
        .sum();
    let tier = vram_tier_default(total_vram);
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
        (cap(tier), "VRAM tier default")
    };
    // The tiers exist from 0.15.5 (ollama/ollama#14116, PR #13946); before, the default was
    // 2048 or 4096 whatever the VRAM.
    let tiered = version.is_none_or(|v| v >= Version(0, 15, 5));
    let unset = option_i64(request_options, "num_ctx").is_none_or(|c| c <= 0)
        && param_i64(params, "num_ctx").is_none_or(|c| c <= 0)
        && env_u64(&obs.env.context_length).is_none_or(|c| c == 0);
    let tier_default =
        (tiered && unset && total_vram > 0 && ctx == cap(tier)).then_some((total_vram, tier));

    let old_runner_argv = runner.is_some() && era == Era::Old;
    let flash_off = match args.flash_attn {
        Some(v) => v == "off" || v == "0" || v == "false",
        // Old runners got `--flash-attn` only when it was on.
        None if old_runner_argv => true,
        None => {
            !server::flash_attention_default(era, version, obs.env.flash_attention.as_deref(), arch)
        }
    };
    let kv_type = args
        .cache_type_k
        .or(obs
            .env
            .kv_cache_type
            .as_deref()
            .filter(|s| !s.trim().is_empty()))
        .unwrap_or("f16");
    // A quantised KV cache needs flash attention; without it Ollama falls back to f16.
    let kv_type = if flash_off && kv_type != "f16" && kv_type != "f32" {
        "f16"
    } else {
        kv_type
    };
    let kv_bpe = memory::kv_bytes_per_element(kv_type).unwrap_or(2.0);

    let num_gpu = option_i64(request_options, "num_gpu")
        .filter(|n| *n >= 0)
        .map(|n| (n, "request options"))
        .or_else(|| {
            param_i64(params, "num_gpu")
                .filter(|n| *n >= 0)
                .map(|n| (n, "Modelfile PARAMETER"))
        });
    // Only llama-server's -ngl is a user setting: runners before 0.30 always received Ollama's
    // own computed layer count, a consequence of placement.
    let runner_ngl = runner
        .filter(|r| server::is_llama_server(r))
        .and(args.gpu_layers)
        .filter(|n| *n >= 0);

    let kv_now = |s: &ModelShape| {
        let m = FitModel {
            weights: 0,
            kv_per_token: s.kv_elements_per_token as f64 * kv_bpe,
            swa_kv_per_token: s.swa_kv_elements_per_token as f64 * kv_bpe,
            swa_window: s.sliding_window,
            parallel,
            no_fa_per_token: 0.0,
            graph_copies: 1,
            fixed: 0,
            available: 0,
        };
        m.kv_bytes(ctx)
    };
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
    let projector = runner.and_then(|r| {
        let has = r.cmdline.iter().any(|a| a == "--mmproj");
        has.then(|| r.cmdline.iter().any(|a| a == "--no-mmproj-offload"))
    });
    let projector_bytes = show.and_then(projector_bytes);
    // /api/tags counts every layer of the manifest, the projector blob included.
    let weights = match (weights, projector_bytes) {
        (Some((w, "/api/tags size")), Some(p)) if w > p => {
            Some((w - p, "/api/tags size minus projector"))
        }
        (w, _) => w,
    };

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
        runner_ngl,
        projector,
        projector_bytes,
        request_options,
        tier_default,
    }
}

/// Ollama's default context for `total_vram` bytes of GPU memory (`routes.go` `Serve`, logged
/// as `vram-based default context`): ≥ 47 GiB → 262144, ≥ 23 GiB → 32768, else 4096.
pub(crate) fn vram_tier_default(total_vram: u64) -> u64 {
    if total_vram >= 47 * GIB {
        262_144
    } else if total_vram >= 23 * GIB {
        32_768
    } else {
        4_096
    }
}

/// Free memory of `g` for a newcomer: total − used, where other runners' memory counts as
/// free when predicting a load (Ollama evicts idle models to make room).
fn free_for(obs: &Observation<'_>, g: &GpuInfo, own: Option<&Runner>, predicting: bool) -> u64 {
    let mut used = g.memory_used;
    if let Some(r) = own {
        used = used.saturating_sub(g.used_by(r.pid).unwrap_or(0));
    }
    if predicting {
        let runners: u64 = obs
            .runners
            .iter()
            .filter(|r| own.is_none_or(|o| o.pid != r.pid))
            .filter_map(|r| g.used_by(r.pid))
            .sum();
        used = used.saturating_sub(runners);
    }
    g.memory_total.saturating_sub(used)
}

fn budget(
    obs: &Observation<'_>,
    runner: Option<&Runner>,
    ps: Option<&PsModel>,
    era: Era,
    vis: Visibility,
    estimate: Option<u64>,
) -> Option<Budget> {
    if !obs.gpu.is_ok() || obs.gpu.gpus.is_empty() {
        return None;
    }
    let margin_one = match era {
        Era::Head => {
            env_u64(&obs.env.llama_arg_fit_target).unwrap_or(memory::DEFAULT_FIT_MARGIN_MIB) * MIB
        }
        Era::Mid | Era::Old => OLLAMA_MIN_MEMORY,
    };
    let mut b = Budget {
        total: 0,
        others: 0,
        margin: 0,
        gpus: [None; 8],
        n: 0,
    };
    let mut n = 0usize;
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
        // Not on any GPU: Ollama pins a model whose estimate is ≤ 80 % of one GPU's free
        // memory to that GPU, else spreads it over every visible GPU. If the model is loaded
        // but its runner's memory is unknown, count its size_vram as its own.
        let predicting = ps.is_none();
        let own = ps.map_or(0, |p| p.size_vram);
        let runner_known = |g: &GpuInfo| runner.is_some_and(|r| g.lists(r.pid));
        let free = |g: &GpuInfo| {
            let f = free_for(obs, g, runner, predicting);
            if runner_known(g) {
                f
            } else {
                f + own.min(g.memory_used)
            }
        };
        let best = obs
            .gpu
            .gpus
            .iter()
            .filter(|g| vis.shows(g))
            .max_by_key(|g| free(g))?;
        let single = estimate.is_none_or(|e| e as f64 <= 0.8 * free(best) as f64);
        for g in obs.gpu.gpus.iter().filter(|g| vis.shows(g)) {
            if (single && g.index != best.index) || n >= b.gpus.len() {
                continue;
            }
            b.total += g.memory_total;
            b.others += g.memory_total.saturating_sub(free(g));
            b.gpus[n] = Some(g.index);
            n += 1;
        }
    }
    b.n = n as u64;
    b.margin = margin_one * n as u64;
    Some(b)
}

impl<'a> Ctx<'a> {
    /// Works out everything about `name` (listed in `/api/ps` as `ps`, or requested).
    pub fn build(
        obs: &'a Observation<'a>,
        name: &'a str,
        ps: Option<&'a PsModel>,
        key: &mut String,
    ) -> Ctx<'a> {
        let show = show_for(obs, name).or_else(|| ps.and_then(|p| show_for(obs, &p.model)));
        let blob = show.and_then(|s| blob_path_from_modelfile(&s.modelfile));
        let runner = blob.and_then(|b| placement::model_runner(obs.gpu, obs.runners, b));
        let expired = match (ps.and_then(|p| p.expires_at), obs.captured_at) {
            (Some(exp), Some(now)) => exp <= now,
            _ => false,
        };
        let report = match ps {
            Some(p) => placement::assess(&placement::PlacementInput {
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
        let version = obs.server_version.and_then(Version::parse);
        let era = Era::detect(version, runner);
        let loaded = ps.is_some() && !expired;
        let sub = Subject {
            name,
            ps,
            show,
            runner,
            era,
            version,
            suspicious: report.suspicious_no_buffer_fallback,
        };
        let f = facts(obs, &sub, key);
        let visibility = Visibility::parse(obs.env.cuda_visible_devices.as_deref(), &obs.gpu.gpus);

        // The projector stays on the GPU unless the runner says otherwise; a 1 GiB graph for it
        // is reserved by the old estimator (logged as projector.graph).
        let projector_gpu = match (f.projector, f.projector_bytes) {
            (Some(true), _) => 0,
            (_, Some(b)) => b + if era == Era::Old { GIB } else { 0 },
            _ => 0,
        };
        let shape_fit = |b: &Budget, s: ModelShape, w: u64| FitModel {
            weights: w,
            kv_per_token: s.kv_elements_per_token as f64 * f.kv_bpe,
            swa_kv_per_token: s.swa_kv_elements_per_token as f64 * f.kv_bpe,
            swa_window: s.sliding_window,
            parallel: f.parallel,
            no_fa_per_token: if f.flash_off {
                memory::no_fa_per_token(s.head_count_max)
            } else {
                0.0
            },
            graph_copies: if era == Era::Old { b.n.max(1) } else { 1 },
            fixed: memory::RESERVE
                + memory::PER_GPU_OVERHEAD * b.n.saturating_sub(1)
                + projector_gpu,
            available: b.available(),
        };
        // First pass on one GPU gives the estimate that decides Ollama's single-GPU pinning.
        let estimate = match (f.shape, f.weights) {
            (Some(s), Some((w, _))) => {
                let one = Budget {
                    total: 0,
                    others: 0,
                    margin: 0,
                    gpus: [None; 8],
                    n: 1,
                };
                Some(shape_fit(&one, s, w).need(f.ctx))
            }
            _ => None,
        };
        let budget = budget(obs, runner, ps, era, visibility, estimate);
        let fit = match (&budget, f.shape, f.weights) {
            (Some(b), Some(s), Some((w, _))) => Some(shape_fit(b, s, w)),
            _ => None,
        };
        let deficit = fit.map(|m| m.deficit(f.ctx));
        let kv_now = fit.map(|m| m.kv_bytes(f.ctx)).or_else(|| {
            f.shape.map(|s| {
                let m = FitModel {
                    weights: 0,
                    kv_per_token: s.kv_elements_per_token as f64 * f.kv_bpe,
                    swa_kv_per_token: s.swa_kv_elements_per_token as f64 * f.kv_bpe,
                    swa_window: s.sliding_window,
                    parallel: f.parallel,
                    no_fa_per_token: 0.0,
                    graph_copies: 1,
                    fixed: 0,
                    available: 0,
                };
                m.kv_bytes(f.ctx)
            })
        });

        let full_gpu = loaded && report.placement.is_full_gpu() && !report.contradiction;
        let predict_miss = ps.is_none() && fit.is_some_and(|m| !m.fits(f.ctx));
        // An unverified GPU claim (remote server, or no runner to check) is not evidence of the
        // CPU: the causes of CPU placement have nothing to explain there.
        let unverified = matches!(report.placement, Placement::Unverified { .. });
        let not_on_gpu = (loaded && !full_gpu && !unverified) || predict_miss;
        let nvml_failure = match &obs.gpu.nvml {
            NvmlStatus::Unavailable { reason } => Some(NvmlFailure::from_reason(reason)),
            NvmlStatus::Ok => None,
        };
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
        let ps_cpu_only = ps.is_some_and(|p| p.size_vram == 0);
        let sibling_on_gpu = obs
            .runners
            .iter()
            .filter(|r| runner.is_none_or(|o| o.pid != r.pid))
            .find_map(|r| {
                let b: u64 = obs.gpu.gpus.iter().filter_map(|g| g.used_by(r.pid)).sum();
                (b >= 512 * MIB).then_some((r.pid, b))
            });
        let runner_off_gpu = report.runner_gpu_bytes == Some(0) || near_zero || ps_cpu_only;
        let arch_issue = if obs.gpu.is_ok() && loaded && !full_gpu && runner_off_gpu {
            obs.gpu
                .gpus
                .iter()
                .filter(|g| visibility.shows(g))
                .find_map(|g| {
                    let cc = compute_capability(&g.name)?;
                    let why = arch_unsupported(cc, version)?;
                    Some(ArchIssue {
                        gpu: g.name.clone(),
                        index: g.index,
                        cc,
                        why,
                    })
                })
        } else {
            None
        };
        let driver_issue = if obs.gpu.is_ok() && loaded && !full_gpu && runner_off_gpu {
            obs.gpu
                .driver_version
                .as_deref()
                .and_then(|d| driver_too_old(d, version))
        } else {
            None
        };
        let history = obs
            .history
            .and_then(|h| h.get(blob.unwrap_or(name)).or_else(|| h.get(name)));
        Ctx {
            obs,
            name,
            ps,
            show,
            blob,
            runner,
            report,
            era,
            loaded,
            expired,
            full_gpu,
            not_on_gpu,
            f,
            budget,
            fit,
            deficit,
            kv_now,
            visibility,
            nvml_failure,
            gpu_util: obs.gpu.gpus.iter().filter_map(|g| g.utilization_gpu).max(),
            backend_lost_ps_gpu,
            ps_cpu_only,
            sibling_on_gpu,
            arch_issue,
            driver_issue,
            history,
        }
    }
}
