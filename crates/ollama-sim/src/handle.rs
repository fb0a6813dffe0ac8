//! The simulator's shared state and [`SimHandle`], the control surface tests use: start, stop,
//! restart, faults, the simulated clock and counters.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalog::{Catalog, Model};
use crate::duration::{KeepAlive, parse_env_keep_alive};
use crate::error::Result;
use crate::fault::{Fault, RecordedRequest};
use crate::gpu::GpuView;
use crate::scenario::{OtherProcess, Scenario};
use crate::sched::State;
use crate::server::Running;

/// State shared by the handle and every request handler.
pub(crate) struct Shared {
    pub scenario: Scenario,
    pub catalog: Catalog,
    /// What `/api/pull` can fetch beyond the catalog.
    pub registry: Catalog,
    pub default_keep_alive: KeepAlive,
    epoch: std::time::Instant,
    state: Mutex<State>,
    pub addr: SocketAddr,
    server: tokio::sync::Mutex<Option<Running>>,
}

impl Shared {
    /// Locks the state and applies lazy keep-alive expiry against the simulated clock.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.sim_now(&st);
        st.expire(now);
        st
    }

    /// An installed model: from the catalog, or pulled since start.
    pub fn find_model(&self, name: &str) -> Option<Model> {
        if let Some(m) = self.catalog.get(name) {
            return Some(m.clone());
        }
        let n = crate::catalog::normalize_name(name);
        self.lock().pulled.iter().find(|m| m.name == n).cloned()
    }

    /// Every installed model, catalog first, then pulled ones.
    pub fn installed(&self) -> Vec<Model> {
        let mut all = self.catalog.models.clone();
        all.extend(self.lock().pulled.iter().cloned());
        all
    }

    /// Simulated monotonic time: real elapsed time plus every `advance_clock`.
    pub fn sim_now(&self, st: &State) -> Duration {
        self.epoch.elapsed() + st.clock_offset
    }

    /// Simulated wall-clock "now".
    pub fn wall_now(&self, st: &State) -> OffsetDateTime {
        OffsetDateTime::now_utc() + st.clock_offset
    }

    /// RFC 3339 (nanosecond precision, trailing zeros trimmed) of simulated wall time `at`
    /// (a simulated monotonic instant).
    pub fn wall_at(&self, st: &State, at: Duration) -> OffsetDateTime {
        let now = self.sim_now(st);
        let wall = self.wall_now(st);
        if at >= now {
            wall + (at - now)
        } else {
            wall - (now - at)
        }
    }
}

/// RFC 3339 like Go's `time.RFC3339Nano`.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Cheap, clonable handle to a running simulator.
#[derive(Clone)]
pub struct SimHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.shared.addr)
            .finish()
    }
}

/// Starts a simulator on an ephemeral loopback port.
pub async fn start(scenario: Scenario) -> Result<SimHandle> {
    start_on(scenario, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts a simulator on `addr` (port 0 = ephemeral).
pub async fn start_on(scenario: Scenario, addr: SocketAddr) -> Result<SimHandle> {
    let catalog = Catalog::build(&scenario)?;
    let registry = Catalog::build_registry(&scenario)?;
    let default_keep_alive = parse_env_keep_alive(&scenario.default_keep_alive)
        .unwrap_or(KeepAlive::For(Duration::from_secs(300)));
    let listener = crate::server::bind(addr).await?;
    let addr = listener
        .local_addr()
        .map_err(|source| crate::error::SimError::Bind { addr, source })?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(&scenario)),
        scenario,
        catalog,
        registry,
        default_keep_alive,
        epoch: std::time::Instant::now(),
        addr,
        server: tokio::sync::Mutex::new(None),
    });
    let running = crate::server::serve(shared.clone(), listener);
    *shared.server.lock().await = Some(running);
    tracing::info!(%addr, "ollama-sim listening");
    Ok(SimHandle { shared })
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Loads of an already-loaded model key caused by differing load-time options.
    pub fn reload_count(&self) -> u64 {
        self.shared.lock().reload_count
    }

    /// Every runner start.
    pub fn load_count(&self) -> u64 {
        self.shared.lock().load_count
    }

    /// Every `/api/*` request received so far (method, path, parsed body).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Stages a fault (see [`Fault`] for which are one-shot).
    pub fn fault(&self, f: Fault) {
        self.shared.lock().faults.push(f);
    }

    /// Removes every staged fault and fault state.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Replaces the VRAM held by non-Ollama processes.
    pub fn set_other_vram(&self, procs: Vec<OtherProcess>) {
        self.shared.lock().other = procs;
    }

    /// What NVML and /proc would show now (same as `GET /__sim/gpu`).
    pub fn gpu_view(&self) -> GpuView {
        crate::control::gpu_view(&self.shared)
    }

    /// Moves the simulated clock forward; keep-alive expiry is evaluated against it.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.lock().clock_offset += by;
    }

    /// Makes every following generation answer `text` (overrides the scenario reply).
    pub fn set_reply(&self, text: impl Into<String>) {
        self.shared.lock().reply = Some(text.into());
    }

    /// Names of the models pulled through `/api/pull` since start.
    pub fn pulled_models(&self) -> Vec<String> {
        self.shared
            .lock()
            .pulled
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }

    /// How the `/api/pull` requests went so far (active, completed, failed, abandoned).
    pub fn pull_counts(&self) -> crate::pull::PullCounts {
        self.shared.lock().pulls
    }

    /// Names of the models currently loaded (as `/api/ps` would list them).
    pub fn loaded_models(&self) -> Vec<String> {
        self.shared
            .lock()
            .runners
            .iter()
            .map(|r| r.model.name.clone())
            .collect()
    }

    /// The runner process of `model` dies and a new one starts for the same blob: a new pid,
    /// `/api/ps` unchanged. Returns `(old pid, new pid)`, or `None` when it is not loaded.
    pub fn replace_runner(&self, model: &str) -> Option<(u32, u32)> {
        let mut st = self.shared.lock();
        st.replace_runner_pid(model)
    }

    /// The server goes away: the listener closes and open connections are dropped.
    pub async fn stop(&self) {
        if let Some(running) = self.shared.server.lock().await.take() {
            running.stop().await;
            tracing::info!("ollama-sim stopped");
        }
    }

    /// Stop, unload everything, listen again on the same port (an Ollama restart).
    pub async fn restart(&self) {
        let mut slot = self.shared.server.lock().await;
        if let Some(running) = slot.take() {
            running.stop().await;
        }
        self.shared.lock().runners.clear();
        // The port was just released; retry briefly in case the OS is slow to free it.
        let mut last_err = None;
        for _ in 0..50 {
            match crate::server::bind(self.shared.addr).await {
                Ok(listener) => {
                    *slot = Some(crate::server::serve(self.shared.clone(), listener));
                    tracing::info!(addr = %self.shared.addr, "ollama-sim restarted");
                    return;
                }
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        if let Some(e) = last_err {
            tracing::error!(error = %e, "ollama-sim could not listen again after restart");
        }
    }

    /// Stops for `pause`, then restarts (everything unloaded).
    pub async fn stop_for(&self, pause: Duration) {
        self.stop().await;
        tokio::time::sleep(pause).await;
        self.restart().await;
    }

    /// Whether the server is currently listening.
    pub async fn is_running(&self) -> bool {
        self.shared.server.lock().await.is_some()
    }

    /// Stops the server for good.
    pub async fn shutdown(self) {
        self.stop().await;
    }
}
