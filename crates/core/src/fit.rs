//! Fit prediction: before a model is loaded, where will it land on this machine at a given
//! `num_ctx`? The sums are the diagnosis engine's memory model (`diagnose::memory`, documented
//! in `docs/diagnosis.md`); this module only chooses the budget and words the answer.
//!
//! * **Fits on the GPU** when weights + reserve + KV fit the free VRAM of the emptiest GPU minus
//!   llama.cpp's fit margin.
//! * **Needs another model unloaded** when it does not fit now but would with the loaded
//!   models' VRAM (from `/api/ps` `size_vram`) given back. Ollama's pre-flight evicts them
//!   itself when another model is loaded and the estimate exceeds 80 % of free VRAM (fact
//!   sheet §5), so this is what will happen unless the user picks differently.
//! * **Spills** otherwise: the share of the model's memory that will not fit, and the largest
//!   context that would fit on its own.
//!
//! After a load, [`check`] compares the prediction with the placement `/api/ps` reports; a
//! disagreement is a [`FitMismatch`] to record (the model of memory is a guess, see
//! `docs/diagnosis.md`).

use serde::Serialize;

use crate::diagnose::memory::{self, FitModel};
use crate::diagnose::server::refuses_driver;
use crate::diagnose::{Code, Evidence, Finding, Severity};
use crate::gpu::{GpuSnapshot, NvmlStatus};
use crate::ollama::types::{PsModel, ShowResponse};
use crate::placement::Placement;

/// Server settings that change the sums (`OLLAMA_NUM_PARALLEL`, `OLLAMA_KV_CACHE_TYPE`, flash
/// attention, `LLAMA_ARG_FIT_TARGET`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitSettings {
    pub parallel: u64,
    /// `""` = f16.
    pub kv_cache_type: String,
    pub flash_attention: bool,
    pub fit_margin_mib: u64,
    /// `/api/version`, when known: some versions refuse old drivers outright.
    pub server_version: Option<String>,
}

impl Default for FitSettings {
    fn default() -> Self {
        FitSettings {
            parallel: 1,
            kv_cache_type: String::new(),
            flash_attention: true,
            fit_margin_mib: memory::DEFAULT_FIT_MARGIN_MIB,
            server_version: None,
        }
    }
}

/// Where a model is predicted to land.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FitPrediction {
    /// Entirely on the GPU.
    FitsGpu,
    /// It fits only once these loaded models are unloaded (Ollama evicts them at load).
    NeedsUnload { unload: Vec<String> },
    /// About `cpu_pct` % of it will sit in system RAM (after unloading `unload`, which Ollama
    /// does first); `largest_ctx` is the largest `num_ctx` that would fit entirely, if any.
    Spills {
        cpu_pct: u8,
        largest_ctx: Option<u64>,
        unload: Vec<String>,
    },
    /// Already loaded: this is where it is.
    Loaded { placement: Placement },
    /// No prediction (no GPU seen, no shape in `model_info`); `reason` says why.
    Unknown { reason: String },
}

/// A prediction with the numbers behind it and a sentence for the picker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFit {
    pub model: String,
    /// The context the prediction is for (after capping to the training context).
    pub num_ctx: u64,
    pub prediction: FitPrediction,
    /// Bytes the model needs on the GPU at `num_ctx`; 0 when unknown.
    pub need_bytes: u64,
    /// VRAM it may use now (free minus margin); 0 when unknown.
    pub available_bytes: u64,
    /// "fits on the GPU", "≈ 30 % on the CPU: largest context that fits is 12288", …
    pub summary: String,
}

