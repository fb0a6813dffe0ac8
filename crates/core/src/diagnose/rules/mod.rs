//! One rule per [`Code`]: a small function of a [`Ctx`] that returns its finding or nothing.
//! Each rule decides on its own whether it applies; facts shared by several rules (is the
//! runner off the GPU, did a client ask for num_gpu 0, is the GPU unsupported) are worked out
//! once in [`Ctx::build`], so a rule never depends on another rule's output. The only
//! exceptions are explicit post-passes in [`super::diagnose_model`]: `UNEXPLAINED_OFFLOAD`
//! (no cause found) and the ranking.
//!
//! Ranking is by `score` (0–100), highest first, ties broken by the order of [`RULES`]; the
//! scores per code and case are tabled in `docs/diagnosis.md`.

mod fit;
mod gpu;
mod reload;
mod truth;

use super::ctx::Ctx;
use super::finding::{Code, Evidence, Finding, Severity};
use super::memory::{GIB, MIB};

/// A rule: at most one finding about the model in `Ctx`.
pub(crate) type Rule = fn(&Ctx<'_>) -> Option<Finding>;

/// Every rule, in tie-break order. Truth checks first (what is really on the GPU), then
/// switches that force the CPU, then memory, then reloads.
pub(crate) const RULES: &[(Code, Rule)] = &[
    (Code::PlacementUnverified, truth::placement_unverified),
    (Code::DriverLibraryMismatch, truth::driver_library_mismatch),
    (Code::NvidiaDriverMissing, truth::nvidia_driver_missing),
    (Code::NvmlUnavailable, truth::nvml_unavailable),
    (Code::GpuArchUnsupported, gpu::gpu_arch_unsupported),
    (Code::DriverTooOld, gpu::driver_too_old),
    (Code::GpusHidden, gpu::gpus_hidden),
    (Code::GpuBackendLost, truth::gpu_backend_lost),
    (Code::PsContradictsNvml, truth::ps_contradicts_nvml),
    (Code::NoBufferFallback, truth::no_buffer_fallback),
    (Code::NumGpuZero, gpu::num_gpu_zero),
    (Code::ClientNumGpuZero, gpu::client_num_gpu_zero),
    (Code::NumGpuSet, gpu::num_gpu_set),
    (Code::F16WeightsOnCpu, fit::f16_weights_on_cpu),
    (Code::ModelTooLarge, fit::model_too_large),
    (Code::MinVramRule, fit::min_vram_rule),
    (Code::CtxTooLarge, fit::ctx_too_large),
    (
        Code::VramHeldByOtherProcess,
        fit::vram_held_by_other_process,
    ),
    (Code::SecondModelLoaded, fit::second_model_loaded),
    (Code::ParallelMultipliesKv, fit::parallel_multiplies_kv),
    (Code::ProjectorOnCpu, fit::projector_on_cpu),
    (Code::DerivedParamsDiffer, reload::derived_params_differ),
    (Code::ClientsOptionsDiffer, reload::clients_options_differ),
    (Code::KeepAliveShort, reload::keep_alive_short),
];

/// The rule for `code`, for tests and tools that want one rule alone.
pub(crate) fn rule(code: Code) -> Option<Rule> {
    RULES.iter().find(|(c, _)| *c == code).map(|(_, r)| *r)
}

/// Position of `code` in [`RULES`] (the tie-break), `usize::MAX` for post-pass codes.
pub(crate) fn order(code: Code) -> usize {
    RULES
        .iter()
        .position(|(c, _)| *c == code)
        .unwrap_or(usize::MAX)
}

pub(crate) fn gib(b: u64) -> f64 {
    b as f64 / GIB as f64
}

pub(crate) fn mib(b: u64) -> u64 {
    b / MIB
}

/// Likelihood that freeing `bytes` explains a `deficit`: certain if it covers it, else
/// proportional.
pub(crate) fn share_score(bytes: u64, deficit: u64, full: u8) -> u8 {
    if deficit == 0 || bytes >= deficit {
        full
    } else {
        30 + (40.0 * bytes as f64 / deficit as f64) as u8
    }
}

/// Commands that set a server-side default context (`OLLAMA_CONTEXT_LENGTH` in a systemd
/// drop-in) or bake it into a derived model, for clients that cannot send `num_ctx`.
pub(crate) fn server_ctx_commands(model: &str, ctx: u64) -> Vec<String> {
    let base = model.strip_suffix(":latest").unwrap_or(model);
    let derived = format!("{}-{}k", base.replace([':', '/'], "-"), ctx / 1024);
    vec![
        "sudo mkdir -p /etc/systemd/system/ollama.service.d".to_owned(),
        format!(
            "printf '[Service]\\nEnvironment=\"OLLAMA_CONTEXT_LENGTH={ctx}\"\\n' | sudo tee /etc/systemd/system/ollama.service.d/context.conf"
        ),
        "sudo systemctl daemon-reload && sudo systemctl restart ollama".to_owned(),
        format!(
            "printf 'FROM {model}\\nPARAMETER num_ctx {ctx}\\n' > Modelfile.ctx && ollama create {derived} -f Modelfile.ctx"
        ),
    ]
}

/// `UNEXPLAINED_OFFLOAD`: a partial or CPU placement with no cause found. Never silence: the
/// numbers we have and what to capture for a bug report.
pub(crate) fn unexplained_offload(cx: &Ctx<'_>, findings: &[Finding]) -> Option<Finding> {
    if !cx.offloaded() || findings.iter().any(|f| f.severity == Severity::Cause) {
        return None;
    }
    let mut gpus = String::new();
    for g in &cx.obs.gpu.gpus {
        if !gpus.is_empty() {
            gpus.push_str("; ");
        }
        gpus.push_str(&format!(
            "GPU{} {}: {} MiB total, {} MiB free{}",
            g.index,
            g.name,
            mib(g.memory_total),
            mib(g.memory_free),
            if cx.visibility.shows(g) {
                ""
            } else {
                " (hidden)"
            }
        ));
    }
    let title = match cx.fit {
        Some(m) => format!(
            "{} is {} although by our estimate it needs {:.1} GiB and {:.1} GiB is free for it: no known cause fits.",
            cx.name,
            cx.report.placement.ps_label(),
            gib(m.need(cx.f.ctx)),
            gib(m.available)
        ),
        None => format!(
            "{} is {} and no known cause fits the data we have.",
            cx.name,
            cx.report.placement.ps_label()
        ),
    };
    let mut x = Finding::new(
        Code::UnexplainedOffload,
        Severity::Cause,
        50,
        title,
        "Please report it: attach the capture bundle and the Ollama server log of the load (the lines with \"offloaded\", \"buffer size\", \"inference compute\" and \"fit\").".into(),
    );
    x.commands = vec![
        "yollayah doctor --capture yollayah-capture.json".to_owned(),
        "journalctl -u ollama --since \"15 min ago\" --no-pager | grep -Ei 'offloaded|buffer size|inference compute|fit|cuda' > ollama-load.log".to_owned(),
    ];
    x.evidence
        .push(Evidence::t("ps_processor", cx.report.ps_processor.clone()));
    if let Some(p) = cx.ps {
        x.evidence.push(Evidence::u("ps_size_bytes", p.size));
        x.evidence
            .push(Evidence::u("ps_size_vram_bytes", p.size_vram));
    }
    if let Some(m) = cx.fit {
        x.evidence
            .push(Evidence::u("needed_bytes", m.need(cx.f.ctx)));
        x.evidence.push(Evidence::u("available_bytes", m.available));
    }
    x.evidence.push(Evidence::u("num_ctx", cx.f.ctx));
    if !gpus.is_empty() {
        x.evidence.push(Evidence::t("gpus", gpus));
    }
    if let Some(v) = cx.obs.server_version {
        x.evidence.push(Evidence::t("ollama_version", v));
    }
    Some(x)
}
