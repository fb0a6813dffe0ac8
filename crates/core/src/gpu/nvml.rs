//! The NVML probe: memory, utilisation and per-process memory of every NVIDIA GPU.
//!
//! NVML is loaded lazily on the first snapshot, so a machine without the driver pays nothing
//! until asked and then gets `nvml: unavailable` with the loader's own message. After an error
//! that means the driver state changed under us (GPU lost, driver reset, suspend/resume) the
//! handle is dropped and initialisation is retried on a later snapshot, at most once per
//! [`RETRY_INTERVAL`], so a broken driver cannot turn every tick into a slow `dlopen`.
//!
//! Static per-GPU facts (name, UUID) and process names are cached: they are the expensive
//! calls, and the watchdog's budget for a whole tick is one millisecond.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nvml_wrapper::Nvml;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;

use crate::gpu::GpuProbe;
use crate::gpu::snapshot::{GpuInfo, GpuProcess, GpuSnapshot, NvmlStatus, ProcessKind};

/// Minimum time between two attempts to (re)initialise NVML after a failure.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// A cached process name is re-read after this long, so a reused pid is renamed soon.
const NAME_TTL: Duration = Duration::from_secs(10);

/// Probes NVIDIA GPUs through NVML. Cheap to construct; NVML is loaded on first use.
pub struct NvmlProbe {
    state: Mutex<State>,
}

struct Static {
    name: String,
    uuid: Option<String>,
}

struct Loaded {
    nvml: Nvml,
    driver_version: Option<String>,
    devices: Vec<Static>,
}

#[derive(Default)]
struct State {
    loaded: Option<Loaded>,
    last_failure: Option<(Instant, String)>,
    names: HashMap<u32, (String, Instant)>,
}

impl Default for NvmlProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl NvmlProbe {
    /// A probe that has not touched NVML yet.
    pub fn new() -> Self {
        NvmlProbe {
            state: Mutex::new(State::default()),
        }
    }
}

impl GpuProbe for NvmlProbe {
    fn snapshot(&self) -> GpuSnapshot {
        // A poisoned lock only means an earlier snapshot panicked half-way; the cached state
        // is still usable, and refusing to probe forever would be worse.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.snapshot()
    }
}

impl State {
    fn snapshot(&mut self) -> GpuSnapshot {
        if self.loaded.is_none() {
            if let Some((at, reason)) = &self.last_failure {
                if at.elapsed() < RETRY_INTERVAL {
                    return GpuSnapshot::unavailable(reason.clone());
                }
            }
            match load() {
                Ok(l) => {
                    self.loaded = Some(l);
                    self.last_failure = None;
                }
                Err(reason) => {
                    self.last_failure = Some((Instant::now(), reason.clone()));
                    return GpuSnapshot::unavailable(reason);
                }
            }
        }
        let Some(loaded) = &self.loaded else {
            return GpuSnapshot::unavailable("NVML not initialised");
        };
        match query(loaded, &mut self.names) {
            Ok(gpus) => GpuSnapshot {
                nvml: NvmlStatus::Ok,
                driver_version: loaded.driver_version.clone(),
                gpus,
            },
            Err(e) => {
                let reason = format!("NVML query failed: {e}");
                if needs_reinit(&e) {
                    // Dropping `Nvml` calls nvmlShutdown; the next snapshot after the retry
                    // interval initialises afresh (driver reset, resume from suspend).
                    self.loaded = None;
                    self.last_failure = Some((Instant::now(), reason.clone()));
                    self.names.clear();
                }
                GpuSnapshot::unavailable(reason)
            }
        }
    }
}

/// Errors after which the handle is useless until NVML is initialised again.
fn needs_reinit(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::GpuLost
            | NvmlError::Uninitialized
            | NvmlError::Unknown
            | NvmlError::DriverNotLoaded
            | NvmlError::ResetRequired
            | NvmlError::LibraryNotFound
    )
}