/// Predicts where `model` lands at `num_ctx`. `weights_bytes` is its file size (`/api/tags`
/// `size`); `loaded` is `/api/ps`.
pub fn predict(
    model: &str,
    show: &ShowResponse,
    weights_bytes: u64,
    num_ctx: u64,
    gpu: &GpuSnapshot,
    loaded: &[PsModel],
    settings: &FitSettings,
) -> ModelFit {
    let unknown = |num_ctx: u64, reason: &str| ModelFit {
        model: model.to_owned(),
        num_ctx,
        prediction: FitPrediction::Unknown {
            reason: reason.to_owned(),
        },
        need_bytes: 0,
        available_bytes: 0,
        summary: format!("no prediction: {reason}"),
    };
    if let Some(p) = loaded.iter().find(|p| p.name == model || p.model == model) {
        let placement = Placement::from_ps(p.size, p.size_vram);
        let ctx = p.context_length.unwrap_or(num_ctx);
        return ModelFit {
            model: model.to_owned(),
            num_ctx: ctx,
            summary: match placement {
                Placement::Gpu => "loaded, on the GPU".to_owned(),
                other => format!("loaded: {}", other.ps_label()),
            },
            prediction: FitPrediction::Loaded { placement },
            need_bytes: p.size,
            available_bytes: 0,
        };
    }
    let Some(shape) = memory::model_shape(&show.model_info, &mut String::new()) else {
        return unknown(num_ctx, "the model's shape is not in /api/show model_info");
    };
    let ctx = if shape.train_ctx > 0 {
        num_ctx.min(shape.train_ctx)
    } else {
        num_ctx
    };
    if let NvmlStatus::Unavailable { reason } = &gpu.nvml {
        // The snapshot says why: NVML's own error, or a server on another machine.
        return unknown(ctx, &format!("no GPU information: {reason}"));
    }
    // Whatever memory is free: a server that refuses this driver uses no GPU (DRIVER_TOO_OLD).
    let driver = gpu.driver_version.as_deref().unwrap_or_default();
    if let Some(required) = refuses_driver(
        settings.server_version.as_deref(),
        gpu.driver_version.as_deref(),
    ) {
        return ModelFit {
            model: model.to_owned(),
            num_ctx: ctx,
            prediction: FitPrediction::Spills {
                cpu_pct: 100,
                largest_ctx: None,
                unload: Vec::new(),
            },
            need_bytes: 0,
            available_bytes: 0,
            summary: format!(
                "runs on the CPU: NVIDIA driver {driver} is older than this Ollama accepts ({required} or newer)"
            ),
        };
    }
    // The GPU Ollama would pick for a single-GPU load: the one with the most free memory.
    let Some(card) = gpu.gpus.iter().max_by_key(|g| g.memory_free) else {
        return unknown(ctx, "no GPU found");
    };
    let Some(per_el) = memory::kv_bytes_per_element(&settings.kv_cache_type) else {
        return unknown(ctx, "unknown OLLAMA_KV_CACHE_TYPE");
    };
    let margin = settings.fit_margin_mib * memory::MIB;
    let held: u64 = loaded.iter().map(|p| p.size_vram).sum();
    let free_now = card.memory_free;
    let free_unloaded = free_now.saturating_add(held).min(card.memory_total);
    let fit = |free: u64| FitModel {
        weights: weights_bytes,
        kv_per_token: shape.kv_elements_per_token as f64 * per_el,
        swa_kv_per_token: shape.swa_kv_elements_per_token as f64 * per_el,
        swa_window: shape.sliding_window,
        parallel: settings.parallel.max(1),
        graph_copies: 1,
        fixed: memory::RESERVE,
        no_fa_per_token: if settings.flash_attention {
            0.0
        } else {
            memory::no_fa_per_token(shape.head_count_max)
        },
        available: free.saturating_sub(margin),
    };
    let now = fit(free_now);
    let need = now.need(ctx);
    let names: Vec<String> = loaded.iter().map(|p| p.name.clone()).collect();
    let (prediction, summary) = if now.fits(ctx) {
        (FitPrediction::FitsGpu, "fits on the GPU".to_owned())
    } else if !loaded.is_empty() && fit(free_unloaded).fits(ctx) {
        let summary = format!(
            "needs another model unloaded ({}); Ollama unloads it when this one loads",
            names.join(", ")
        );
        (FitPrediction::NeedsUnload { unload: names }, summary)
    } else {
        let best = fit(free_unloaded);
        let on_gpu = best.available.saturating_sub(memory::RESERVE);
        let cpu = 100.0 * need.saturating_sub(memory::RESERVE).saturating_sub(on_gpu) as f64
            / need.saturating_sub(memory::RESERVE).max(1) as f64;
        let cpu_pct = (cpu.round() as u8).clamp(1, 100);
        let largest_ctx = best.largest_fit(shape.train_ctx);
        let mut summary = if cpu_pct >= 100 {
            "runs on the CPU: it does not fit in GPU memory".to_owned()
        } else {
            format!("≈ {cpu_pct} % on the CPU")
        };
        match largest_ctx {
            Some(c) => summary.push_str(&format!(": largest context that fits is {c}")),
            None => summary.push_str(": no context makes it fit"),
        }
        let unload = if loaded.is_empty() { vec![] } else { names };
        if !unload.is_empty() {
            summary.push_str(&format!(" (after unloading {})", unload.join(", ")));
        }
        (
            FitPrediction::Spills {
                cpu_pct,
                largest_ctx,
                unload,
            },
            summary,
        )
    };
    ModelFit {
        model: model.to_owned(),
        num_ctx: ctx,
        prediction,
        need_bytes: need,
        available_bytes: now.available,
        summary,
    }
}

