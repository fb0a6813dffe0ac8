//! Where a loaded model runs: Ollama's own `ollama ps` rule applied to an `/api/ps` entry,
//! then checked against what NVML says the model's runner process really holds.
//!
//! Pure functions on borrowed data; no I/O, no allocation beyond the report's label.

use serde::{Deserialize, Serialize};

use crate::gpu::{GpuSnapshot, Runner};
use crate::ollama::types::PsModel;

const MIB: u64 = 1 << 20;
/// NVML may report less than `size_vram` by this fraction (or [`BELOW_MIN`]) before we call
/// it a disagreement: allocator rounding and buffers freed after load.
pub const BELOW_FRAC: f64 = 0.15;
/// Absolute floor of the "below" tolerance.
pub const BELOW_MIN: u64 = 256 * MIB;
/// NVML may report MORE than `size_vram` by this much: the CUDA context, cuBLAS workspace and
/// graph buffers are not in llama-server's buffer log lines.
pub const ABOVE_MIN: u64 = 1024 * MIB;
/// A runner holding at most this much (or a quarter of `size_vram`, whichever is smaller) is
/// "holding ~0": no model buffers on the GPU at all.
pub const NEAR_ZERO: u64 = 256 * MIB;
/// A runner that `/api/ps` puts on the CPU may still hold a CUDA context and compute buffers;
/// only more than this contradicts "100% CPU".
pub const CPU_RUNNER_GPU_MAX: u64 = 2048 * MIB;
/// Runner CPU use (percent of one core) that means several threads are computing. A fully
/// offloaded llama-server spins about one core while it waits for the GPU, so one core is
/// not evidence.
pub const BUSY_CPU_PERCENT: f32 = 200.0;
/// GPU utilisation at or below this, with a busy runner, means the GPU is not doing the work.
pub const IDLE_GPU_PERCENT: u32 = 5;
/// How close `size` must be to the model file size to look like the "no buffer lines parsed"
/// fallback (the manifest's other layers add a few KiB to the file size).
pub const FALLBACK_SLACK: u64 = 8 * MIB;

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Placement {
    /// Entirely in GPU memory.
    Gpu,
    /// Split; `cpu_pct` percent of the model's memory is in system RAM.
    Partial { cpu_pct: u8 },
    /// Entirely on the CPU.
    Cpu,
    /// Cannot be told (Ollama itself prints "Unknown").
    Unknown,
}

impl Placement {
    /// Ollama's `ollama ps` PROCESSOR rule on `size`/`size_vram` (fact sheet §5).
    pub fn from_ps(size: u64, size_vram: u64) -> Placement {
        if size_vram == 0 {
            // Checked first, as in Ollama: size 0 and size_vram 0 prints "100% CPU".
            Placement::Cpu
        } else if size_vram == size {
            Placement::Gpu
        } else if size_vram > size || size == 0 {
            Placement::Unknown
        } else {
            let cpu = ((size - size_vram) as f64 / size as f64 * 100.0).round();
            Placement::Partial {
                cpu_pct: cpu.clamp(0.0, 100.0) as u8,
            }
        }
    }

    /// Exactly what `ollama ps` prints for this placement.
    pub fn ps_label(&self) -> String {
        match self {
            Placement::Gpu => "100% GPU".to_owned(),
            Placement::Cpu => "100% CPU".to_owned(),
            Placement::Unknown => "Unknown".to_owned(),
            Placement::Partial { cpu_pct } => {
                format!("{cpu_pct}%/{}% CPU/GPU", 100 - u16::from(*cpu_pct).min(100))
            }
        }
    }

    /// Share of the model in system RAM, percent; `None` when unknown.
    pub fn cpu_share_pct(&self) -> Option<u8> {
        match self {
            Placement::Gpu => Some(0),
            Placement::Cpu => Some(100),
            Placement::Partial { cpu_pct } => Some(*cpu_pct),
            Placement::Unknown => None,
        }
    }

