//! Where GPU and process facts come from: the real machine (NVML + /proc), a recorded
//! snapshot, or a running `ollama-sim`, whose private `/__sim/gpu` endpoint reports what NVML
//! and /proc would show on the simulated machine. The simulator source is how the demo mode
//! and the end-to-end tests feed the real placement and diagnosis code; it is the only
//! stand-in, and it sits exactly at the system edge (the driver and the process table).

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::gpu::{GpuProbe, GpuSnapshot, NvmlProbe, Runner, RunnerScanner, SnapshotProbe};
use crate::ollama::env::{OllamaEnv, ServerEnv};

/// GPU and runner facts of one moment.
#[derive(Debug, Clone)]
pub struct MachineView {
    pub gpu: GpuSnapshot,
    pub runners: Vec<Runner>,
    /// Whether the whole process table was scanned for this view (asked for, or because a
    /// known runner vanished or changed its model).
    pub full_scan: bool,
    /// The running `ollama serve`'s environment (read once per server pid), or why not.
    pub server_env: ServerEnv,
}

/// How long [`Machine::observe_sampled`] waits between its two process samples: CPU use is
/// the difference of two readings, and sysinfo needs at least 200 ms between them.
pub const CPU_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// A source of [`MachineView`]s.
pub enum Machine {
    /// This computer: NVML (lazily initialised, "unavailable" without a driver) and the
    /// process table.
    Local {
        probe: Box<NvmlProbe>,
        scanner: Box<RunnerScanner>,
    },
    /// A fixed snapshot (offline diagnosis, tests).
    Recorded {
        probe: SnapshotProbe,
        runners: Vec<Runner>,
    },
    /// An `ollama-sim` at `base_url`. Its runner list stands in for the process table, and is
    /// read the way the real one is: between full scans only the runners already known are
    /// reported, so the watchdog's rescan rules are exercised against the simulator too.
    Simulator {
        http: reqwest::Client,
        url: String,
        known: Vec<Runner>,
    },
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Machine::Local { .. } => f.write_str("Machine::Local"),
            Machine::Recorded { .. } => f.write_str("Machine::Recorded"),
            Machine::Simulator { url, .. } => write!(f, "Machine::Simulator({url})"),
        }
    }
}

#[derive(Deserialize)]
struct SimGpu {
    gpu: GpuSnapshot,
    #[serde(default)]
    runners: Vec<Runner>,
}

impl Machine {
    /// The real machine.
    pub fn local() -> Self {
        Machine::Local {
            probe: Box::new(NvmlProbe::new()),
            scanner: Box::new(RunnerScanner::new()),
        }
    }

    /// A recorded GPU snapshot (JSON in the format of `docs/capture-format.md`), no runners.
    pub fn recorded_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Ok(Machine::Recorded {
            probe: SnapshotProbe::from_file(path)?,
            runners: Vec::new(),
        })
    }

    /// The simulated machine behind an `ollama-sim` base URL.
    pub fn simulator(base_url: &str) -> Result<Self> {
        crate::ollama::client::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(Machine::Simulator {
            http,
            url: format!("{}/__sim/gpu", base_url.trim_end_matches('/')),
            known: Vec::new(),
        })
    }

    /// One view. Never fails: a source that cannot answer reports NVML as unavailable with
    /// the reason, which the diagnosis turns into `NVML_UNAVAILABLE`.
    ///
    /// `rescan` asks for a full scan of the process table (new runners appear only when models
    /// load); otherwise only the runners already known are refreshed, which is what keeps an
    /// idle watchdog tick cheap.
    pub async fn observe(&mut self, rescan: bool) -> MachineView {
        match self {
            Machine::Local { probe, scanner } => {
                let before = scanner.full_scans();
                let runners = if rescan {
                    scanner.scan()
                } else {
                    scanner.refresh_known()
                };
                MachineView {
                    gpu: probe.snapshot(),
                    runners,
                    full_scan: scanner.full_scans() != before,
                    server_env: scanner.server_env().clone(),
                }
            }
            Machine::Recorded { probe, runners } => MachineView {
                gpu: probe.snapshot(),
                runners: runners.clone(),
                full_scan: rescan,
                server_env: ServerEnv::Missing("a recorded snapshot has no processes".to_owned()),
            },
            Machine::Simulator { http, url, known } => match fetch_sim(http, url).await {
                Ok(s) => {
                    let mut runners = s.runners;
                    let mut full_scan = rescan;
                    if !rescan {
                        let visible: Vec<Runner> = runners
                            .iter()
                            .filter(|r| known.iter().any(|k| k.pid == r.pid))
                            .cloned()
                            .collect();
                        if crate::gpu::runner_identity_changed(known, &visible) {
                            full_scan = true;
                        } else {
                            runners = visible;
                        }
                    }
                    known.clone_from(&runners);
                    MachineView {
                        gpu: s.gpu,
                        runners,
                        full_scan,
                        server_env: ServerEnv::Missing(
                            "the simulated machine has no server process".to_owned(),
                        ),
                    }
                }
                Err(e) => MachineView {
                    gpu: GpuSnapshot::unavailable(format!("simulator GPU view: {e}")),
                    runners: Vec::new(),
                    full_scan: false,
                    server_env: ServerEnv::Missing(
                        "the simulated machine has no server process".to_owned(),
                    ),
                },
            },
        }
    }

    /// A view for a one-shot report (`doctor`): a full scan, then a second sample of the
    /// runners [`CPU_SAMPLE_INTERVAL`] later, so their CPU use is measured over an interval
    /// instead of reading 0 from a single sample.
    pub async fn observe_sampled(&mut self) -> MachineView {
        let first = self.observe(true).await;
        if !matches!(self, Machine::Local { .. }) || first.runners.is_empty() {
            return first;
        }
        tokio::time::sleep(CPU_SAMPLE_INTERVAL).await;
        let mut second = self.observe(false).await;
        second.full_scan = true;
        second
    }
}

impl MachineView {
    /// No facts: for a remote server, whose GPU this machine cannot see.
    pub fn none(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        MachineView {
            server_env: ServerEnv::Missing(reason.clone()),
            gpu: GpuSnapshot::unavailable(reason),
            runners: Vec::new(),
            full_scan: false,
        }
    }

    /// The environment to diagnose with: the server's where it was read, else `ours` marked
    /// with why.
    pub fn env_or(&self, ours: &OllamaEnv) -> OllamaEnv {
        self.server_env.or_ours(ours)
    }
}

async fn fetch_sim(http: &reqwest::Client, url: &str) -> Result<SimGpu> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| Error::Http(e.to_string()))?;
    let bytes = resp.bytes().await.map_err(|e| Error::Http(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::InvalidResponse {
        what: "simulator GPU view".into(),
        reason: e.to_string(),
    })
}
