//! Is `/api/ps` telling the truth, and can the GPU be used at all: NVML failures, a lost GPU
//! backend, contradictions, the no-buffer fallback.

use super::super::ctx::Ctx;
use super::super::finding::{Code, Evidence, Finding, Severity};
use crate::gpu::{NvmlFailure, NvmlStatus};
use crate::placement::Placement;

/// `PLACEMENT_UNVERIFIED`: `/api/ps` claims GPU memory that nothing here can check (a remote
/// server, or no runner process found while the GPUs could hold the claim).
pub(crate) fn placement_unverified(cx: &Ctx<'_>) -> Option<Finding> {
    let Placement::Unverified { reason } = cx.report.placement else {
        return None;
    };
    if !cx.loaded {
        return None;
    }
    let mut x = Finding::new(
        Code::PlacementUnverified,
        Severity::Warning,
        95,
        format!(
            "ollama ps says {}, but it cannot be checked: {}",
            cx.report.ps_processor,
            reason.text()
        ),
        reason.hint().into(),
    );
    x.evidence.push(Evidence::t("scope", cx.obs.scope.label()));
    if let Some(p) = cx.ps {
        x.evidence
            .push(Evidence::u("ps_size_vram_bytes", p.size_vram));
    }
    Some(x)
}

fn nvml_reason<'a>(cx: &Ctx<'a>) -> &'a str {
    match &cx.obs.gpu.nvml {
        NvmlStatus::Unavailable { reason } => reason,
        NvmlStatus::Ok => "",
    }
}

/// `NVML_UNAVAILABLE`: NVML failed for a reason with no specific fix.
pub(crate) fn nvml_unavailable(cx: &Ctx<'_>) -> Option<Finding> {
    // A missing driver on a model that runs on the GPU anyway (another vendor, a container)
    // only means the cross-check is missing.
    let plain = match cx.nvml_failure? {
        NvmlFailure::Other => true,
        NvmlFailure::LibraryMissing | NvmlFailure::DriverNotLoaded => !driver_matters(cx),
        NvmlFailure::VersionMismatch => false,
    };
    if !plain {
        return None;
    }
    let mut x = Finding::new(
        Code::NvmlUnavailable,
        Severity::Info,
        5,
        "NVML is unavailable, so this verdict rests on Ollama's /api/ps alone.".into(),
        "Install or repair the NVIDIA driver (nvidia-smi must work) to get cross-checked verdicts."
            .into(),
    );
    x.evidence.push(Evidence::t("reason", nvml_reason(cx)));
    Some(x)
}

/// `DRIVER_LIBRARY_MISMATCH`: NVML init fails with "Driver/library version mismatch" — the
/// driver was updated without a reboot. CUDA fails the same way, so Ollama runs on the CPU
/// (ollama/ollama#15918).
pub(crate) fn driver_library_mismatch(cx: &Ctx<'_>) -> Option<Finding> {
    if cx.nvml_failure != Some(NvmlFailure::VersionMismatch) {
        return None;
    }
    let on_gpu_still = cx.full_gpu;
    let mut x = Finding::new(
        Code::DriverLibraryMismatch,
        if on_gpu_still { Severity::Warning } else { Severity::Cause },
        if on_gpu_still { 70 } else { 97 },
        if on_gpu_still {
            "The NVIDIA driver was updated but the old kernel module is still loaded (Driver/library version mismatch): the model loaded before still runs on the GPU, the next load will fall back to the CPU.".into()
        } else {
            "The NVIDIA driver was updated but the old kernel module is still loaded (Driver/library version mismatch), so CUDA cannot start and Ollama runs on the CPU.".into()
        },
        "Reboot. Without a reboot: stop Ollama and everything using the GPU, reload the NVIDIA modules, start Ollama.".into(),
    );
    x.commands = vec![
        "sudo systemctl stop ollama".to_owned(),
        "sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia".to_owned(),
        "sudo modprobe nvidia && sudo modprobe nvidia_uvm".to_owned(),
        "nvidia-smi && sudo systemctl start ollama".to_owned(),
    ];
    x.evidence.push(Evidence::t("reason", nvml_reason(cx)));
    Some(x)
}

/// Whether a missing driver can explain anything: the model is off the GPU or not loaded.
fn driver_matters(cx: &Ctx<'_>) -> bool {
    cx.offloaded() || cx.ps_cpu_only || !cx.loaded
}

