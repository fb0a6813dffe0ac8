//! Where a loaded model runs: Ollama's own `ollama ps` rule applied to an `/api/ps` entry,
//! then checked against what NVML says the model's runner process really holds.
//!
//! Pure functions on borrowed data; no I/O, no allocation beyond the report's label.

use serde::{Deserialize, Serialize};

use crate::gpu::{GpuSnapshot, Runner};
use crate::ollama::types::PsModel;
use crate::scope::Scope;

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

/// GPU memory a CUDA runner holds beyond its logged buffers (the CUDA context, cuBLAS
/// workspaces). NVML counts it against the runner, `/api/ps` does not (it sums the logged
/// model, KV and compute buffers), so it is subtracted before the model's share is computed.
/// Measured on an H200 (driver 580, CUDA 13): 520 MiB with no layer on the GPU at any `-c`,
/// 585–587 MiB with layers on it. The compute buffer grows with `-c` but `/api/ps` counts it,
/// so this does not (`docs/diagnosis.md`, `docs/measurements/gpu-proof.md`).
pub const RUNTIME_BASELINE: u64 = 600 * MIB;

/// The runtime baseline for the GPUs in `gpu`. One figure for now (every NVML GPU is NVIDIA);
/// the seam for per-driver / per-GPU values.
pub fn runtime_baseline(_gpu: &GpuSnapshot) -> u64 {
    RUNTIME_BASELINE
}

/// Why a placement could not be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnverifiedReason {
    /// Ollama runs on another machine; this machine's GPU says nothing about it.
    Remote,
    /// `/api/ps` claims GPU memory, no runner process of the model was found, and the GPUs
    /// could hold the claim, so nothing confirms or refutes it.
    NoRunner,
}

impl UnverifiedReason {
    /// Why, in one sentence.
    pub fn text(&self) -> &'static str {
        match self {
            UnverifiedReason::Remote => {
                "Ollama runs on another machine, so only its /api/ps claim is known; this machine's GPU says nothing about it."
            }
            UnverifiedReason::NoRunner => {
                "No runner process was found for this model, so nothing confirms the GPU memory /api/ps claims."
            }
        }
    }

    /// How to get the truth, in one line.
    pub fn hint(&self) -> &'static str {
        match self {
            UnverifiedReason::Remote => crate::scope::REMOTE_HINT,
            UnverifiedReason::NoRunner => {
                "Run `yollayah doctor` where Ollama's processes are visible (inside its container, or on the host for a containerised Ollama)."
            }
        }
    }
}

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
    /// `/api/ps` claims the GPU but nothing could check it; never shown as "on the GPU".
    Unverified { reason: UnverifiedReason },
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
            Placement::Unverified { .. } => "Unverified".to_owned(),
            Placement::Partial { cpu_pct } => {
                format!("{cpu_pct}%/{}% CPU/GPU", 100 - u16::from(*cpu_pct).min(100))
            }
        }
    }

    /// Share of the model in system RAM, percent; `None` when unknown or unverified.
    pub fn cpu_share_pct(&self) -> Option<u8> {
        match self {
            Placement::Gpu => Some(0),
            Placement::Cpu => Some(100),
            Placement::Partial { cpu_pct } => Some(*cpu_pct),
            Placement::Unknown | Placement::Unverified { .. } => None,
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
    /// Effective placement: `/api/ps` unless NVML or the runner's argv proves it wrong, or
    /// `unverified` when nothing could check it.
    pub placement: Placement,
    /// What `/api/ps` alone says.
    pub ps_placement: Placement,
    /// Exactly what `ollama ps` prints in its PROCESSOR column.
    pub ps_processor: String,
    /// Effective share in system RAM, percent; `None` when unknown.
    pub cpu_share_pct: Option<u8>,
    /// Whether NVML's view of the runner matches `size_vram`; `None` when it cannot tell.
    pub nvml_agrees: Option<bool>,
    /// NVML, the runner's argv or its activity contradicts `/api/ps`.
    pub contradiction: bool,
    /// `size == size_vram == model file size`: Ollama parsed no buffer lines and fell back.
    pub suspicious_no_buffer_fallback: bool,
    /// The runner burns several cores while the GPU sits idle.
    pub cpu_busy_gpu_idle: bool,
    pub runner_pid: Option<u32>,
    /// GPU memory NVML attributes to the runner, over all GPUs; `None` = unknown.
    pub runner_gpu_bytes: Option<u64>,
    /// The runner's `-ngl`/`--n-gpu-layers`, when its argv has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_gpu_layers: Option<i64>,
    /// The model's layer count (`<arch>.block_count` of `/api/show`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_count: Option<u64>,
}

/// Everything [`assess`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlacementInput<'a> {
    pub ps: &'a PsModel,
    /// The runner whose `--model` is this model's blob, if found.
    pub runner: Option<&'a Runner>,
    /// Every runner found (other models' runners are "other processes" for this one).
    pub runners: &'a [Runner],
    pub gpu: &'a GpuSnapshot,
    /// Size of the model's weights file, if known (`/api/tags` size).
    pub model_file_size: Option<u64>,
    /// `<arch>.block_count` from `/api/show`, if known.
    pub block_count: Option<u64>,
    /// Where the GPU facts come from; remote means there are none.
    pub scope: &'a Scope,
}

