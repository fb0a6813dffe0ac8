//! The private control API under `/__sim/` (so the binary can be driven by scripts) and the
//! GPU/process view it shares with [`crate::SimHandle::gpu_view`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::fault::Fault;
use crate::gpu::{GpuInfo, GpuProcess, GpuSnapshot, GpuView, NvmlStatus, RunnerProcess};
use crate::handle::{Shared, SimHandle};
use crate::json::{error_response, json_response};
use crate::scenario::OtherProcess;

type S = State<Arc<Shared>>;
const MIB: u64 = 1 << 20;
/// Lets the HTTP answer leave before the connection it came on is torn down.
const CONTROL_GRACE: Duration = Duration::from_millis(50);

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/__sim/fault", post(fault))
        .route("/__sim/clear", post(clear))
        .route("/__sim/restart", post(restart))
        .route("/__sim/stop-for", post(stop_for))
        .route("/__sim/other-vram", post(other_vram))
        .route("/__sim/advance-clock", post(advance_clock))
        .route("/__sim/reply", post(reply))
        .route("/__sim/stats", get(stats))
        .route("/__sim/gpu", get(gpu))
        .route("/__sim/requests", get(requests))
}

fn accepted() -> Response {
    json_response(StatusCode::ACCEPTED, &json!({ "ok": true }))
}

async fn fault(State(shared): S, Json(f): Json<Fault>) -> Response {
    shared.lock().faults.push(f);
    accepted()
}

async fn clear(State(shared): S) -> Response {
    shared.lock().faults.clear();
    accepted()
}

async fn restart(State(shared): S) -> Response {
    let handle = SimHandle { shared };
    tokio::spawn(async move {
        tokio::time::sleep(CONTROL_GRACE).await;
        handle.restart().await;
    });
    accepted()
}

async fn stop_for(State(shared): S, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(ms) = q.get("ms").and_then(|v| v.parse::<u64>().ok()) else {
        return error_response(400, "ms query parameter (milliseconds) is required");
    };
    let handle = SimHandle { shared };
    tokio::spawn(async move {
        tokio::time::sleep(CONTROL_GRACE).await;
        handle.stop_for(Duration::from_millis(ms)).await;
    });
    accepted()
}

async fn other_vram(State(shared): S, Json(procs): Json<Vec<OtherProcess>>) -> Response {
    shared.lock().other = procs;
    accepted()
}

#[derive(Deserialize)]
struct Advance {
    #[serde(default)]
    ms: Option<u64>,
    #[serde(default)]
    secs: Option<f64>,
}

async fn advance_clock(State(shared): S, Query(q): Query<Advance>) -> Response {
    let by = match (q.ms, q.secs) {
        (Some(ms), _) => Duration::from_millis(ms),
        (None, Some(s)) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
        _ => return error_response(400, "ms or secs query parameter is required"),
    };
    shared.lock().clock_offset += by;
    accepted()
}

#[derive(Deserialize)]
struct Reply {
    text: Option<String>,
}

async fn reply(State(shared): S, Json(r): Json<Reply>) -> Response {
    shared.lock().reply = r.text;
    accepted()
}