/// `NVIDIA_DRIVER_MISSING`: no NVML library, or its kernel module is not loaded. If the
/// machine has an NVIDIA GPU, Ollama cannot use it either; reloading nvidia_uvm will not help.
pub(crate) fn nvidia_driver_missing(cx: &Ctx<'_>) -> Option<Finding> {
    let kind = cx.nvml_failure?;
    if !matches!(
        kind,
        NvmlFailure::LibraryMissing | NvmlFailure::DriverNotLoaded
    ) {
        return None;
    }
    if !driver_matters(cx) {
        return None;
    }
    let mut x = Finding::new(
        Code::NvidiaDriverMissing,
        Severity::Cause,
        60,
        match kind {
            NvmlFailure::DriverNotLoaded => "The NVIDIA kernel driver is not loaded, so no program can use an NVIDIA GPU.".into(),
            _ => "No NVIDIA driver library was found (libnvidia-ml cannot be loaded), so no program can use an NVIDIA GPU here.".into(),
        },
        match kind {
            NvmlFailure::DriverNotLoaded => "Load the driver (sudo modprobe nvidia, or reboot after installing it); nvidia-smi must work before Ollama can use the GPU.".into(),
            _ => "If this machine has an NVIDIA GPU, install its driver (nvidia-smi must work), then restart Ollama; without one, running on the CPU is expected.".into(),
        },
    );
    x.evidence.push(Evidence::t("reason", nvml_reason(cx)));
    Some(x)
}

fn push_ps_vs_runner(x: &mut Finding, cx: &Ctx<'_>) {
    if let Some(p) = cx.ps {
        x.evidence
            .push(Evidence::t("ps_processor", cx.report.ps_processor.clone()));
        x.evidence
            .push(Evidence::u("ps_size_vram_bytes", p.size_vram));
    }
    if let Some(b) = cx.report.runner_gpu_bytes {
        x.evidence.push(Evidence::u("runner_gpu_bytes", b));
    }
    if let Some(r) = cx.runner {
        x.evidence.push(Evidence::u("runner_pid", u64::from(r.pid)));
        x.evidence
            .push(Evidence::f("runner_cpu_percent", f64::from(r.cpu_percent)));
    }
    if let Some(u) = cx.gpu_util {
        x.evidence
            .push(Evidence::u("gpu_utilization_pct", u64::from(u)));
    }
}

/// `GPU_BACKEND_LOST`: the runner has no GPU context although the GPU works and the model
/// would fit — typical after suspend/resume. Not when something else explains it: a client's
/// num_gpu 0 (a sibling runner on the GPU proves the backend works), an unsupported GPU.
pub(crate) fn gpu_backend_lost(cx: &Ctx<'_>) -> Option<Finding> {
    if !cx.loaded
        || cx.num_gpu_zero_explains()
        || cx.build_skips_gpu()
        || cx.sibling_on_gpu.is_some()
    {
        return None;
    }
    let (score, title) = if cx.backend_lost_ps_gpu {
        (
            100,
            "Ollama says the model is on the GPU, but its runner holds no GPU memory: the GPU backend failed to load and it runs on the CPU.",
        )
    } else if cx.ps_cpu_only
        && cx.report.runner_gpu_bytes == Some(0)
        && cx.fit.is_some_and(|m| m.fits(cx.f.ctx))
    {
        (
            72,
            "The model fits in free VRAM but runs 100% on the CPU and its runner has no GPU context: the GPU backend did not load.",
        )
    } else {
        return None;
    };
    let container = cx.runner.and_then(|r| r.container.as_deref());
    let (remedy, commands) = match container {
        // ollama/ollama#4604, #8962, #12323 (fix documented by PR #7519): under systemd's cgroup
        // driver a container loses its GPU devices when systemd re-applies cgroups, hours or
        // days after it started; the host's driver is fine.
        Some("docker") => (
            "Ollama runs in a docker container, which loses its GPU devices when systemd re-applies cgroups (the host's driver is fine, so reloading modules there will not help). Restart the container now; to stop it recurring, set Docker's cgroup driver to cgroupfs (\"exec-opts\": [\"native.cgroupdriver=cgroupfs\"] in /etc/docker/daemon.json) and restart Docker.".to_owned(),
            vec![
                "docker ps --filter ancestor=ollama/ollama --format '{{.Names}}'".to_owned(),
                "docker restart <container>".to_owned(),
                "sudo nano /etc/docker/daemon.json   # add \"exec-opts\": [\"native.cgroupdriver=cgroupfs\"]".to_owned(),
                "sudo systemctl restart docker".to_owned(),
            ],
        ),
        Some(rt) => (
            format!(
                "Ollama runs in a {rt} container that no longer reaches the GPU; the host's driver is fine, so reloading modules there will not help. Restart the container; if it recurs after hours of running, the runtime's systemd cgroup driver is the likely cause, as it is for docker."
            ),
            Vec::new(),
        ),
        None => (
            "Reload the NVIDIA UVM module, which suspend/resume often breaks, then restart Ollama."
                .to_owned(),
            vec![
                "sudo systemctl stop ollama".to_owned(),
                "sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm".to_owned(),
                "sudo systemctl start ollama".to_owned(),
            ],
        ),
    };
    let mut x = Finding::new(
        Code::GpuBackendLost,
        Severity::Cause,
        score,
        title.into(),
        remedy,
    );
    x.commands = commands;
    if let Some(rt) = container {
        x.evidence.push(Evidence::t("container", rt));
    }
    push_ps_vs_runner(&mut x, cx);
    if let (Some(m), Some(b)) = (cx.fit, cx.budget) {
        x.evidence
            .push(Evidence::u("needed_bytes", m.need(cx.f.ctx)));
        x.evidence
            .push(Evidence::u("available_bytes", b.available()));
    }
    Some(x)
}

