//! What `/metrics` exposes, as plain data: the latest tick's facts plus counters derived from
//! the event stream. Nothing here knows a core type; [`crate::source`] fills it.

use std::collections::BTreeMap;

/// The placement state set: every loaded model is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PlacementState {
    Gpu,
    Partial,
    Cpu,
    /// Nothing could confirm where it runs (Ollama's "Unknown", or no NVML view).
    Unverified,
}

impl PlacementState {
    pub const ALL: [PlacementState; 4] = [
        PlacementState::Gpu,
        PlacementState::Partial,
        PlacementState::Cpu,
        PlacementState::Unverified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlacementState::Gpu => "gpu",
            PlacementState::Partial => "partial",
            PlacementState::Cpu => "cpu",
            PlacementState::Unverified => "unverified",
        }
    }
}

/// One model (loaded, or the watched model while not loaded).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFacts {
    pub name: String,
    pub loaded: bool,
    pub placement: PlacementState,
    /// Share of the model in system RAM, 0..1.
    pub cpu_share: Option<f64>,
    /// `/api/ps` `size` and `size_vram`.
    pub size_bytes: Option<u64>,
    pub vram_bytes: Option<u64>,
    /// GPU memory NVML attributes to the model's runner.
    pub runner_gpu_bytes: Option<u64>,
    pub context_length: Option<u64>,
    /// Seconds until Ollama unloads it (negative once past; absent for "forever").
    pub expires_in_seconds: Option<f64>,
    /// NVML or CPU/GPU activity contradicts `/api/ps`.
    pub contradiction: bool,
}

/// One process using GPU memory that is not an Ollama runner.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessFacts {
    pub pid: u32,
    pub name: String,
    pub bytes: u64,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuFacts {
    pub index: u32,
    pub name: String,
    pub uuid: String,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub utilization: Option<f64>,
    /// Largest first, at most [`TOP_PROCESSES`].
    pub top_processes: Vec<ProcessFacts>,
}

/// How many non-Ollama processes per GPU are exported: enough to name the culprit, few
/// enough that a busy desktop does not blow up series cardinality.
pub const TOP_PROCESSES: usize = 5;

/// The latest tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Whether a tick has run at all.
    pub observed: bool,
    pub ollama_up: bool,
    pub ollama_version: Option<String>,
    pub nvml_up: bool,
    /// The model the agent keeps warm.
    pub watched_model: String,
    pub open_incidents: u64,
    pub models: Vec<ModelFacts>,
    pub gpus: Vec<GpuFacts>,
    /// Unix time of the tick.
    pub observed_at_seconds: f64,
}

/// Counters derived from the event stream (the watchdog keeps none of these).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// (model, reason) → count.
    pub reloads: BTreeMap<(String, String), u64>,
    /// model → count.
    pub keep_alive_overrides: BTreeMap<String, u64>,
    /// (model, result) → count; automatic warms only.
    pub rewarms: BTreeMap<(String, String), u64>,
    /// code → count.
    pub alerts_raised: BTreeMap<String, u64>,
    pub alerts_resolved: BTreeMap<String, u64>,
    /// Events a lagging counter task never saw (the counters above may be low by this much).
    pub events_missed: u64,
}

impl Counters {
    /// Zero series for the watched model, so that `increase()` sees the first event (a
    /// series that appears at 1 has no increase in Prometheus).
    pub fn init_for(&mut self, model: &str) {
        for reason in [
            "not_loaded",
            "evicted",
            "all_models_unloaded",
            "expired",
            "ollama_restarted",
            "options_drifted",
        ] {
            self.reloads
                .entry((model.to_owned(), reason.to_owned()))
                .or_insert(0);
        }
        for result in ["ok", "failed"] {
            self.rewarms
                .entry((model.to_owned(), result.to_owned()))
                .or_insert(0);
        }
        self.keep_alive_overrides
            .entry(model.to_owned())
            .or_insert(0);
    }

    pub fn bump<K: Ord + Clone>(map: &mut BTreeMap<K, u64>, key: K) {
        *map.entry(key).or_insert(0) += 1;
    }
}

/// Agent self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SelfFacts {
    /// How long the previous `/metrics` render took.
    pub last_scrape_seconds: f64,
    pub scrapes: u64,
    pub event_subscribers: u64,
    pub start_time_seconds: f64,
}
