//! Where GPU and process facts come from: the real machine (NVML + /proc), a recorded
//! snapshot, or a running `ollama-sim`, whose private `/__sim/gpu` endpoint reports what NVML
//! and /proc would show on the simulated machine. The simulator source is how the demo mode
//! and the end-to-end tests feed the real placement and diagnosis code; it is the only
//! stand-in, and it sits exactly at the system edge (the driver and the process table).

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::gpu::{GpuProbe, GpuSnapshot, NvmlProbe, Runner, RunnerScanner, SnapshotProbe};

/// GPU and runner facts of one moment.
#[derive(Debug, Clone)]
pub struct MachineView {
    pub gpu: GpuSnapshot,
    pub runners: Vec<Runner>,
}

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
    /// An `ollama-sim` at `base_url`.
    Simulator { http: reqwest::Client, url: String },
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
            Machine::Local { probe, scanner } => MachineView {
                gpu: probe.snapshot(),
                runners: if rescan {
                    scanner.scan()
                } else {
                    scanner.refresh_known()
                },
            },
            Machine::Recorded { probe, runners } => MachineView {
                gpu: probe.snapshot(),
                runners: runners.clone(),
            },
            Machine::Simulator { http, url } => match fetch_sim(http, url).await {
                Ok(s) => MachineView {
                    gpu: s.gpu,
                    runners: s.runners,
                },
                Err(e) => MachineView {
                    gpu: GpuSnapshot::unavailable(format!("simulator GPU view: {e}")),
                    runners: Vec::new(),
                },
            },
        }
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
