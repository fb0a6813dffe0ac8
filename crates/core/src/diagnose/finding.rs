//! The vocabulary of a diagnosis: stable codes, findings and their numeric evidence.

use serde::Serialize;

/// A stable diagnosis code (serialised SCREAMING_SNAKE_CASE; documented in
/// `docs/diagnosis.md`). Never renumber or rename: users paste these into bug reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    CtxTooLarge,
    ModelTooLarge,
    VramHeldByOtherProcess,
    SecondModelLoaded,
    NumGpuZero,
    NumGpuSet,
    DerivedParamsDiffer,
    ParallelMultipliesKv,
    GpuBackendLost,
    PsContradictsNvml,
    NvmlUnavailable,
    NoBufferFallback,
    NotLoaded,
    UnexplainedOffload,
    ClientNumGpuZero,
    ClientsOptionsDiffer,
    KeepAliveShort,
    F16WeightsOnCpu,
    MinVramRule,
    ProjectorOnCpu,
    DriverLibraryMismatch,
    NvidiaDriverMissing,
    GpuArchUnsupported,
    DriverTooOld,
    GpusHidden,
    PlacementUnverified,
    /// Post-pass of the watchdog, not a rule: the picker's fit prediction and the placement
    /// after loading disagree.
    FitMispredicted,
}

impl Code {
    /// The serialised name, e.g. `"CTX_TOO_LARGE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::CtxTooLarge => "CTX_TOO_LARGE",
            Code::ModelTooLarge => "MODEL_TOO_LARGE",
            Code::VramHeldByOtherProcess => "VRAM_HELD_BY_OTHER_PROCESS",
            Code::SecondModelLoaded => "SECOND_MODEL_LOADED",
            Code::NumGpuZero => "NUM_GPU_ZERO",
            Code::NumGpuSet => "NUM_GPU_SET",
            Code::DerivedParamsDiffer => "DERIVED_PARAMS_DIFFER",
            Code::ParallelMultipliesKv => "PARALLEL_MULTIPLIES_KV",
            Code::GpuBackendLost => "GPU_BACKEND_LOST",
            Code::PsContradictsNvml => "PS_CONTRADICTS_NVML",
            Code::NvmlUnavailable => "NVML_UNAVAILABLE",
            Code::NoBufferFallback => "NO_BUFFER_FALLBACK",
            Code::NotLoaded => "NOT_LOADED",
            Code::UnexplainedOffload => "UNEXPLAINED_OFFLOAD",
            Code::ClientNumGpuZero => "CLIENT_NUM_GPU_ZERO",
            Code::ClientsOptionsDiffer => "CLIENTS_OPTIONS_DIFFER",
            Code::KeepAliveShort => "KEEP_ALIVE_SHORT",
            Code::F16WeightsOnCpu => "F16_WEIGHTS_ON_CPU",
            Code::MinVramRule => "MIN_VRAM_RULE",
            Code::ProjectorOnCpu => "PROJECTOR_ON_CPU",
            Code::DriverLibraryMismatch => "DRIVER_LIBRARY_MISMATCH",
            Code::NvidiaDriverMissing => "NVIDIA_DRIVER_MISSING",
            Code::GpuArchUnsupported => "GPU_ARCH_UNSUPPORTED",
            Code::DriverTooOld => "DRIVER_TOO_OLD",
            Code::GpusHidden => "GPUS_HIDDEN",
            Code::PlacementUnverified => "PLACEMENT_UNVERIFIED",
            Code::FitMispredicted => "FIT_MISPREDICTED",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a finding matters to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Context for the verdict; nothing to fix.
    Info,
    /// Something is off or untrustworthy.
    Warning,
    /// A cause of the model not running fully on the GPU.
    Cause,
}

/// A number or a short text backing a finding. Numbers stay numbers in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EvidenceValue {
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    Text(String),
}

/// One labelled piece of evidence. Labels are snake_case and carry their unit
/// (`kv_cache_bytes`, `num_ctx`, `runner_cpu_percent`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub label: &'static str,
    pub value: EvidenceValue,
}

impl Evidence {
    pub(crate) fn u(label: &'static str, v: u64) -> Self {
        Evidence {
            label,
            value: EvidenceValue::Uint(v),
        }
    }
    pub(crate) fn i(label: &'static str, v: i64) -> Self {
        Evidence {
            label,
            value: EvidenceValue::Int(v),
        }
    }
    pub(crate) fn f(label: &'static str, v: f64) -> Self {
        Evidence {
            label,
            value: EvidenceValue::Float(v),
        }
    }
    pub(crate) fn b(label: &'static str, v: bool) -> Self {
        Evidence {
            label,
            value: EvidenceValue::Bool(v),
        }
    }
    pub(crate) fn t(label: &'static str, v: impl Into<String>) -> Self {
        Evidence {
            label,
            value: EvidenceValue::Text(v.into()),
        }
    }
}

/// One cause (or caveat) with its fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    /// Plain words, one sentence.
    pub title: String,
    pub evidence: Vec<Evidence>,
    /// One line telling the user what to do.
    pub remedy: String,
    /// The largest `num_ctx` that fits, when that is the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_num_ctx: Option<u64>,
    /// Exact commands that apply the remedy, one per line, in order (may be empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// 1 = most likely; findings are sorted by it.
    pub rank: u32,
    /// Internal likelihood used for ranking (0–100); kept out of JSON because its scale is
    /// not a promise.
    #[serde(skip)]
    pub score: u8,
}

impl Finding {
    pub(crate) fn new(
        code: Code,
        severity: Severity,
        score: u8,
        title: String,
        remedy: String,
    ) -> Self {
        Finding {
            code,
            severity,
            title,
            evidence: Vec::new(),
            remedy,
            suggested_num_ctx: None,
            commands: Vec::new(),
            rank: 0,
            score,
        }
    }

    /// The text evidence called `label`, if present.
    pub fn text(&self, label: &str) -> Option<&str> {
        self.evidence
            .iter()
            .find(|e| e.label == label)
            .and_then(|e| match &e.value {
                EvidenceValue::Text(t) => Some(t.as_str()),
                _ => None,
            })
    }

    /// The numeric evidence called `label`, if present.
    pub fn number(&self, label: &str) -> Option<f64> {
        self.evidence
            .iter()
            .find(|e| e.label == label)
            .and_then(|e| match e.value {
                EvidenceValue::Int(v) => Some(v as f64),
                EvidenceValue::Uint(v) => Some(v as f64),
                EvidenceValue::Float(v) => Some(v),
                _ => None,
            })
    }
}
