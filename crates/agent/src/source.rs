//! The one place that reads core types: turns the watchdog's snapshot, the last tick's capture
//! and its events into [`Facts`] and [`Counters`]. When core's types change, this file adapts.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;
use yollayah_core::capture::CaptureBundle;
use yollayah_core::events::{Event, OllamaState, Snapshot, WarmEvent};
use yollayah_core::gpu::NvmlStatus;
use yollayah_core::placement::Placement;
use yollayah_core::warm::WarmReason;

use crate::facts::{
    Counters, Facts, GpuFacts, ModelFacts, PlacementState, ProcessFacts, TOP_PROCESSES,
};

/// Expiry further away than this is "forever" (Ollama reports ~292 years for keep_alive -1).
const FOREVER_S: f64 = 10.0 * 365.0 * 86400.0;

/// The facts of one tick. `bundle` is what the same tick read (sizes, expiry, GPU processes);
/// without it only the snapshot's fields are filled.
pub fn facts(snapshot: &Snapshot, bundle: Option<&CaptureBundle>) -> Facts {
    let ollama_up = ollama_up(snapshot);
    let ollama_version = match &snapshot.ollama {
        OllamaState::Up { version } => Some(version.clone()),
        _ => None,
    };
    let now = snapshot.at;
    let mut models = Vec::with_capacity(snapshot.diagnoses.len());
    for d in &snapshot.diagnoses {
        let ps = bundle.and_then(|b| b.ps.models.iter().find(|m| m.name == d.model));
        let p = &d.placement;
        let placement = placement_state(p.placement, p.nvml_agrees);
        models.push(ModelFacts {
            name: d.model.clone(),
            loaded: d.loaded,
            placement,
            cpu_share: p.cpu_share_pct.map(|c| f64::from(c) / 100.0),
            size_bytes: ps.map(|m| m.size),
            vram_bytes: ps.map(|m| m.size_vram),
            runner_gpu_bytes: p.runner_gpu_bytes,
            context_length: ps.and_then(|m| m.context_length),
            expires_in_seconds: ps
                .and_then(|m| m.expires_at)
                .map(|e| (e - now).as_seconds_f64())
                .filter(|s| *s < FOREVER_S),
            contradiction: p.contradiction,
        });
    }
    let runner_pids: HashSet<u32> = bundle
        .map(|b| b.runners.iter().map(|r| r.pid).collect())
        .unwrap_or_default();
    let gpus = match bundle {
        Some(b) => b
            .gpu
            .gpus
            .iter()
            .map(|g| {
                // One row per pid: a process listed as compute and graphics is one user.
                let mut by_pid: HashMap<u32, (String, u64)> = HashMap::new();
                for p in &g.processes {
                    if runner_pids.contains(&p.pid) {
                        continue;
                    }
                    let Some(bytes) = p.used_memory else { continue };
                    let e = by_pid.entry(p.pid).or_insert_with(|| (p.name.clone(), 0));
                    e.1 = e.1.max(bytes);
                }
                let mut top: Vec<ProcessFacts> = by_pid
                    .into_iter()
                    .map(|(pid, (name, bytes))| ProcessFacts { pid, name, bytes })
                    .collect();
                top.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.pid.cmp(&b.pid)));
                top.truncate(TOP_PROCESSES);
                GpuFacts {
                    index: g.index,
                    name: g.name.clone(),
                    uuid: g.uuid.clone().unwrap_or_default(),
                    memory_used_bytes: g.memory_used,
                    memory_total_bytes: g.memory_total,
                    utilization: g.utilization_gpu.map(|u| f64::from(u) / 100.0),
                    top_processes: top,
                }
            })
            .collect(),
        None => snapshot
            .gpus
            .iter()
            .enumerate()
            .map(|(i, g)| GpuFacts {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                name: g.name.clone(),
                uuid: String::new(),
                memory_used_bytes: g.memory_used,
                memory_total_bytes: g.memory_total,
                utilization: g.utilization_gpu.map(|u| f64::from(u) / 100.0),
                top_processes: Vec::new(),
            })
            .collect(),
    };
    Facts {
        observed: !matches!(snapshot.ollama, OllamaState::Unknown),
        ollama_up,
        ollama_version,
        nvml_up: snapshot.nvml == NvmlStatus::Ok,
        watched_model: snapshot.model.clone(),
        open_incidents: snapshot.open_incidents as u64,
        models,
        gpus,
        observed_at_seconds: unix_seconds(now),
    }
}