    /// True only for [`Placement::Gpu`].
    pub fn is_full_gpu(&self) -> bool {
        matches!(self, Placement::Gpu)
    }
}

/// The verdict for one loaded model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementReport {
    /// Effective placement: `/api/ps` unless NVML proves it wrong.
    pub placement: Placement,
    /// What `/api/ps` alone says.
    pub ps_placement: Placement,
    /// Exactly what `ollama ps` prints in its PROCESSOR column.
    pub ps_processor: String,
    /// Effective share in system RAM, percent; `None` when unknown.
    pub cpu_share_pct: Option<u8>,
    /// Whether NVML's view of the runner matches `size_vram`; `None` when it cannot tell.
    pub nvml_agrees: Option<bool>,
    /// NVML (or CPU/GPU activity) contradicts `/api/ps`.
    pub contradiction: bool,
    /// `size == size_vram == model file size`: Ollama parsed no buffer lines and fell back.
    pub suspicious_no_buffer_fallback: bool,
    /// The runner burns several cores while the GPU sits idle.
    pub cpu_busy_gpu_idle: bool,
    pub runner_pid: Option<u32>,
    /// GPU memory NVML attributes to the runner, over all GPUs; `None` = unknown.
    pub runner_gpu_bytes: Option<u64>,
}

/// Everything [`assess`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlacementInput<'a> {
    pub ps: &'a PsModel,
    /// The runner whose `--model` is this model's blob, if found.
    pub runner: Option<&'a Runner>,
    pub gpu: &'a GpuSnapshot,
    /// Size of the model's weights file, if known (`/api/tags` size).
    pub model_file_size: Option<u64>,
}

/// Bytes NVML attributes to `pid`, or `Some(0)` when NVML demonstrably does not list it.
///
/// "Not listed" only means zero when we can trust the pid spaces match: every listed process
/// has a readable name, or the GPUs do not even hold `expect` bytes in total. Inside a
/// container NVML reports host pids and a missing runner proves nothing.
pub fn runner_gpu_bytes(gpu: &GpuSnapshot, pid: u32, expect: u64) -> Option<u64> {
    if !gpu.is_ok() || gpu.gpus.is_empty() {
        return None;
    }
    let mut listed = false;
    let mut known: Option<u64> = None;
    for g in &gpu.gpus {
        if g.lists(pid) {
            listed = true;
            if let Some(b) = g.used_by(pid) {
                known = Some(known.unwrap_or(0) + b);
            }
        }
    }
    if listed {
        return known;
    }
    let names_ok = gpu
        .gpus
        .iter()
        .flat_map(|g| &g.processes)
        .all(|p| !p.name.is_empty());
    let any_listed = gpu.gpus.iter().any(|g| !g.processes.is_empty());
    let used: u64 = gpu.gpus.iter().map(|g| g.memory_used).sum();
    if (names_ok && any_listed) || used < expect / 2 {
        Some(0)
    } else {
        None
    }
}

