//! What the watchdog publishes. The tray, the notifier, the chat window and `yollayah watch`
//! all render these and nothing else: the GUI never polls and never decides.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use crate::alerts::Alert;
use crate::alerts::{AlertAction, FixAction};
use crate::diagnose::ModelDiagnosis;
use crate::fit::FitMismatch;
use crate::gpu::NvmlStatus;
use crate::placement::{Placement, UnverifiedReason};
use crate::scope::Scope;
use crate::warm::WarmReason;

/// One event on the watchdog's broadcast channel.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The full state after a tick.
    Snapshot(Arc<Snapshot>),
    /// Ollama stopped answering (published once per outage).
    OllamaDown { url: String, reason: String },
    /// Ollama answers again (or for the first time).
    OllamaUp { version: String },
    /// A loaded model's effective placement changed (or it was just loaded).
    PlacementChanged {
        model: String,
        from: Option<Placement>,
        to: Placement,
    },
    /// Keep-warm activity.
    Warm(WarmEvent),
    /// A new incident; `notify` says whether to show a desktop notification.
    AlertRaised(Alert),
    /// An incident ended; replaces the notification of the raise with the same incident id.
    AlertResolved(Alert),
    /// A model loaded somewhere else than the picker predicted (published once per load; the
    /// model's diagnosis carries a `FIT_MISPREDICTED` finding while it stays loaded).
    FitMispredicted(FitMismatch),
}

/// Keep-warm activity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WarmEvent {
    Started {
        model: String,
        reason: WarmReason,
    },
    Finished {
        model: String,
        load_ms: u64,
    },
    Failed {
        model: String,
        error: String,
        retry: bool,
    },
    Reasserted {
        model: String,
        expires_in_s: i64,
    },
    Unloaded {
        model: String,
    },
    /// Somebody else reloaded the model with another context size than the one the user
    /// pinned. Published once per watchdog; `advice` names the server-side fix.
    OptionsDrifted {
        model: String,
        expected_num_ctx: u64,
        loaded_num_ctx: u64,
        advice: String,
    },
    /// Another model keeps evicting ours; re-warming is paused until it goes.
    Contention {
        model: String,
        with: Vec<String>,
    },
}

/// Ollama's reachability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OllamaState {
    /// Not asked yet.
    Unknown,
    Up {
        version: String,
    },
    Down {
        reason: String,
    },
}

/// The one-word state of the configured model, as the tray icon shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    Gpu,
    Partial {
        cpu_pct: u8,
    },
    Cpu,
    Warming,
    NotLoaded,
    Down,
    Unknown,
    /// Ollama claims the GPU but nothing could check it (remote server, no runner found);
    /// never shown as a clean "on the GPU".
    Unverified {
        reason: UnverifiedReason,
    },
}

impl Verdict {
    /// The verdict of a loaded model with this effective placement: the one mapping the
    /// headline, exit code, tray icon and alert all derive from.
    pub fn from_placement(p: Placement) -> Verdict {
        match p {
            Placement::Gpu => Verdict::Gpu,
            Placement::Partial { cpu_pct } => Verdict::Partial { cpu_pct },
            Placement::Cpu => Verdict::Cpu,
            Placement::Unknown => Verdict::Unknown,
            Placement::Unverified { reason } => Verdict::Unverified { reason },
        }
    }
}

/// One GPU, summarised for the status line and the sparkline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuSummary {
    pub name: String,
    pub memory_used: u64,
    pub memory_total: u64,
    pub utilization_gpu: Option<u32>,
}

/// Everything a tick saw, ready to render.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub url: String,
    /// Where the GPU facts come from (`local`, `agent`, `remote`).
    pub scope: Scope,
    pub ollama: OllamaState,
    /// The configured model.
    pub model: String,
    pub verdict: Verdict,
    /// "llama3.2:3b · 100% GPU · VRAM 3.4/12.0 GiB".
    pub headline: String,
    /// The configured model's state in plain words (cause + fix, or why the verdict is
    /// unchecked). `None` only when it runs fully on the GPU and the GPU confirmed it, so a
    /// view may then say "no problems".
    pub advice: Option<String>,
    /// What can be done about it now (e.g. reload it on the GPU when it would fit).
    pub fixes: Vec<FixAction>,
    /// The per-slot context the configured model is loaded with (`/api/ps` `context_length`).
    pub loaded_num_ctx: Option<u64>,
    pub diagnoses: Vec<ModelDiagnosis>,
    pub gpus: Vec<GpuSummary>,
    pub nvml: NvmlStatus,
    pub warming: bool,
    pub muted: bool,
    pub open_incidents: usize,
}

impl Snapshot {
    /// The state before the first tick.
    pub fn initial(url: &str, model: &str) -> Self {
        Snapshot {
            at: OffsetDateTime::now_utc(),
            url: url.to_owned(),
            scope: Scope::Local,
            ollama: OllamaState::Unknown,
            model: model.to_owned(),
            verdict: Verdict::Unknown,
            headline: format!("{model} · checking…"),
            advice: None,
            fixes: Vec::new(),
            loaded_num_ctx: None,
            diagnoses: Vec::new(),
            gpus: Vec::new(),
            nvml: NvmlStatus::Unavailable {
                reason: "not probed yet".into(),
            },
            warming: false,
            muted: false,
            open_incidents: 0,
        }
    }

    /// The diagnosis of the configured model, if it has one.
    pub fn target(&self) -> Option<&ModelDiagnosis> {
        self.diagnoses.iter().find(|d| d.model == self.model)
    }
}

impl From<AlertAction> for Event {
    /// The event that publishes an alert policy's decision.
    fn from(action: AlertAction) -> Self {
        match action {
            AlertAction::Raise(a) => Event::AlertRaised(a),
            AlertAction::Resolve(a) => Event::AlertResolved(a),
        }
    }
}