/// A prediction that the load did not bear out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitMismatch {
    pub model: String,
    /// The context the prediction was for.
    pub num_ctx: u64,
    pub predicted: FitPrediction,
    pub actual: Placement,
    /// One sentence for the log and the findings list.
    pub message: String,
}

/// The `FIT_MISPREDICTED` finding for `m` (info: the model runs where it runs; what was wrong
/// is our sums, which the user may want to report), ranked `rank`.
pub fn mismatch_finding(m: &FitMismatch, rank: u32) -> Finding {
    let mut f = Finding::new(
        Code::FitMispredicted,
        Severity::Info,
        0,
        m.message.clone(),
        "The picker's memory estimate was off for this model; the placement above is what \
         happened. Please report it with `yollayah doctor --capture`."
            .to_owned(),
    );
    f.rank = rank;
    let predicted = match &m.predicted {
        FitPrediction::FitsGpu => "fits_gpu".to_owned(),
        FitPrediction::NeedsUnload { .. } => "needs_unload".to_owned(),
        FitPrediction::Spills { cpu_pct, .. } => format!("spills_{cpu_pct}_pct"),
        FitPrediction::Loaded { .. } => "loaded".to_owned(),
        FitPrediction::Unknown { .. } => "unknown".to_owned(),
    };
    f.evidence.push(Evidence::t("predicted", predicted));
    f.evidence.push(Evidence::t("actual", m.actual.ps_label()));
    f.evidence.push(Evidence::u("num_ctx", m.num_ctx));
    f
}

/// Points of CPU share a spill prediction may miss by and still count as right.
pub const SPILL_TOLERANCE_PCT: u8 = 20;

/// Compares a prediction made before loading with the placement after it. `None` when they
/// agree (or nothing was predicted).
pub fn check(fit: &ModelFit, ps: &PsModel) -> Option<FitMismatch> {
    let actual = Placement::from_ps(ps.size, ps.size_vram);
    let agrees = match (&fit.prediction, actual) {
        (FitPrediction::Unknown { .. } | FitPrediction::Loaded { .. }, _) => true,
        (_, Placement::Unknown | Placement::Unverified { .. }) => true,
        (FitPrediction::FitsGpu | FitPrediction::NeedsUnload { .. }, p) => p.is_full_gpu(),
        (FitPrediction::Spills { cpu_pct, .. }, Placement::Partial { cpu_pct: got }) => {
            cpu_pct.abs_diff(got) <= SPILL_TOLERANCE_PCT
        }
        (FitPrediction::Spills { cpu_pct, .. }, Placement::Cpu) => {
            *cpu_pct >= 100 - SPILL_TOLERANCE_PCT
        }
        (FitPrediction::Spills { .. }, Placement::Gpu) => false,
    };
    if agrees {
        return None;
    }
    let message = format!(
        "{} was predicted to {} at num_ctx {}, but it loaded as {}",
        fit.model,
        match &fit.prediction {
            FitPrediction::FitsGpu => "fit on the GPU".to_owned(),
            FitPrediction::NeedsUnload { .. } => "fit on the GPU after an unload".to_owned(),
            FitPrediction::Spills { cpu_pct, .. } => format!("spill ≈ {cpu_pct} % to the CPU"),
            _ => "land somewhere".to_owned(),
        },
        fit.num_ctx,
        actual.ps_label()
    );
    tracing::warn!(model = %fit.model, "{message}");
    Some(FitMismatch {
        model: fit.model.clone(),
        num_ctx: fit.num_ctx,
        predicted: fit.prediction.clone(),
        actual,
        message,
    })
}