fn load() -> Result<Loaded, String> {
    // The loader's message (e.g. "libnvidia-ml.so.1: cannot open shared object file") is what
    // a user needs to see, so it is passed through rather than summarised.
    let nvml = Nvml::init().map_err(|e| init_error_reason(&e))?;
    let count = nvml.device_count().map_err(|e| e.to_string())?;
    let mut devices = Vec::with_capacity(count as usize);
    for i in 0..count {
        let d = nvml.device_by_index(i).map_err(|e| e.to_string())?;
        devices.push(Static {
            name: d.name().unwrap_or_else(|_| format!("GPU {i}")),
            uuid: d.uuid().ok(),
        });
    }
    let driver_version = nvml.sys_driver_version().ok();
    Ok(Loaded {
        nvml,
        driver_version,
        devices,
    })
}

/// The reason text for a failed `nvmlInit`. Init errors that call for a specific fix are
/// written the way `nvidia-smi` prints them, plus NVML's constant name, so
/// [`NvmlFailure::from_reason`] recognises them in live snapshots and in captured bundles alike.
fn init_error_reason(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(inner) => inner.to_string(),
        NvmlError::LibRmVersionMismatch => {
            "Failed to initialize NVML: Driver/library version mismatch \
             (NVML_ERROR_LIB_RM_VERSION_MISMATCH)"
                .to_owned()
        }
        NvmlError::DriverNotLoaded => {
            "Failed to initialize NVML: the NVIDIA kernel driver is not loaded \
             (NVML_ERROR_DRIVER_NOT_LOADED)"
                .to_owned()
        }
        NvmlError::NoPermission => {
            "Failed to initialize NVML: insufficient permissions (NVML_ERROR_NO_PERMISSION)"
                .to_owned()
        }
        other => other.to_string(),
    }
}

/// Why NVML is unavailable, as far as a diagnosis needs to know: each kind has its own fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NvmlFailure {
    /// The kernel module and the user-space library differ (a driver update without a
    /// reboot): nothing can use CUDA until the modules are reloaded or the machine reboots.
    VersionMismatch,
    /// `libnvidia-ml` is not installed: no NVIDIA driver on this machine.
    LibraryMissing,
    /// The library is there but the kernel module is not loaded.
    DriverNotLoaded,
    /// Anything else (permissions, an unsupported board, a transient query failure).
    Other,
}

impl NvmlFailure {
    /// Classifies an `NvmlStatus::Unavailable` reason (ours, or `nvidia-smi`'s text).
    pub fn from_reason(reason: &str) -> Self {
        let r = reason.to_ascii_lowercase();
        if r.contains("version mismatch") || r.contains("lib_rm_version_mismatch") {
            NvmlFailure::VersionMismatch
        } else if r.contains("driver_not_loaded") || r.contains("driver is not loaded") {
            NvmlFailure::DriverNotLoaded
        } else if r.contains("libnvidia-ml")
            || r.contains("nvml.dll")
            || r.contains("library not found")
        {
            NvmlFailure::LibraryMissing
        } else {
            NvmlFailure::Other
        }
    }
}

fn query(
    l: &Loaded,
    names: &mut HashMap<u32, (String, Instant)>,
) -> Result<Vec<GpuInfo>, NvmlError> {
    let now = Instant::now();
    let mut gpus = Vec::with_capacity(l.devices.len());
    for (i, st) in l.devices.iter().enumerate() {
        let index = i as u32;
        let d = l.nvml.device_by_index(index)?;
        let mem = d.memory_info()?;
        // Utilisation is unsupported on some boards (and in some VMs): unknown, not fatal.
        let util = d.utilization_rates().ok();
        let mut processes = Vec::new();
        push_procs(
            &mut processes,
            d.running_compute_processes()?,
            ProcessKind::Compute,
        );
        // Graphics contexts (Xorg, compositors, browsers) hold VRAM too; some boards refuse
        // this query, which must not hide the compute list.
        if let Ok(g) = d.running_graphics_processes() {
            push_procs(&mut processes, g, ProcessKind::Graphics);
        }
        for p in &mut processes {
            p.name = process_name(names, p.pid, now);
        }
        gpus.push(GpuInfo {
            index,
            name: st.name.clone(),
            uuid: st.uuid.clone(),
            memory_total: mem.total,
            memory_used: mem.used,
            memory_free: mem.free,
            utilization_gpu: util.as_ref().map(|u| u.gpu),
            utilization_memory: util.as_ref().map(|u| u.memory),
            processes,
        });
    }
    if names.len() > 256 {
        names.retain(|_, (_, at)| now.duration_since(*at) < NAME_TTL);
    }
    Ok(gpus)
}

