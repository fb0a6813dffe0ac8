//! The `GET /__sim/gpu` view: what NVML and /proc would show on the simulated machine, in the
//! shared JSON contract (`CONTRACT-GPU-JSON.md`).

use serde::{Deserialize, Serialize};

/// NVML availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum NvmlStatus {
    Ok,
    Unavailable { reason: String },
}

/// One process NVML lists on a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuProcess {
    pub pid: u32,
    pub name: String,
    /// `None` = NVML said "unavailable" (unknown, not zero).
    pub used_memory: Option<u64>,
    /// `"compute"` or `"graphics"`.
    pub kind: String,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub index: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    pub memory_total: u64,
    pub memory_used: u64,
    pub memory_free: u64,
    pub utilization_gpu: Option<u32>,
    pub utilization_memory: Option<u32>,
    pub processes: Vec<GpuProcess>,
}

/// NVML's view of the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuSnapshot {
    pub nvml: NvmlStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    pub gpus: Vec<GpuInfo>,
}

/// A model-runner process as /proc would show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerProcess {
    pub pid: u32,
    pub exe: String,
    /// The `--model` argument; `None` for a discovery process.
    pub model_path: Option<String>,
    pub cmdline: Vec<String>,
    /// Percent of one core.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
}

/// Body of `GET /__sim/gpu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuView {
    pub gpu: GpuSnapshot,
    pub runners: Vec<RunnerProcess>,
}
