//! What the GPU really holds: a [`GpuProbe`] (NVML, or a recorded snapshot) and the discovery
//! of Ollama's model-runner processes, which is the only link between `/api/ps` (no pid) and
//! NVML's per-process memory (pids only).

pub mod nvml;
pub mod runners;
pub mod snapshot;

pub use nvml::{NvmlFailure, NvmlProbe};
pub use runners::{
    Runner, RunnerScanner, blob_path_from_modelfile, parse_runner_cmdline, runner_identity_changed,
};
pub use snapshot::{GpuInfo, GpuProcess, GpuSnapshot, NvmlStatus, ProcessKind, SnapshotProbe};

/// A source of GPU snapshots. Implementations are synchronous and cheap (the NVML one takes
/// tens of microseconds) so the watchdog can call them on every tick. A machine without an
/// NVIDIA driver is not an error: the snapshot says `nvml: unavailable` and why.
pub trait GpuProbe: Send + Sync {
    /// Takes one snapshot of every GPU.
    fn snapshot(&self) -> GpuSnapshot;
}

impl<T: GpuProbe + ?Sized> GpuProbe for Box<T> {
    fn snapshot(&self) -> GpuSnapshot {
        (**self).snapshot()
    }
}

impl<T: GpuProbe + ?Sized> GpuProbe for std::sync::Arc<T> {
    fn snapshot(&self) -> GpuSnapshot {
        (**self).snapshot()
    }
}
