//! Why a model is not fully on the GPU (or keeps reloading), and what to do about it.
//!
//! [`diagnose`] takes one [`Observation`] (a borrowed view of a capture bundle, or of what the
//! watchdog just read) and returns, per loaded or requested model, the placement verdict and
//! ranked [`Finding`]s with stable [`Code`]s. It is pure and cheap (microseconds: no regex, no
//! JSON, a handful of small strings), so the watchdog calls it on every tick.
//!
//! Layout: [`ctx`] works out the facts about one model once; `rules` holds one small
//! function per code; this module runs them, adds `UNEXPLAINED_OFFLOAD` when a partial or CPU
//! placement has no cause, and ranks. Codes, thresholds and the memory model are documented in
//! `docs/diagnosis.md`.

mod ctx;
mod finding;
pub mod history;
pub mod memory;
mod rules;
pub mod server;

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

pub use finding::{Code, Evidence, EvidenceValue, Finding, Severity};
pub use history::LoadHistory;

use crate::gpu::{GpuSnapshot, NvmlStatus, Runner};
use crate::ollama::env::OllamaEnv;
use crate::ollama::types::{Options, PsModel, ShowResponse, TagModel};
use crate::placement::PlacementReport;
use crate::scope::Scope;
use ctx::{Ctx, show_blob};

/// What a remote-scope diagnosis sees of the GPU: nothing (and no complaint about NVML,
/// which is this machine's and beside the point).
static NO_GPU_FACTS: GpuSnapshot = GpuSnapshot {
    nvml: NvmlStatus::Ok,
    driver_version: None,
    gpus: Vec::new(),
};

/// Everything a diagnosis reads, borrowed. Build it from a bundle with
/// [`crate::capture::CaptureBundle::observation`], or directly from live data.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// When the data was read; `/api/ps` entries that expired before it count as unloaded.
    pub captured_at: Option<OffsetDateTime>,
    pub ps: &'a [PsModel],
    /// `/api/show` per model name.
    pub show: &'a BTreeMap<String, ShowResponse>,
    /// `/api/tags` entries (weights file sizes).
    pub tags: &'a [TagModel],
    pub gpu: &'a GpuSnapshot,
    pub runners: &'a [Runner],
    pub env: &'a OllamaEnv,
    /// Models the app wants loaded; those missing from `ps` get a `NOT_LOADED` diagnosis.
    pub requested_models: &'a [String],
    /// The options the app sends (`num_ctx`, `num_gpu`, …); they override the Modelfile.
    pub request_options: Option<&'a Options>,
    /// `/api/version`; estimators and flash-attention defaults depend on it.
    pub server_version: Option<&'a str>,
    /// Loads, reloads and expiries seen over the last ticks (reload thrash, keep_alive).
    pub history: Option<&'a LoadHistory>,
    /// Where `gpu` and `runners` come from. Remote: they are ignored, whatever they hold.
    pub scope: &'a Scope,
}

/// The verdict for one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDiagnosis {
    pub model: String,
    /// Whether `/api/ps` lists it (and it has not expired).
    pub loaded: bool,
    pub placement: PlacementReport,
    /// Ranked, most likely first.
    pub findings: Vec<Finding>,
}

impl ModelDiagnosis {
    /// The most likely finding.
    pub fn top(&self) -> Option<&Finding> {
        self.findings.first()
    }

    /// The finding with `code`, if any.
    pub fn finding(&self, code: Code) -> Option<&Finding> {
        self.findings.iter().find(|f| f.code == code)
    }
}

/// Diagnoses every loaded model, then every requested model that is not loaded.
pub fn diagnose(obs: &Observation<'_>) -> Vec<ModelDiagnosis> {
    // This machine's GPU and processes say nothing about a remote server's model.
    let remote;
    let obs = if obs.scope.has_gpu_facts() {
        obs
    } else {
        remote = Observation {
            gpu: &NO_GPU_FACTS,
            runners: &[],
            ..*obs
        };
        &remote
    };
    let mut out = Vec::with_capacity(obs.ps.len() + obs.requested_models.len());
    let mut key = String::with_capacity(64);
    for ps in obs.ps {
        out.push(diagnose_model(obs, &ps.name, Some(ps), &mut key));
    }
    for name in obs.requested_models {
        let loaded = obs.ps.iter().any(|p| {
            &p.name == name
                || &p.model == name
                || show_blob(obs, name).is_some_and(|b| show_blob(obs, &p.name) == Some(b))
        });
        if !loaded {
            out.push(diagnose_model(obs, name, None, &mut key));
        }
    }
    out
}

fn not_loaded(cx: &Ctx<'_>) -> Finding {
    let mut x = Finding::new(
        Code::NotLoaded,
        Severity::Info,
        100,
        if cx.expired {
            format!("{} is being unloaded (its keep-alive expired).", cx.name)
        } else {
            format!(
                "{} is not loaded, so it is on neither the GPU nor the CPU right now.",
                cx.name
            )
        },
        "Load it with a request that sets keep_alive (Yollayah warms it with the same options it chats with).".into(),
    );
    if let Some(p) = cx.ps.and_then(|p| p.expires_at) {
        x.evidence.push(Evidence::t("expires_at", p.to_string()));
    }
    x
}

/// Runs every rule on `cx`, adds the post-pass findings and ranks them.
fn run_rules(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !cx.loaded {
        findings.push(not_loaded(cx));
        // An entry that is being unloaded is on its way out: nothing else about it is news.
        if cx.expired {
            rank(&mut findings);
            return findings;
        }
    }
    for (_, rule) in rules::RULES {
        if let Some(f) = rule(cx) {
            findings.push(f);
        }
    }
    if let Some(f) = rules::unexplained_offload(cx, &findings) {
        findings.push(f);
    }
    rank(&mut findings);
    findings
}

/// Highest score first; equal scores in [`rules::RULES`] order, so the ranking is total and
/// stable across runs.
fn rank(findings: &mut [Finding]) {
    findings.sort_by_key(|f| (std::cmp::Reverse(f.score), rules::order(f.code)));
    for (i, x) in findings.iter_mut().enumerate() {
        x.rank = i as u32 + 1;
    }
}

fn diagnose_model(
    obs: &Observation<'_>,
    name: &str,
    ps: Option<&PsModel>,
    key: &mut String,
) -> ModelDiagnosis {
    let cx = Ctx::build(obs, name, ps, key);
    let findings = run_rules(&cx);
    ModelDiagnosis {
        model: name.to_owned(),
        loaded: cx.loaded,
        placement: cx.report,
        findings,
    }
}

/// Runs the single rule for `code` on one model of `obs` (for tests of one rule alone).
/// `None` when no such rule exists (post-pass codes) or it does not apply.
pub fn run_rule(obs: &Observation<'_>, model: &str, code: Code) -> Option<Finding> {
    let ps = obs.ps.iter().find(|p| p.name == model);
    let mut key = String::new();
    let cx = Ctx::build(obs, model, ps, &mut key);
    rules::rule(code).and_then(|r| r(&cx))
}
