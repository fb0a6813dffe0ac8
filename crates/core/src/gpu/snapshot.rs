//! The GPU snapshot: what NVML reports about every GPU and the processes using it, as plain
//! serde data. The JSON form is the shared contract (`CONTRACT-GPU-JSON.md`) used by capture
//! bundles and by the simulator's `GET /__sim/gpu`, so field names here must not change.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::GpuProbe;

/// Whether NVML could be used. Unsupported is a value, never an error: without an NVIDIA
/// driver the verdict rests on `/api/ps` alone and the user is told so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum NvmlStatus {
    /// NVML answered.
    Ok,
    /// NVML could not be loaded or queried; `reason` is the library's own message.
    Unavailable { reason: String },
}

/// Whether NVML listed a process as a compute or a graphics user of the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessKind {
    Compute,
    Graphics,
}

/// One process holding memory on a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuProcess {
    pub pid: u32,
    /// Process name (`/proc/<pid>/comm`); `""` when it could not be read, e.g. when NVML
    /// reports pids of another pid namespace (containers).
    #[serde(default)]
    pub name: String,
    /// Bytes; `None` when NVML said "unavailable" (always so under Windows WDDM): unknown,
    /// never zero.
    pub used_memory: Option<u64>,
    pub kind: ProcessKind,
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
    /// Percent of the last sample period a kernel ran; `None` = unknown.
    #[serde(default)]
    pub utilization_gpu: Option<u32>,
    #[serde(default)]
    pub utilization_memory: Option<u32>,
    #[serde(default)]
    pub processes: Vec<GpuProcess>,
}

impl GpuInfo {
    /// Bytes this GPU reports for `pid`, summed over its compute and graphics entries.
    /// `None` when the pid is not listed or every entry's memory is unavailable.
    pub fn used_by(&self, pid: u32) -> Option<u64> {
        let mut total = None;
        for p in self.processes.iter().filter(|p| p.pid == pid) {
            if let Some(b) = p.used_memory {
                // A process in both lists (CUDA + graphics context) reports the same
                // allocation twice on some drivers; the larger one is the honest figure.
                total = Some(total.map_or(b, |t: u64| t.max(b)));
            }
        }
        total
    }

    /// Whether `pid` appears in this GPU's process lists at all.
    pub fn lists(&self, pid: u32) -> bool {
        self.processes.iter().any(|p| p.pid == pid)
    }
}

/// Everything one probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuSnapshot {
    pub nvml: NvmlStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    #[serde(default)]
    pub gpus: Vec<GpuInfo>,
}

impl GpuSnapshot {
    /// A snapshot saying NVML cannot be used, and why.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        GpuSnapshot {
            nvml: NvmlStatus::Unavailable {
                reason: reason.into(),
            },
            driver_version: None,
            gpus: Vec::new(),
        }
    }

    /// True when NVML answered.
    pub fn is_ok(&self) -> bool {
        self.nvml == NvmlStatus::Ok
    }

    /// Parses the contract JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::InvalidSnapshot {
            what: "GPU snapshot".into(),
            reason: e.to_string(),
        })
    }
}

/// A [`GpuProbe`] that replays a recorded snapshot (tests, offline diagnosis, demos).
#[derive(Debug, Clone)]
pub struct SnapshotProbe {
    snapshot: GpuSnapshot,
}

impl SnapshotProbe {
    /// Replays `snapshot` on every call.
    pub fn new(snapshot: GpuSnapshot) -> Self {
        SnapshotProbe { snapshot }
    }

    /// Replays the snapshot in a JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        serde_json::from_value(value)
            .map(Self::new)
            .map_err(|e| Error::InvalidSnapshot {
                what: "GPU snapshot".into(),
                reason: e.to_string(),
            })
    }

    /// Replays the snapshot stored as JSON in `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        GpuSnapshot::from_json(&text).map(Self::new)
    }
}

impl GpuProbe for SnapshotProbe {
    fn snapshot(&self) -> GpuSnapshot {
        self.snapshot.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"{
      "nvml": {"status": "ok"},
      "driver_version": "580.65.06",
      "gpus": [{
        "index": 0, "name": "NVIDIA GeForce RTX 4070", "uuid": "GPU-0c1f",
        "memory_total": 12878610432, "memory_used": 1234567890, "memory_free": 11644042542,
        "utilization_gpu": 37, "utilization_memory": 12,
        "processes": [
          {"pid": 4242, "name": "llama-server", "used_memory": 3596372992, "kind": "compute"},
          {"pid": 777,  "name": "python3",      "used_memory": null,       "kind": "graphics"}
        ]
      }]
    }"#;

    #[test]
    fn contract_example_round_trips() {
        let s = GpuSnapshot::from_json(CONTRACT_EXAMPLE).unwrap();
        assert!(s.is_ok());
        let g = &s.gpus[0];
        assert_eq!(g.used_by(4242), Some(3_596_372_992));
        // "unavailable" stays unknown, not zero.
        assert_eq!(g.used_by(777), None);
        assert!(g.lists(777));
        assert_eq!(g.processes[1].kind, ProcessKind::Graphics);
        let back = serde_json::to_value(&s).unwrap();
        let again: GpuSnapshot = serde_json::from_value(back.clone()).unwrap();
        assert_eq!(again, s);
        assert_eq!(
            back["gpus"][0]["processes"][1]["used_memory"],
            serde_json::Value::Null
        );
        assert_eq!(back["nvml"]["status"], "ok");
    }

    #[test]
    fn unavailable_has_reason_and_optional_fields_may_be_absent() {
        let s = GpuSnapshot::from_json(
            r#"{"nvml":{"status":"unavailable","reason":"libnvidia-ml.so.1: cannot open shared object file"}}"#,
        )
        .unwrap();
        assert!(!s.is_ok());
        assert!(s.gpus.is_empty());
        assert_eq!(
            s,
            GpuSnapshot::unavailable("libnvidia-ml.so.1: cannot open shared object file")
        );
        let g: GpuInfo = serde_json::from_str(
            r#"{"index":1,"name":"x","memory_total":1,"memory_used":0,"memory_free":1}"#,
        )
        .unwrap();
        assert_eq!((g.uuid, g.utilization_gpu), (None, None));
    }

    #[test]
    fn bad_json_is_a_typed_error() {
        let e = GpuSnapshot::from_json(r#"{"nvml":{"status":"maybe"}}"#).unwrap_err();
        assert!(matches!(e, Error::InvalidSnapshot { .. }), "{e}");
        let e = SnapshotProbe::from_file("/nonexistent/snap.json").unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
    }
}