async fn stats(State(shared): S) -> Response {
    let st = shared.lock();
    let loaded: Vec<serde_json::Value> = st
        .runners
        .iter()
        .map(|r| {
            json!({
                "name": r.model.name,
                "blob_path": r.model.blob_path,
                "num_ctx": r.opts.num_ctx,
                "gpu_layers": r.gpu_layers,
                "total_layers": r.model.block_count + 1,
                "size": r.size,
                "size_vram": r.size_vram,
                "refcount": r.refcount,
                "pid": r.pid,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "load_count": st.load_count,
            "reload_count": st.reload_count,
            "loaded": loaded,
            "requests": st.requests.len(),
            "pulls": st.pulls,
        }),
    )
}

async fn gpu(State(shared): S) -> Response {
    json_response(StatusCode::OK, &gpu_view(&shared))
}

async fn requests(State(shared): S) -> Response {
    json_response(StatusCode::OK, &shared.lock().requests)
}

/// What NVML and /proc would show now.
pub(crate) fn gpu_view(shared: &Shared) -> GpuView {
    let st = shared.lock();
    let sc = &shared.scenario;
    let nvml_down = st.faults.iter().find_map(|f| match f {
        Fault::NvmlUnavailable { reason } => Some(reason.clone()),
        _ => None,
    });
    let backend_lost = st.backend_lost();
    // Per runner: the VRAM it really holds (0 when its GPU backend is gone) and CPU load.
    let runners: Vec<(&crate::sched::Runner, u64)> = st
        .runners
        .iter()
        .map(|r| {
            let sharing: Vec<String> = shared
                .catalog
                .models
                .iter()
                .filter(|m| m.blob_path == r.model.blob_path)
                .map(|m| m.name.clone())
                .collect();
            // A runner with any layer on its GPU also holds the CUDA runtime there; one whose
            // GPU backend is gone holds nothing at all.
            let real = if backend_lost || st.ps_lies_for(r, &sharing) || r.size_vram == 0 {
                0
            } else {
                r.size_vram + sc.runtime_baseline_mib * MIB
            };
            (r, real)
        })
        .collect();

    let mut gpus = Vec::new();
    for (i, g) in sc.gpus.iter().enumerate() {
        let mut processes: Vec<GpuProcess> = Vec::new();
        let mut used = 0u64;
        for p in st.other.iter().filter(|p| p.gpu == i) {
            used += p.bytes;
            processes.push(GpuProcess {
                pid: p.pid,
                name: p.name.clone(),
                used_memory: (!p.hide_usage).then_some(p.bytes),
                kind: p.kind.clone(),
            });
        }
        let mut busy_on_gpu = false;
        for (r, real) in runners.iter().filter(|(r, _)| r.gpu == Some(i)) {
            used += real;
            busy_on_gpu |= r.generating > 0 && *real > 0;
            processes.push(GpuProcess {
                pid: r.pid,
                name: "llama-server".into(),
                used_memory: Some(*real),
                kind: "compute".into(),
            });
        }
        let used = used.min(g.memory_total);
        gpus.push(GpuInfo {
            index: i as u32,
            name: g.name.clone(),
            uuid: Some(g.uuid.clone().unwrap_or_else(|| {
                format!(
                    "GPU-{}",
                    &crate::catalog::fake_hex(&format!("gpu{i}"))[..32]
                )
            })),
            memory_total: g.memory_total,
            memory_used: used,
            memory_free: g.memory_total - used,
            utilization_gpu: Some(if busy_on_gpu { 96 } else { 0 }),
            utilization_memory: Some(if busy_on_gpu { 41 } else { 0 }),
            processes,
        });
    }
    let nvml = match (nvml_down, sc.nvml_unavailable.clone(), sc.gpus.is_empty()) {
        (Some(reason), _, _) | (None, Some(reason), _) => NvmlStatus::Unavailable { reason },
        (None, None, true) => NvmlStatus::Unavailable {
            reason: "libnvidia-ml.so.1: cannot open shared object file: No such file or directory"
                .into(),
        },
        (None, None, false) => NvmlStatus::Ok,
    };
    let unavailable = matches!(nvml, NvmlStatus::Unavailable { .. });
    let gpu = GpuSnapshot {
        nvml,
        driver_version: if unavailable {
            None
        } else {
            sc.driver_version.clone()
        },
        gpus: if unavailable { Vec::new() } else { gpus },
    };

    let mut procs: Vec<RunnerProcess> = runners
        .iter()
        .map(|(r, real)| {
            let cpu_share = if r.size == 0 {
                1.0
            } else {
                1.0 - ((*real).min(r.size_vram) as f64 / r.size as f64)
            };
            let cpu_percent = if r.generating > 0 {
                if cpu_share > 0.01 {
                    100.0 + 700.0 * cpu_share
                } else {
                    99.0
                }
            } else {
                0.3
            };
            let mut cmdline: Vec<String> = [
                "/usr/local/lib/ollama/llama-server",
                "--model",
                &r.model.blob_path,
                "--port",
                &r.port.to_string(),
                "--host",
                "127.0.0.1",
                "--no-webui",
                "--offline",
                "-c",
                &(r.opts.num_ctx * sc.parallel).to_string(),
                "-np",
                &sc.parallel.to_string(),
                "--log-verbosity",
                "4",
                "--no-log-prefix",
                "--no-log-timestamps",
                "--flash-attn",
                "auto",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if r.opts.num_gpu >= 0 {
                cmdline.extend(["-ngl".to_string(), r.opts.num_gpu.to_string()]);
            }
            RunnerProcess {
                pid: r.pid,
                exe: "llama-server".into(),
                model_path: Some(r.model.blob_path.clone()),
                cmdline,
                cpu_percent,
                rss_bytes: r.size.saturating_sub((*real).min(r.size_vram)) + 310 * MIB,
            }
        })
        .collect();
    if sc.discovery_process {
        procs.push(RunnerProcess {
            pid: 40_001,
            exe: "llama-server".into(),
            model_path: None,
            cmdline: [
                "/usr/local/lib/ollama/llama-server",
                "--port",
                "39117",
                "--host",
                "127.0.0.1",
                "--no-webui",
                "--offline",
                "--verbose",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            cpu_percent: 12.0,
            rss_bytes: 48 * MIB,
        });
    }
    GpuView {
        gpu,
        runners: procs,
    }
}