/// The state-set member of a placement. "Unverified" = Ollama could not tell, or NVML could
/// not check a placement that claims GPU memory.
pub fn placement_state(p: Placement, nvml_agrees: Option<bool>) -> PlacementState {
    match p {
        Placement::Gpu | Placement::Partial { .. } if nvml_agrees.is_none() => {
            PlacementState::Unverified
        }
        Placement::Gpu => PlacementState::Gpu,
        Placement::Partial { .. } => PlacementState::Partial,
        Placement::Cpu => PlacementState::Cpu,
        Placement::Unknown | Placement::Unverified { .. } => PlacementState::Unverified,
    }
}

fn unix_seconds(t: OffsetDateTime) -> f64 {
    (t - OffsetDateTime::UNIX_EPOCH).as_seconds_f64()
}

/// The counter-relevant memory of [`count`]: whether each model's warm in flight was started
/// by the watchdog itself.
#[derive(Debug, Default)]
pub struct CountState {
    automatic: HashMap<String, bool>,
    /// Code of each open incident: a resolution may carry no code of its own, and raised and
    /// resolved must pair up by code.
    open: HashMap<u64, String>,
}

/// Updates the counters from one event.
pub fn count(counters: &mut Counters, state: &mut CountState, event: &Event) {
    match event {
        Event::Warm(w) => match w {
            WarmEvent::Started { model, reason } => {
                let auto = !matches!(reason, WarmReason::Requested);
                if auto {
                    Counters::bump(
                        &mut counters.reloads,
                        (model.clone(), reason_label(reason).to_owned()),
                    );
                }
                state.automatic.insert(model.clone(), auto);
            }
            WarmEvent::Finished { model, .. } => {
                if state.automatic.remove(model) == Some(true) {
                    Counters::bump(&mut counters.rewarms, (model.clone(), "ok".to_owned()));
                }
            }
            WarmEvent::Failed { model, .. } => {
                if state.automatic.remove(model) == Some(true) {
                    Counters::bump(&mut counters.rewarms, (model.clone(), "failed".to_owned()));
                }
            }
            WarmEvent::Reasserted { model, .. } => {
                Counters::bump(&mut counters.keep_alive_overrides, model.clone());
            }
            WarmEvent::OptionsDrifted { model, .. } => {
                Counters::bump(
                    &mut counters.reloads,
                    (model.clone(), "options_drifted".to_owned()),
                );
            }
            WarmEvent::Unloaded { .. } | WarmEvent::Contention { .. } => {}
        },
        Event::AlertRaised(a) => {
            let code = code_label(a.code);
            // Zero first, so the resolved series exists before the first resolution.
            counters.alerts_resolved.entry(code.clone()).or_insert(0);
            Counters::bump(&mut counters.alerts_raised, code.clone());
            state.open.insert(a.incident.0, code);
        }
        Event::AlertResolved(a) => {
            let code = state
                .open
                .remove(&a.incident.0)
                .unwrap_or_else(|| code_label(a.code));
            Counters::bump(&mut counters.alerts_resolved, code);
        }
        Event::Snapshot(_)
        | Event::OllamaDown { .. }
        | Event::OllamaUp { .. }
        | Event::PlacementChanged { .. }
        | Event::FitMispredicted(_) => {}
    }
}

fn code_label(code: Option<yollayah_core::diagnose::Code>) -> String {
    code.map_or_else(|| "none".to_owned(), |c| c.as_str().to_owned())
}

fn reason_label(r: &WarmReason) -> &'static str {
    match r {
        WarmReason::Requested => "requested",
        WarmReason::NotLoaded => "not_loaded",
        WarmReason::Evicted { .. } => "evicted",
        WarmReason::AllModelsUnloaded => "all_models_unloaded",
        WarmReason::Expired => "expired",
        WarmReason::OllamaRestarted => "ollama_restarted",
    }
}

/// Whether an event is a snapshot (the stream's resync unit).
pub fn is_snapshot(event: &Event) -> bool {
    matches!(event, Event::Snapshot(_))
}

/// The snapshot event of the latest state, for a new or lagging subscriber.
pub fn snapshot_event(snapshot: std::sync::Arc<Snapshot>) -> Event {
    Event::Snapshot(snapshot)
}

/// Whether the snapshot saw Ollama answer.
pub fn ollama_up(snapshot: &Snapshot) -> bool {
    matches!(snapshot.ollama, OllamaState::Up { .. })
}

/// The watched model's placement state and CPU share, when it is loaded.
pub fn watched_placement(snapshot: &Snapshot) -> (Option<PlacementState>, Option<u8>) {
    match snapshot.target().filter(|d| d.loaded) {
        Some(d) => (
            Some(placement_state(
                d.placement.placement,
                d.placement.nvml_agrees,
            )),
            d.placement.cpu_share_pct,
        ),
        None => (None, None),
    }
}