/// Whether a GPU process could be the runner of a model whose runner was not found: its name is unreadable
/// (another pid namespace) or runner-like, and it is no known runner of another model.
fn could_be_runner(p: &crate::gpu::GpuProcess, runners: &[Runner]) -> bool {
    let name = p.name.strip_suffix(".exe").unwrap_or(&p.name);
    let runner_like = name.is_empty()
        || name == "llama-server"
        || name == "ollama"
        || name.starts_with("ollama_llama_se");
    runner_like && !runners.iter().any(|r| r.pid == p.pid)
}

/// GPU memory in use that no process provably not our runner holds: the most our model could
/// have. Memory of other processes is never credited to a model.
pub fn unattributed_gpu_bytes(gpu: &GpuSnapshot, runners: &[Runner]) -> u64 {
    gpu.gpus
        .iter()
        .map(|g| {
            let others: u64 = g
                .processes
                .iter()
                .filter(|p| !could_be_runner(p, runners))
                .filter_map(|p| p.used_memory)
                .sum();
            g.memory_used.saturating_sub(others)
        })
        .sum()
}

/// Bytes NVML attributes to `pid`, or `Some(0)` when NVML demonstrably does not list it.
///
/// "Not listed" only means zero when we can trust the pid spaces match: every listed process
/// has a readable name, or the GPUs do not even hold `expect` bytes beyond what other
/// processes hold. Inside a container NVML reports host pids and a missing runner proves
/// nothing.
/// The runner of the model whose blob is `blob`. Two runners can share a blob for a moment (a
/// replaced runner that is still exiting has already freed its GPU memory, seen on an H200),
/// so the one NVML shows holding the most memory wins; on a tie the first listed (scans sort by
/// pid).
pub fn model_runner<'r>(
    gpu: &GpuSnapshot,
    runners: &'r [Runner],
    blob: &str,
) -> Option<&'r Runner> {
    let held = |r: &Runner| -> u64 { gpu.gpus.iter().filter_map(|g| g.used_by(r.pid)).sum() };
    let mut best: Option<(&Runner, u64)> = None;
    for r in runners.iter().filter(|r| r.model_path == blob) {
        let b = held(r);
        match best {
            Some((_, top)) if b <= top => {}
            _ => best = Some((r, b)),
        }
    }
    best.map(|(r, _)| r)
}

pub fn runner_gpu_bytes(gpu: &GpuSnapshot, pid: u32, expect: u64) -> Option<u64> {
    runner_gpu_bytes_among(gpu, pid, expect, &[])
}

fn runner_gpu_bytes_among(
    gpu: &GpuSnapshot,
    pid: u32,
    expect: u64,
    runners: &[Runner],
) -> Option<u64> {
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
    let free_for_us = unattributed_gpu_bytes(gpu, runners);
    if (names_ok && any_listed) || free_for_us < expect / 2 {
        Some(0)
    } else {
        None
    }
}