fn push_procs(out: &mut Vec<GpuProcess>, list: Vec<ProcessInfo>, kind: ProcessKind) {
    out.extend(list.into_iter().map(|p| GpuProcess {
        pid: p.pid,
        name: String::new(),
        used_memory: match p.used_gpu_memory {
            UsedGpuMemory::Used(b) => Some(b),
            UsedGpuMemory::Unavailable => None,
        },
        kind,
    }));
}

fn process_name(cache: &mut HashMap<u32, (String, Instant)>, pid: u32, now: Instant) -> String {
    if let Some((name, at)) = cache.get(&pid) {
        if now.duration_since(*at) < NAME_TTL {
            return name.clone();
        }
    }
    let name = read_comm(pid);
    cache.insert(pid, (name.clone(), now));
    name
}

/// The kernel's short process name. Empty when unreadable: the pid may belong to another
/// pid namespace (NVML inside a container reports host pids), which callers must not
/// mistake for "no such process".
#[cfg(target_os = "linux")]
fn read_comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

#[cfg(not(target_os = "linux"))]
fn read_comm(pid: u32) -> String {
    let mut sys = match sysinfo::System::new() {
        Ok(s) => s,
        Err(_) => return String::new(),
    };
    let p = sysinfo::Pid::from_u32(pid);
    sys.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[p]), false);
    sys.process(p)
        .map(|p| p.name().to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a machine without the NVIDIA driver (CI, this dev box) the probe must answer
    /// "unavailable" with the loader's reason, twice in a row (the second from the
    /// rate-limited cache), and never panic. On a machine with a driver it must list GPUs.
    #[test]
    fn probe_never_panics_and_explains_itself() {
        let probe = NvmlProbe::new();
        let a = probe.snapshot();
        let b = probe.snapshot();
        match (&a.nvml, &b.nvml) {
            (NvmlStatus::Unavailable { reason }, NvmlStatus::Unavailable { reason: r2 }) => {
                assert!(!reason.is_empty());
                assert_eq!(reason, r2);
                assert!(a.gpus.is_empty());
            }
            (NvmlStatus::Ok, NvmlStatus::Ok) => {
                assert!(!a.gpus.is_empty());
                for g in &a.gpus {
                    assert!(g.memory_total >= g.memory_used);
                }
            }
            other => panic!("inconsistent consecutive probes: {other:?}"),
        }
    }

    #[test]
    fn init_errors_keep_their_kind() {
        let mismatch = init_error_reason(&NvmlError::LibRmVersionMismatch);
        assert_eq!(
            NvmlFailure::from_reason(&mismatch),
            NvmlFailure::VersionMismatch
        );
        // nvidia-smi's own wording, as users paste it.
        assert_eq!(
            NvmlFailure::from_reason("Failed to initialize NVML: Driver/library version mismatch"),
            NvmlFailure::VersionMismatch
        );
        assert_eq!(
            NvmlFailure::from_reason(&init_error_reason(&NvmlError::DriverNotLoaded)),
            NvmlFailure::DriverNotLoaded
        );
        assert_eq!(
            NvmlFailure::from_reason(
                "libnvidia-ml.so.1: cannot open shared object file: No such file or directory"
            ),
            NvmlFailure::LibraryMissing
        );
        assert_eq!(
            NvmlFailure::from_reason(&init_error_reason(&NvmlError::NoPermission)),
            NvmlFailure::Other
        );
    }

    #[test]
    fn comm_of_self_is_readable() {
        let me = std::process::id();
        assert!(!read_comm(me).is_empty());
        assert_eq!(read_comm(u32::MAX), "");
    }
}