/// Applies the `ollama ps` rule, then the NVML and activity cross-checks.
pub fn assess(input: &PlacementInput<'_>) -> PlacementReport {
    let ps = input.ps;
    let ps_placement = Placement::from_ps(ps.size, ps.size_vram);
    let runner_pid = input.runner.map(|r| r.pid);
    let runner_gpu = runner_pid.and_then(|pid| runner_gpu_bytes(input.gpu, pid, ps.size_vram));

    let suspicious = ps.size > 0
        && ps.size == ps.size_vram
        && input
            .model_file_size
            .is_some_and(|f| ps.size.abs_diff(f) <= FALLBACK_SLACK);

    let below_tol = ((ps.size_vram as f64 * BELOW_FRAC) as u64).max(BELOW_MIN);
    let above_tol = ((ps.size_vram as f64 * BELOW_FRAC) as u64).max(ABOVE_MIN);
    let near_zero = NEAR_ZERO.min(ps.size_vram / 4).max(MIB);

    let mut placement = ps_placement;
    let mut contradiction = false;
    let nvml_agrees = match runner_gpu {
        Some(b) if ps.size_vram == 0 => {
            let agrees = b <= CPU_RUNNER_GPU_MAX;
            if !agrees {
                placement = Placement::Unknown;
            }
            Some(agrees)
        }
        Some(b) => {
            if b + below_tol < ps.size_vram {
                placement = if b <= near_zero {
                    Placement::Cpu
                } else if ps.size > 0 {
                    let cpu = ((ps.size.saturating_sub(b)) as f64 / ps.size as f64 * 100.0).round();
                    Placement::Partial {
                        cpu_pct: cpu.clamp(1.0, 99.0) as u8,
                    }
                } else {
                    Placement::Unknown
                };
                Some(false)
            } else {
                Some(b <= ps.size_vram + above_tol)
            }
        }
        None if input.gpu.is_ok() && ps.size_vram > 0 && !input.gpu.gpus.is_empty() => {
            // No runner figure, but the GPUs together do not even hold what ps claims.
            let used: u64 = input.gpu.gpus.iter().map(|g| g.memory_used).sum();
            (used + below_tol < ps.size_vram).then_some(false)
        }
        None => None,
    };
    if nvml_agrees == Some(false) {
        contradiction = true;
    }

    let gpu_util = input
        .gpu
        .gpus
        .iter()
        .filter_map(|g| g.utilization_gpu)
        .max();
    let cpu_busy_gpu_idle = ps_placement.is_full_gpu()
        && input
            .runner
            .is_some_and(|r| r.cpu_percent >= BUSY_CPU_PERCENT)
        && gpu_util.is_some_and(|u| u <= IDLE_GPU_PERCENT);
    if cpu_busy_gpu_idle {
        contradiction = true;
    }
    if suspicious && nvml_agrees != Some(true) && placement == ps_placement {
        // The 100 % GPU figure is a fallback, not a measurement.
        placement = Placement::Unknown;
    }

    PlacementReport {
        placement,
        ps_placement,
        ps_processor: ps_placement.ps_label(),
        cpu_share_pct: placement.cpu_share_pct(),
        nvml_agrees,
        contradiction,
        suspicious_no_buffer_fallback: suspicious,
        cpu_busy_gpu_idle,
        runner_pid,
        runner_gpu_bytes: runner_gpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_ps_rule_exactly() {
        let g = 1u64 << 30;
        assert_eq!(Placement::from_ps(8 * g, 8 * g).ps_label(), "100% GPU");
        assert_eq!(Placement::from_ps(8 * g, 0).ps_label(), "100% CPU");
        assert_eq!(Placement::from_ps(0, 0).ps_label(), "100% CPU");
        assert_eq!(Placement::from_ps(8 * g, 9 * g).ps_label(), "Unknown");
        assert_eq!(Placement::from_ps(0, 5).ps_label(), "Unknown");
        // 38 % of 100 in VRAM → 62 % CPU.
        assert_eq!(Placement::from_ps(100, 38).ps_label(), "62%/38% CPU/GPU");
        // Rounds like Go's math.Round (half away from zero): 12.5 → 13.
        assert_eq!(
            Placement::from_ps(1000, 875),
            Placement::Partial { cpu_pct: 13 }
        );
        // A sliver on the CPU still prints as Ollama does.
        assert_eq!(Placement::from_ps(1000, 999).ps_label(), "0%/100% CPU/GPU");
        assert_eq!(
            serde_json::to_string(&Placement::Partial { cpu_pct: 38 }).unwrap(),
            r#"{"kind":"partial","cpu_pct":38}"#
        );
        assert_eq!(
            serde_json::to_string(&Placement::Gpu).unwrap(),
            r#"{"kind":"gpu"}"#
        );
    }
}