fn share_placement(model_bytes: u64, size: u64, near_zero: u64) -> Placement {
    if model_bytes <= near_zero {
        Placement::Cpu
    } else if size > 0 {
        let cpu = ((size.saturating_sub(model_bytes)) as f64 / size as f64 * 100.0).round();
        if cpu < 0.5 {
            Placement::Gpu
        } else {
            Placement::Partial {
                cpu_pct: cpu.clamp(1.0, 99.0) as u8,
            }
        }
    } else {
        Placement::Unknown
    }
}

/// Applies the `ollama ps` rule, then (local or agent scope only) the runner's argv, NVML and
/// activity cross-checks. Rules and thresholds: `docs/diagnosis.md`.
pub fn assess(input: &PlacementInput<'_>) -> PlacementReport {
    let ps = input.ps;
    let ps_placement = Placement::from_ps(ps.size, ps.size_vram);
    let suspicious = ps.size > 0
        && ps.size == ps.size_vram
        && input
            .model_file_size
            .is_some_and(|f| ps.size.abs_diff(f) <= FALLBACK_SLACK);

    if !input.scope.has_gpu_facts() {
        // Nothing here may be compared with this machine. A CPU or partial claim already says
        // "not fully on the GPU" and is taken as is; a GPU claim cannot be confirmed.
        let placement = match ps_placement {
            Placement::Gpu => Placement::Unverified {
                reason: UnverifiedReason::Remote,
            },
            p => p,
        };
        return PlacementReport {
            placement,
            ps_placement,
            ps_processor: ps_placement.ps_label(),
            cpu_share_pct: placement.cpu_share_pct(),
            nvml_agrees: None,
            contradiction: false,
            suspicious_no_buffer_fallback: suspicious,
            cpu_busy_gpu_idle: false,
            runner_pid: None,
            runner_gpu_bytes: None,
            runner_gpu_layers: None,
            block_count: input.block_count,
        };
    }

    let runner_pid = input.runner.map(|r| r.pid);
    let runner_gpu = runner_pid
        .and_then(|pid| runner_gpu_bytes_among(input.gpu, pid, ps.size_vram, input.runners));
    let gpu_layers = input.runner.and_then(|r| r.args().gpu_layers);
    // Every repeating layer offloaded by the argv (`-ngl 99`, Ollama 0.3's `--n-gpu-layers 33`).
    let all_layers = gpu_layers
        .zip(input.block_count)
        .is_some_and(|(n, b)| n > 0 && b > 0 && n as u64 >= b);
    // Before 0.30 the runner's layer count is Ollama's own placement: the same layout its
    // `/api/ps` share was computed from, in layers instead of bytes.
    let ollama_layers = input.runner.is_some_and(|r| !r.is_llama_server());
    let baseline = runtime_baseline(input.gpu);

    let below_tol = ((ps.size_vram as f64 * BELOW_FRAC) as u64).max(BELOW_MIN);
    let above_tol = ((ps.size_vram as f64 * BELOW_FRAC) as u64).max(ABOVE_MIN);
    let near_zero = NEAR_ZERO.min(ps.size_vram / 4).max(MIB);

    let mut placement = ps_placement;
    let nvml_agrees = match runner_gpu {
        Some(b) if ps.size_vram == 0 => {
            let agrees = b <= CPU_RUNNER_GPU_MAX;
            if !agrees {
                placement = Placement::Unknown;
            }
            Some(agrees)
        }
        Some(b) => {
            // The runtime baseline is the runner's, not the model's.
            let model_bytes = b.saturating_sub(baseline);
            // At least half the claim held: a runner that fell back or lost layers holds far less
            // (#6160's over-reservation was 16 of 22 GB).
            let over_reserved =
                all_layers && model_bytes > near_zero && model_bytes * 2 >= ps.size_vram;
            if model_bytes + below_tol < ps.size_vram && over_reserved {
                // Every layer is on the GPU and the runner holds real model memory: the
                // shortfall is reserved-but-unallocated memory in Ollama's figure (its
                // pre-0.30 estimate ignored flash attention and reserves the largest graph,
                // ollama/ollama#6160, #5022, #10505), not a share on the CPU.
                Some(true)
            } else if model_bytes + below_tol < ps.size_vram {
                placement = share_placement(model_bytes, ps.size, near_zero);
                Some(false)
            } else {
                Some(b <= ps.size_vram + baseline + above_tol)
            }
        }
        None if input.runner.is_none()
            && input.gpu.is_ok()
            && ps.size_vram > 0
            && !input.gpu.gpus.is_empty() =>
        {
            // No runner: only memory nobody else holds can be the model's.
            let could_be_ours = unattributed_gpu_bytes(input.gpu, input.runners);
            if could_be_ours + below_tol < ps.size_vram {
                placement = share_placement(could_be_ours, ps.size, near_zero);
                if placement.is_full_gpu() {
                    placement = Placement::Unknown;
                }
                Some(false)
            } else {
                placement = match ps_placement {
                    Placement::Gpu => Placement::Unverified {
                        reason: UnverifiedReason::NoRunner,
                    },
                    p => p,
                };
                None
            }
        }
        None => None,
    };
    let mut contradiction = nvml_agrees == Some(false);

    // What the runner was told beats what ps computed: `-ngl 0` is CPU only, and fewer
    // layers than the model has leaves the rest on the CPU (fact sheet §6; Ollama passes no
    // -ngl in automatic mode).
    if let Some(n) = gpu_layers.filter(|n| *n >= 0) {
        let argv = match input.block_count.filter(|b| *b > 0) {
            _ if n == 0 => Some(Placement::Cpu),
            Some(b) if (n as u64) < b => {
                let cpu = ((b - n as u64) as f64 / b as f64 * 100.0).round();
                Some(Placement::Partial {
                    cpu_pct: cpu.clamp(1.0, 99.0) as u8,
                })
            }
            _ => None,
        };
        // Ollama's own layer count next to a partial `/api/ps` is one split told twice (layers
        // differ in size, KV and graph follow them): not a contradiction (#5756: 15/33 layers,
        // ps 36 % on the CPU).
        let same_layout = ollama_layers && matches!(ps_placement, Placement::Partial { .. });
        if let Some(argv) = argv.filter(|_| !same_layout) {
            let ps_cpu = ps_placement.cpu_share_pct().unwrap_or(0);
            let argv_cpu = argv.cpu_share_pct().unwrap_or(0);
            if argv_cpu > ps_cpu.saturating_add(10) {
                contradiction = true;
                // The layer count is exact where memory is rounded, except when memory shows
                // nothing at all on the GPU (a lost backend holds nothing, whatever -ngl says).
                if placement != Placement::Cpu {
                    placement = argv;
                }
            }
        }
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
    if contradiction && placement.is_full_gpu() {
        // A contradiction never stands next to "fully on the GPU".
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
        runner_gpu_layers: gpu_layers,
        block_count: input.block_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gpu::{GpuInfo, GpuProcess, NvmlStatus, ProcessKind};

    /// The 2.55 GB, 24-layer model of issue 10's table, as `/api/ps` reported it: 100% GPU.
    const CLAIM: u64 = 3200 * MIB;
    const LAYERS: u64 = 24;
    const PID: u32 = 4242;
    const BLOB: &str = "/m/blobs/sha256-aa";

    fn ps(size: u64, size_vram: u64) -> PsModel {
        PsModel {
            name: "tiny:latest".into(),
            model: "tiny:latest".into(),
            size,
            size_vram,
            ..PsModel::default()
        }
    }

    fn runner(ngl: Option<u32>) -> Runner {
        let mut cmdline: Vec<String> = ["llama-server", "--model", BLOB, "--port", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(n) = ngl {
            cmdline.extend(["-ngl".to_owned(), n.to_string()]);
        }
        Runner {
            pid: PID,
            exe: "llama-server".into(),
            model_path: BLOB.into(),
            cmdline,
            cpu_percent: 0.0,
            rss_bytes: 0,
            container: None,
        }
    }

    /// One 140 GiB GPU holding `procs` (pid, name, bytes) and nothing else.
    fn gpu(procs: &[(u32, &str, u64)]) -> GpuSnapshot {
        let used: u64 = procs.iter().map(|p| p.2).sum::<u64>() + 4 * MIB;
        GpuSnapshot {
            nvml: NvmlStatus::Ok,
            driver_version: None,
            gpus: vec![GpuInfo {
                index: 0,
                name: "NVIDIA H200".into(),
                uuid: None,
                memory_total: 140 << 30,
                memory_used: used,
                memory_free: (140 << 30) - used,
                utilization_gpu: Some(0),
                utilization_memory: Some(0),
                processes: procs
                    .iter()
                    .map(|(pid, name, b)| GpuProcess {
                        pid: *pid,
                        name: (*name).into(),
                        used_memory: Some(*b),
                        kind: ProcessKind::Compute,
                    })
                    .collect(),
            }],
        }
    }

    fn judge(
        ps: &PsModel,
        runner: Option<&Runner>,
        gpu: &GpuSnapshot,
        scope: &Scope,
    ) -> PlacementReport {
        let runners: Vec<Runner> = runner.into_iter().cloned().collect();
        assess(&PlacementInput {
            ps,
            runner,
            runners: &runners,
            gpu,
            model_file_size: None,
            block_count: Some(LAYERS),
            scope,
        })
    }

    #[test]
    fn of_two_runners_of_one_blob_the_one_holding_memory_is_the_model_s() {
        // A replaced runner still exiting (pid 100, memory already freed) next to its
        // successor (pid 200): the successor is the model's runner, not the "lost backend".
        let mut old = runner(None);
        old.pid = 100;
        let mut new = runner(None);
        new.pid = 200;
        let mut other = runner(None);
        other.pid = 300;
        other.model_path = "/m/blobs/sha256-bb".into();
        let runners = vec![old.clone(), new.clone(), other];
        let g = gpu(&[
            (200, "llama-server", 3784 * MIB),
            (300, "llama-server", 9000 * MIB),
        ]);
        let chosen = model_runner(&g, &runners, BLOB).map(|r| r.pid);
        assert_eq!(chosen, Some(200));
        let p = ps(CLAIM, CLAIM);
        let rep = assess(&PlacementInput {
            ps: &p,
            runner: model_runner(&g, &runners, BLOB),
            runners: &runners,
            gpu: &g,
            model_file_size: None,
            block_count: Some(LAYERS),
            scope: &Scope::Local,
        });
        assert_eq!(rep.placement, Placement::Gpu, "{rep:?}");

        // One runner holding nothing is still the model's runner (a lost GPU backend).
        let idle = gpu(&[(300, "llama-server", 9000 * MIB)]);
        let only = [old.clone()];
        assert_eq!(model_runner(&idle, &only, BLOB).map(|r| r.pid), Some(100));
        // Neither holds memory: the first listed.
        assert_eq!(
            model_runner(&idle, &[old, new], BLOB).map(|r| r.pid),
            Some(100)
        );
        assert!(model_runner(&idle, &runners[2..], BLOB).is_none());
    }

    #[test]
    fn issue_table_rows_by_runner_memory_alone() {
        // No -ngl in the argv (Ollama's automatic mode): the runtime baseline is subtracted.
        let p = ps(CLAIM, CLAIM);
        let r = runner(None);
        let local = Scope::Local;
        let all = judge(
            &p,
            Some(&r),
            &gpu(&[(PID, "llama-server", 3556 * MIB)]),
            &local,
        );
        assert_eq!(all.placement, Placement::Gpu);
        assert!(!all.contradiction);

        let none = judge(
            &p,
            Some(&r),
            &gpu(&[(PID, "llama-server", 592 * MIB)]),
            &local,
        );
        assert_eq!(none.placement, Placement::Cpu, "{none:?}");
        assert!(none.contradiction);

        let half = judge(
            &p,
            Some(&r),
            &gpu(&[(PID, "llama-server", 2124 * MIB)]),
            &local,
        );
        let Placement::Partial { cpu_pct } = half.placement else {
            panic!("{half:?}")
        };
        assert!(
            (40..=60).contains(&cpu_pct),
            "about half on the CPU: {cpu_pct}"
        );
        assert!(half.contradiction);
    }

    #[test]
    fn issue_table_rows_by_runner_argv() {
        let p = ps(CLAIM, CLAIM);
        let local = Scope::Local;
        let all = judge(
            &p,
            Some(&runner(Some(99))),
            &gpu(&[(PID, "llama-server", 3556 * MIB)]),
            &local,
        );
        assert_eq!(all.placement, Placement::Gpu);
        assert_eq!(all.runner_gpu_layers, Some(99));

        let none = judge(
            &p,
            Some(&runner(Some(0))),
            &gpu(&[(PID, "llama-server", 592 * MIB)]),
            &local,
        );
        assert_eq!(none.placement, Placement::Cpu);
        assert!(none.contradiction);

        // 12 of 24 layers: half the model on the CPU, whatever the memory rounding says.
        let half = judge(
            &p,
            Some(&runner(Some(12))),
            &gpu(&[(PID, "llama-server", 2124 * MIB)]),
            &local,
        );
        assert_eq!(
            half.placement,
            Placement::Partial { cpu_pct: 50 },
            "{half:?}"
        );
        assert!(half.contradiction);
    }

    /// An Ollama 0.3 runner: every setting in the argv, `--n-gpu-layers` computed by Ollama.
    fn old_runner(ngl: u32) -> Runner {
        let cmdline = [
            "/tmp/ollama1/runners/cuda_v11/ollama_llama_server",
            "--model",
            BLOB,
            "--n-gpu-layers",
            &ngl.to_string(),
            "--flash-attn",
            "--parallel",
            "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Runner {
            exe: "ollama_llama_se".into(),
            cmdline,
            ..runner(None)
        }
    }

    #[test]
    fn every_layer_on_the_gpu_below_the_estimate_is_not_a_cpu_share() {
        // ollama/ollama#6160: ps 22 GB "100% GPU", nvidia-smi 16 GB, 33/33 layers offloaded:
        // Ollama's estimate reserved more than the runner allocated.
        let p = ps(CLAIM, CLAIM);
        let r = judge(
            &p,
            Some(&old_runner(LAYERS as u32 + 1)),
            &gpu(&[(PID, "ollama_llama_se", CLAIM * 7 / 10)]),
            &Scope::Local,
        );
        assert_eq!(r.placement, Placement::Gpu, "{r:?}");
        assert_eq!(r.nvml_agrees, Some(true));
        assert!(!r.contradiction);
        // The same argv with the runner holding nothing is still a lost backend.
        let lost = judge(
            &p,
            Some(&old_runner(LAYERS as u32 + 1)),
            &gpu(&[(PID, "ollama_llama_se", 0)]),
            &Scope::Local,
        );
        assert_eq!(lost.placement, Placement::Cpu);
        assert!(lost.contradiction);
        // Nor is a runner holding a third of the claim: no estimate is that far off.
        let third = judge(
            &p,
            Some(&old_runner(LAYERS as u32 + 1)),
            &gpu(&[(PID, "ollama_llama_se", CLAIM / 3)]),
            &Scope::Local,
        );
        assert!(
            matches!(third.placement, Placement::Partial { .. }),
            "{third:?}"
        );
        assert!(third.contradiction);
        // Without the layer count the shortfall stays a split.
        let unknown = judge(
            &p,
            Some(&runner(None)),
            &gpu(&[(PID, "llama-server", CLAIM * 7 / 10)]),
            &Scope::Local,
        );
        assert!(matches!(unknown.placement, Placement::Partial { .. }));
    }

    #[test]
    fn ollamas_own_layer_count_next_to_a_partial_ps_is_no_contradiction() {
        // ollama/ollama#5756: 15 of 33 layers, ps 36 % on the CPU: one split in two units.
        let p = ps(CLAIM, CLAIM * 64 / 100);
        let old = judge(
            &p,
            Some(&old_runner(11)),
            &gpu(&[(PID, "ollama_llama_se", CLAIM * 64 / 100 + 300 * MIB)]),
            &Scope::Local,
        );
        assert_eq!(old.placement, p_placement(&p), "{old:?}");
        assert!(!old.contradiction);
        // A client's -ngl on llama-server is a setting, and its layer share still wins.
        let head = judge(
            &p,
            Some(&runner(Some(11))),
            &gpu(&[(PID, "llama-server", CLAIM * 64 / 100 + 300 * MIB)]),
            &Scope::Local,
        );
        assert_eq!(head.placement, Placement::Partial { cpu_pct: 54 });
        assert!(head.contradiction);
    }

    fn p_placement(p: &PsModel) -> Placement {
        Placement::from_ps(p.size, p.size_vram)
    }

    #[test]
    fn no_runner_and_gpus_cannot_hold_the_claim_is_cpu() {
        // An idle GPU, or one whose memory is all another process's.
        for procs in [vec![], vec![(777u32, "python3", 60u64 << 30)]] {
            let r = judge(&ps(CLAIM, CLAIM), None, &gpu(&procs), &Scope::Local);
            assert_eq!(r.placement, Placement::Cpu, "{procs:?}: {r:?}");
            assert!(r.contradiction);
            assert_eq!(r.nvml_agrees, Some(false));
        }
    }

    #[test]
    fn no_runner_but_gpus_could_hold_it_is_unverified() {
        // Memory nobody can be told apart from (an unreadable name: another pid namespace).
        let g = gpu(&[(91_000, "", 3300 * MIB)]);
        let r = judge(&ps(CLAIM, CLAIM), None, &g, &Scope::Local);
        assert_eq!(
            r.placement,
            Placement::Unverified {
                reason: UnverifiedReason::NoRunner
            }
        );
        assert!(!r.contradiction);
        assert_eq!(r.cpu_share_pct, None);
    }

    #[test]
    fn an_unrelated_process_never_turns_cpu_into_gpu() {
        let p = ps(CLAIM, CLAIM);
        let r = runner(None);
        let before = judge(
            &p,
            Some(&r),
            &gpu(&[(PID, "llama-server", 592 * MIB)]),
            &Scope::Local,
        );
        assert_eq!(before.placement, Placement::Cpu);
        let after = judge(
            &p,
            Some(&r),
            &gpu(&[(PID, "llama-server", 592 * MIB), (777, "python3", 60 << 30)]),
            &Scope::Local,
        );
        assert_eq!(after.placement, Placement::Cpu, "{after:?}");
        // The runner is not listed at all (e.g. its GPU context failed): still not credited.
        let unlisted = judge(
            &p,
            Some(&r),
            &gpu(&[(777, "python3", 60 << 30)]),
            &Scope::Local,
        );
        assert_eq!(unlisted.placement, Placement::Cpu, "{unlisted:?}");
        // No runner found: the 60 GiB are someone else's.
        let no_runner = judge(&p, None, &gpu(&[(777, "python3", 60 << 30)]), &Scope::Local);
        assert_eq!(no_runner.placement, Placement::Cpu, "{no_runner:?}");
    }

    #[test]
    fn remote_is_never_cross_checked() {
        // This machine's idle GPU and a stray runner say nothing about a remote server.
        let r = runner(Some(0));
        let rep = judge(&ps(CLAIM, CLAIM), Some(&r), &gpu(&[]), &Scope::Remote);
        assert_eq!(
            rep.placement,
            Placement::Unverified {
                reason: UnverifiedReason::Remote
            }
        );
        assert!(!rep.contradiction);
        assert_eq!(rep.nvml_agrees, None);
        assert_eq!(rep.runner_pid, None);
        // A CPU or partial claim already says "not fully on the GPU" and stands.
        let cpu = judge(&ps(CLAIM, 0), None, &gpu(&[]), &Scope::Remote);
        assert_eq!(cpu.placement, Placement::Cpu);
        assert_eq!(
            serde_json::to_string(&rep.placement).unwrap(),
            r#"{"kind":"unverified","reason":"remote"}"#
        );
    }

    #[test]
    fn a_contradiction_never_reads_as_full_gpu() {
        // All memory there, but the runner burns cores while the GPU idles.
        let mut r = runner(None);
        r.cpu_percent = 750.0;
        let rep = judge(
            &ps(CLAIM, CLAIM),
            Some(&r),
            &gpu(&[(PID, "llama-server", 3556 * MIB)]),
            &Scope::Local,
        );
        assert!(rep.contradiction);
        assert!(!rep.placement.is_full_gpu(), "{rep:?}");
    }

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