/// `PS_CONTRADICTS_NVML`: NVML (or the runner's activity) contradicts `/api/ps`.
pub(crate) fn ps_contradicts_nvml(cx: &Ctx<'_>) -> Option<Finding> {
    if !cx.loaded || !cx.report.contradiction {
        return None;
    }
    // A client's `-ngl N` in the runner's argv (servers ≥ 0.30 pass it only when asked) is the
    // cause; the contradiction is its symptom and must not outrank it (CLIENT_NUM_GPU_ZERO,
    // NUM_GPU_SET), or the alert offers a reload that cannot help.
    let client_layers = cx
        .report
        .runner_gpu_layers
        .is_some_and(|n| n >= 0 && cx.report.block_count.map_or(n == 0, |b| (n as u64) < b));
    let explained = cx.backend_lost_ps_gpu || cx.build_skips_gpu() || client_layers;
    let mut x = Finding::new(
        Code::PsContradictsNvml,
        Severity::Warning,
        if explained { 60 } else { 90 },
        format!(
            "ollama ps says {}, but NVML and the runner's activity say otherwise.",
            cx.report.ps_processor
        ),
        "Trust the NVML figures: restart the model (ollama stop, then load it again) and check the Ollama server log for GPU errors.".into(),
    );
    push_ps_vs_runner(&mut x, cx);
    if cx.report.cpu_busy_gpu_idle {
        x.evidence.push(Evidence::t(
            "cpu_busy_gpu_idle",
            "runner uses several cores while the GPU is idle",
        ));
    }
    Some(x)
}

/// `NO_BUFFER_FALLBACK`: `size == size_vram == file size`, Ollama parsed no buffer lines.
pub(crate) fn no_buffer_fallback(cx: &Ctx<'_>) -> Option<Finding> {
    if !cx.loaded || !cx.report.suspicious_no_buffer_fallback {
        return None;
    }
    let mut x = Finding::new(
        Code::NoBufferFallback,
        Severity::Warning,
        65,
        "Ollama's size equals the model file size: it parsed no GPU buffer lines and its \"100% GPU\" is a fallback, not a measurement.".into(),
        "Check the real placement with NVML (nvidia-smi); the server log says \"llama-server VRAM tracking: no per-device buffer sizes were parsed\".".into(),
    );
    if let Some(p) = cx.ps {
        x.evidence.push(Evidence::u("ps_size_bytes", p.size));
        x.evidence
            .push(Evidence::u("ps_size_vram_bytes", p.size_vram));
    }
    if let Some(s) = super::super::ctx::tag_size(cx.obs, cx.name) {
        x.evidence.push(Evidence::u("model_file_bytes", s));
    }
    Some(x)
}
