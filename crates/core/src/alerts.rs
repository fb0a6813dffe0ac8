//! Alerts: when a placement problem becomes a desktop notification, and what it says.
//!
//! This module owns the whole alert path of the core:
//! - the "is this bad" rule ([`health`]): a verified GPU placement is good, a CPU or partial
//!   one is bad, and anything the tick could not check (NVML unavailable, no runner found, an
//!   unknown placement) is *unchecked*, which neither raises nor resolves a verified incident;
//! - the wording ([`alert_title`], [`resolution_title`], [`resolution_body`], [`vram_line`],
//!   [`advice`]): short, plain, without codes; the details live in the window;
//! - the fixes an alert offers ([`FixAction`]), only ones that change the placement;
//! - the [`Alert`] type and the [`AlertPolicy`] state machine, which returns finished alerts.
//!
//! The policy obeys one rule set for the tray, `yollayah watch` and the tests: one alert when
//! an incident starts, nothing while it persists, one resolution when it ends, nothing while a
//! model is merely unloaded or Ollama is down, and a mute switch that silences notifications
//! without hiding the state. A cooldown keeps a flapping model quiet, but it is kept per cause
//! (partial offload, CPU), so a new or worse incident is never swallowed, and an incident that is
//! still open when its cooldown ends is notified then.
//!
//! The policy is a pure state machine over caller-supplied time, so it is tested without
//! sleeping and costs nothing on the watchdog tick.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::diagnose::{Code, Finding, ModelDiagnosis, Severity, memory};
use crate::gpu::{GpuSnapshot, NvmlStatus};
use crate::machine::MachineView;
use crate::ollama::types::PsModel;
use crate::placement::Placement;

/// Identifies one incident (bad period) of one model; a resolution carries the id of its alert so
/// a notifier can replace the alert with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IncidentId(pub u64);

/// Something the user can do about an alert, from its notification or the tray menu. Every one
/// offered changes the problem it is offered for; nothing cosmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixAction {
    /// Unload the model, then load it again, so Ollama places it with the memory free now.
    /// Offered only when it would fit on the GPU now ([`WatchdogHandle::reload`]).
    ///
    /// [`WatchdogHandle::reload`]: crate::watchdog::WatchdogHandle::reload
    ReloadOnGpu,
    /// Load the model (it is not loaded).
    Warm,
    /// Silence notifications (state is still shown).
    Mute,
}

impl FixAction {
    /// Stable key (notification action ids, IPC).
    pub fn as_str(self) -> &'static str {
        match self {
            FixAction::ReloadOnGpu => "reload-on-gpu",
            FixAction::Warm => "warm",
            FixAction::Mute => "mute",
        }
    }

    /// The button or menu label.
    pub fn label(self) -> &'static str {
        match self {
            FixAction::ReloadOnGpu => "Reload on the GPU",
            FixAction::Warm => "Load model",
            FixAction::Mute => "Mute alerts",
        }
    }
}

/// The user-facing text of an incident, finished: id, notify flag and actions are set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub incident: IncidentId,
    pub model: String,
    /// What happened, e.g. "llama3.2:3b runs 62% on the CPU".
    pub title: String,
    /// Why, and the fix, in one or two short sentences.
    pub body: String,
    /// The diagnosis code behind the body, if any (for the details window, never shown in the
    /// notification).
    pub code: Option<Code>,
    pub placement: Placement,
    /// Show a desktop notification (false when muted or inside the cooldown of its cause).
    pub notify: bool,
    /// The buttons to offer, most useful first; empty on resolutions.
    pub actions: Vec<FixAction>,
}

/// The kind of a bad placement. Ordered by severity: a CPU fallback is worse than a partial
/// offload. Cooldowns are kept per cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Part of the model is in system RAM.
    Partial,
    /// All of it runs on the CPU (including a GPU placement that NVML disproves).
    Cpu,
}

/// What one tick saw for a model, as far as alerting is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Fully on the GPU. `checked`: NVML saw the runner hold the model's memory; otherwise the
    /// verdict rests on `/api/ps` alone.
    Good { checked: bool },
    /// Not (fully) on the GPU, or NVML contradicts `/api/ps`.
    Bad { cause: Cause, checked: bool },
    /// Loaded, but where it runs could not be told (placement unknown or unverified). Never
    /// raises and never resolves.
    Unchecked,
    /// Nothing to judge: not loaded, Ollama down, or a partial offload below the threshold.
    Neutral,
}

/// Settings of the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertSettings {
    /// After an incident of one cause is resolved, a new incident of the same cause on the same
    /// model within this time is tracked but notified only when the cooldown ends (if still
    /// open then).
    pub cooldown: Duration,
    /// Silences notifications; incidents are still tracked and published.
    pub muted: bool,
    /// Alert on a partial offload, not only on full CPU.
    pub on_partial: bool,
    /// A partial offload below this CPU share is not an incident.
    pub min_cpu_pct: f64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            cooldown: Duration::from_secs(60),
            muted: false,
            on_partial: true,
            min_cpu_pct: 5.0,
        }
    }
}

/// Whether a diagnosis's placement was cross-checked against the GPU.
pub fn is_checked(d: &ModelDiagnosis) -> bool {
    d.placement.contradiction || d.placement.nvml_agrees.is_some()
}

/// The "is this bad" rule.
pub fn health(d: &ModelDiagnosis, settings: &AlertSettings) -> Health {
    if !d.loaded {
        return Health::Neutral;
    }
    let p = &d.placement;
    let checked = is_checked(d);
    if p.contradiction {
        let cause = match p.placement {
            Placement::Partial { .. } => Cause::Partial,
            _ => Cause::Cpu,
        };
        return Health::Bad { cause, checked };
    }
    match p.placement {
        Placement::Gpu => Health::Good { checked },
        Placement::Cpu => Health::Bad {
            cause: Cause::Cpu,
            checked,
        },
        Placement::Partial { cpu_pct } => {
            if settings.on_partial && f64::from(cpu_pct) >= settings.min_cpu_pct {
                Health::Bad {
                    cause: Cause::Partial,
                    checked,
                }
            } else {
                // Below the threshold: neither an incident nor "back on the GPU".
                Health::Neutral
            }
        }
        // A placement nobody could establish, or a GPU claim nothing here can check.
        Placement::Unknown | Placement::Unverified { .. } => Health::Unchecked,
    }
}

/// Why a loaded model's verdict is not cross-checked, in a menu-sized line; `None` when it is.
pub fn unchecked_reason(d: &ModelDiagnosis, gpu: &GpuSnapshot) -> Option<&'static str> {
    if !d.loaded || is_checked(d) {
        return None;
    }
    Some(match (&gpu.nvml, d.placement.placement) {
        (_, Placement::Unknown) => "Unchecked: Ollama cannot tell where it runs",
        (_, Placement::Unverified { reason }) => match reason {
            crate::placement::UnverifiedReason::Remote => {
                "Unverified: the server is on another machine"
            }
            crate::placement::UnverifiedReason::NoRunner => {
                "Unverified: Ollama's model process was not found"
            }
        },
        (NvmlStatus::Unavailable { .. }, _) => "Unchecked: the GPU driver did not answer",
        _ if d.placement.runner_pid.is_none() => "Unchecked: Ollama's model process was not found",
        _ => "Unchecked: the GPU could not confirm it",
    })
}

/// What else the policy and the advice need from the tick.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub machine: &'a MachineView,
    /// `/api/ps` of this tick.
    pub ps: &'a [PsModel],
    /// Names (as `/api/ps` lists them) of the models the app keeps warm: only those can be
    /// reloaded from an alert.
    pub ours: &'a [String],
}

/// The notification title of an incident. At most a model name plus 35 characters.
pub fn alert_title(model: &str, placement: Placement, contradiction: bool) -> String {
    match placement {
        _ if contradiction => format!("{model} runs on the CPU, not the GPU"),
        Placement::Partial { cpu_pct } => format!("{model} runs {cpu_pct}% on the CPU"),
        _ => format!("{model} runs on the CPU"),
    }
}

/// The notification title of a resolution.
pub fn resolution_title(model: &str) -> String {
    format!("{model} is back on the GPU")
}

/// The notification body of a resolution.
pub fn resolution_body(machine: &MachineView) -> String {
    match vram_line(machine) {
        Some(v) => format!("Fully on the GPU · {v}"),
        None => "Fully on the GPU".to_owned(),
    }
}

/// "VRAM 3.4/12.0 GiB" over all GPUs; `None` without GPU figures.
pub fn vram_line(machine: &MachineView) -> Option<String> {
    let (used, total) = machine.gpu.gpus.iter().fold((0u64, 0u64), |(u, t), g| {
        (u + g.memory_used, t + g.memory_total)
    });
    (total > 0).then(|| {
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        format!("VRAM {:.1}/{:.1} GiB", gib(used), gib(total))
    })
}

/// The one-line advice for a diagnosis and the fixes that go with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// Cause and fix in plain words, one per fault (two findings for one fault never give two
    /// fixes).
    pub line: String,
    /// The finding the line comes from.
    pub code: Option<Code>,
    pub actions: Vec<FixAction>,
}

/// Processes that draw the desktop: closing them is never advice.
const DISPLAY_PROCESSES: &[&str] = &[
    "Xorg",
    "X",
    "Xwayland",
    "gnome-shell",
    "kwin_wayland",
    "kwin_x11",
    "plasmashell",
    "sway",
    "Hyprland",
    "mutter",
    "weston",
    "cosmic-comp",
];

fn mib_text(b: u64) -> String {
    if b >= memory::GIB {
        format!("{:.1} GiB", b as f64 / memory::GIB as f64)
    } else {
        format!("{} MiB", b / memory::MIB)
    }
}

/// Other programs on the GPUs that could be closed: name, bytes, largest first. Runners and the
/// desktop are never listed.
fn closable(machine: &MachineView, runner: Option<u32>) -> Vec<(&str, u64)> {
    let mut out: Vec<(&str, u64)> = Vec::new();
    for g in &machine.gpu.gpus {
        for p in &g.processes {
            let Some(b) = p.used_memory.filter(|b| *b >= 32 * memory::MIB) else {
                continue;
            };
            if machine.runners.iter().any(|r| r.pid == p.pid)
                || Some(p.pid) == runner
                || DISPLAY_PROCESSES.contains(&p.name.as_str())
            {
                continue;
            }
            let name = if p.name.is_empty() {
                "a program"
            } else {
                p.name.as_str()
            };
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some(e) => e.1 += b,
                None => out.push((name, b)),
            }
        }
    }
    out.sort_by_key(|(_, b)| std::cmp::Reverse(*b));
    out
}

/// Cause and fix of one finding, or `None` when it is not a cause worth a line or its fix
/// cannot work (closing programs that cannot free enough, closing the desktop).
fn line_for(f: &Finding, machine: &MachineView, runner: Option<u32>) -> Option<(String, String)> {
    if f.severity == Severity::Info {
        return None;
    }
    let pair = |c: &str, x: &str| Some((c.to_owned(), x.to_owned()));
    match f.code {
        Code::CtxTooLarge => {
            let fix = match f.suggested_num_ctx {
                Some(n) => format!("Use a {n}-token context."),
                None => "Use a smaller context.".to_owned(),
            };
            Some(("Its context is too big for the GPU.".into(), fix))
        }
        Code::ModelTooLarge => pair(
            "It is too big for the free GPU memory.",
            "Use a smaller model.",
        ),
        Code::VramHeldByOtherProcess => {
            let progs = closable(machine, runner);
            let held: u64 = progs.iter().map(|(_, b)| b).sum();
            let deficit = f.number("deficit_bytes").map_or(0, |d| d as u64);
            if progs.is_empty() || held < deficit {
                // Freeing them cannot close the gap (or only the desktop holds memory).
                return None;
            }
            let names: Vec<&str> = progs.iter().take(2).map(|(n, _)| *n).collect();
            let names = names.join(" and ");
            Some((
                format!("{names} hold {} of GPU memory.", mib_text(held)),
                "Close them, then reload it.".to_owned(),
            ))
        }
        Code::SecondModelLoaded => pair(
            "Another model uses GPU memory.",
            "Unload it, then reload this one.",
        ),
        Code::NumGpuZero => pair("Its settings keep it on the CPU.", "Remove num_gpu."),
        Code::NumGpuSet => pair("Its settings limit its GPU layers.", "Remove num_gpu."),
        Code::ParallelMultipliesKv => pair(
            "Parallel slots multiply its memory.",
            "Set OLLAMA_NUM_PARALLEL=1.",
        ),
        Code::GpuBackendLost => pair("Ollama lost the GPU.", "Restart Ollama."),
        Code::PsContradictsNvml => pair(
            "Ollama says GPU; the GPU says no.",
            "Reload it or restart Ollama.",
        ),
        Code::DerivedParamsDiffer => pair(
            "Its two names load differently.",
            "Give both the same settings.",
        ),
        Code::UnexplainedOffload => pair(
            "No known cause explains it.",
            "Run yollayah doctor --capture and report it.",
        ),
        Code::ClientNumGpuZero => pair(
            "A program asked Ollama to use no GPU.",
            "Find the client that sends num_gpu 0.",
        ),
        Code::ClientsOptionsDiffer => pair(
            "Two programs load it with different settings.",
            "Give them the same context size.",
        ),
        Code::KeepAliveShort => pair(
            "It unloads between requests.",
            "Raise keep_alive or OLLAMA_KEEP_ALIVE.",
        ),
        Code::F16WeightsOnCpu => pair(
            "Its 16-bit weights do not fit the GPU.",
            "Use a quantised version (e.g. q8_0).",
        ),
        Code::MinVramRule => pair(
            "The GPU is below this Ollama's minimum.",
            "Use a smaller context, or update Ollama.",
        ),
        Code::ProjectorOnCpu => pair(
            "Its image encoder runs on the CPU.",
            "Free 1 GiB more GPU memory or use a smaller context.",
        ),
        Code::DriverLibraryMismatch => pair(
            "The NVIDIA driver was updated.",
            "Reboot to load the new driver.",
        ),
        Code::NvidiaDriverMissing => pair(
            "No NVIDIA driver is loaded.",
            "Install or load the NVIDIA driver.",
        ),
        Code::GpuArchUnsupported => pair(
            "Ollama's build cannot use this GPU.",
            "Use another Ollama build.",
        ),
        Code::DriverTooOld => pair(
            "The NVIDIA driver is too old for Ollama.",
            "Update the driver.",
        ),
        Code::GpusHidden => pair(
            "CUDA_VISIBLE_DEVICES hides the GPU.",
            "Fix CUDA_VISIBLE_DEVICES for Ollama.",
        ),
        Code::NoBufferFallback
        | Code::NvmlUnavailable
        | Code::NotLoaded
        | Code::PlacementUnverified
        | Code::FitMispredicted => None,
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Whether the model would fit on the GPU if it were loaded again now: the diagnosis memory
/// model's need against the memory free once its own runner is gone. `None` without GPU
/// figures.
pub fn fits_after_reload(d: &ModelDiagnosis, seen: &Seen<'_>) -> Option<bool> {
    let gpu = &seen.machine.gpu;
    if !gpu.is_ok() || gpu.gpus.is_empty() {
        return None;
    }
    // The diagnosis's own memory model, when it computed one for this model.
    for f in &d.findings {
        if let (Some(need), Some(avail)) = (f.number("needed_bytes"), f.number("available_bytes")) {
            return Some(need <= avail);
        }
    }
    // Otherwise Ollama's own estimate of the whole model against the free memory (a guess,
    // documented in docs/diagnosis.md): ps `size` is what the load asked for.
    let ps = seen.ps.iter().find(|p| p.name == d.model)?;
    if ps.size == 0 {
        return None;
    }
    let own = d.placement.runner_pid.map_or(0, |pid| {
        gpu.gpus
            .iter()
            .map(|g| g.used_by(pid).unwrap_or(0))
            .sum::<u64>()
    });
    let free: u64 = gpu
        .gpus
        .iter()
        .map(|g| g.memory_total.saturating_sub(g.memory_used))
        .sum();
    let margin = memory::DEFAULT_FIT_MARGIN_MIB * memory::MIB * gpu.gpus.len() as u64;
    Some(ps.size <= (free + own).saturating_sub(margin))
}

/// The advice for a model that is not fully on the GPU (or whose verdict is unchecked).
/// `None` when it runs fully on the GPU and that was checked.
pub fn advice(d: &ModelDiagnosis, seen: &Seen<'_>) -> Option<Advice> {
    if !d.loaded {
        // Only the configured model is diagnosed while not loaded, so loading it is ours to do.
        return Some(Advice {
            line: format!("{} is not loaded.", d.model),
            code: Some(Code::NotLoaded),
            actions: vec![FixAction::Warm],
        });
    }
    let good = d.placement.placement.is_full_gpu() && !d.placement.contradiction;
    if good {
        return unchecked_reason(d, &seen.machine.gpu).map(|r| Advice {
            line: format!("{r}."),
            code: None,
            actions: Vec::new(),
        });
    }
    let found = d
        .findings
        .iter()
        .find_map(|f| line_for(f, seen.machine, d.placement.runner_pid).map(|l| (f, l)));
    let ours = seen.ours.iter().any(|o| o == &d.model);
    let reload_cannot_help = found.as_ref().is_some_and(|(f, _)| {
        matches!(
            f.code,
            // Whatever memory is free, the same server puts it on the CPU again.
            Code::NumGpuZero
                | Code::NumGpuSet
                | Code::GpuBackendLost
                | Code::GpuArchUnsupported
                | Code::DriverTooOld
                | Code::DriverLibraryMismatch
                | Code::NvidiaDriverMissing
                | Code::GpusHidden
        )
    });
    let fits = fits_after_reload(d, seen);
    let code = found.as_ref().map(|(f, _)| f.code);
    let (line, actions) = match (found, fits) {
        (Some((_, (cause, _))), Some(true)) if ours && !reload_cannot_help => (
            format!("{cause} It fits now: reload it."),
            vec![FixAction::ReloadOnGpu],
        ),
        (None, Some(true)) if ours => (
            "It fits on the GPU now: reload it.".to_owned(),
            vec![FixAction::ReloadOnGpu],
        ),
        (Some((_, (cause, fix))), Some(false)) if !reload_cannot_help => (
            format!("{cause} A reload won't fit: {}", lower_first(&fix)),
            Vec::new(),
        ),
        (Some((_, (cause, fix))), _) => (format!("{cause} {fix}"), Vec::new()),
        (None, Some(false)) => (
            "It does not fit in free GPU memory. See details.".to_owned(),
            Vec::new(),
        ),
        (None, _) => ("Cause unclear. See details.".to_owned(), Vec::new()),
    };
    Some(Advice {
        line,
        code,
        actions,
    })
}

/// What the caller should publish after an observation.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertAction {
    /// A new incident started, or an open one became worse or reached the end of its cause's
    /// cooldown (then with the same incident id and `notify` true, so a notifier replaces its
    /// notification).
    Raise(Alert),
    /// The incident ended (back on the GPU). `notify` mirrors whether the raise was notified,
    /// so a quiet alert never gets a loud resolution.
    Resolve(Alert),
}

impl AlertAction {
    /// The finished alert.
    pub fn alert(&self) -> &Alert {
        match self {
            AlertAction::Raise(a) | AlertAction::Resolve(a) => a,
        }
    }
}

#[derive(Debug, Clone)]
struct Open {
    alert: Alert,
    cause: Cause,
    checked: bool,
    /// A notification was shown for it.
    notified: bool,
    /// Raised quietly inside its cause's cooldown: notify at this time if still open.
    due: Option<Instant>,
}

/// Alert state of every model, keyed by model name. Incident ids are unique across models, so a
/// notifier can use them as notification ids.
#[derive(Debug, Clone)]
pub struct AlertPolicy {
    settings: AlertSettings,
    open: HashMap<String, Open>,
    /// When the last incident of each (model, cause) was resolved.
    resolved_at: HashMap<(String, Cause), Instant>,
    next_id: u64,
}

impl AlertPolicy {
    /// A policy with no open incident.
    pub fn new(settings: AlertSettings) -> Self {
        AlertPolicy {
            settings,
            open: HashMap::new(),
            resolved_at: HashMap::new(),
            next_id: 1,
        }
    }

    /// Mutes or unmutes. Muting does not resolve or forget the open incident, and unmuting does
    /// not replay an alert the user chose not to see.
    pub fn set_muted(&mut self, muted: bool) {
        self.settings.muted = muted;
        if muted {
            for o in self.open.values_mut() {
                o.due = None;
            }
        }
    }

    /// Whether notifications are muted.
    pub fn muted(&self) -> bool {
        self.settings.muted
    }

    /// The rule settings.
    pub fn settings(&self) -> &AlertSettings {
        &self.settings
    }

    /// The open incident of `model`, if any.
    pub fn open_incident(&self, model: &str) -> Option<&Alert> {
        self.open.get(model).map(|o| &o.alert)
    }

    /// How many incidents are open over all models.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Feeds one tick's diagnosis of a model, taken at `now`; returns what to publish.
    pub fn observe(
        &mut self,
        d: &ModelDiagnosis,
        seen: &Seen<'_>,
        now: Instant,
    ) -> Option<AlertAction> {
        match health(d, &self.settings) {
            Health::Neutral | Health::Unchecked => self.maybe_due(&d.model, now),
            Health::Good { checked } => {
                let open = self.open.get(&d.model)?;
                if open.checked && !checked {
                    // An unverified "GPU" cannot end an incident that the GPU confirmed.
                    return self.maybe_due(&d.model, now);
                }
                let open = self.open.remove(&d.model)?;
                self.resolved_at.insert((d.model.clone(), open.cause), now);
                Some(AlertAction::Resolve(Alert {
                    incident: open.alert.incident,
                    model: d.model.clone(),
                    title: resolution_title(&d.model),
                    body: resolution_body(seen.machine),
                    code: None,
                    placement: Placement::Gpu,
                    // A muted user asked for silence; an alert they never saw needs no "all clear".
                    notify: open.notified && !self.settings.muted,
                    actions: Vec::new(),
                }))
            }
            Health::Bad { cause, checked } => {
                let (title, advice) = self.texts(d, seen);
                let muted = self.settings.muted;
                if let Some(open) = self.open.get_mut(&d.model) {
                    // Same incident: keep the freshest text (numbers move).
                    open.alert.title = title;
                    open.alert.body = advice.line;
                    open.alert.code = advice.code;
                    open.alert.placement = d.placement.placement;
                    open.alert.actions = advice.actions;
                    open.checked |= checked;
                    let worse = cause > open.cause;
                    open.cause = open.cause.max(cause);
                    let due = open.due.is_some_and(|t| now >= t);
                    if (worse || due) && !muted {
                        // Worse, or its cooldown ended while it is still open: never swallowed.
                        open.due = None;
                        open.notified = true;
                        let mut alert = open.alert.clone();
                        alert.notify = true;
                        return Some(AlertAction::Raise(alert));
                    }
                    return None;
                }
                let cooled_until = self
                    .resolved_at
                    .get(&(d.model.clone(), cause))
                    .map(|t| *t + self.settings.cooldown)
                    .filter(|until| now < *until);
                let notify = !muted && cooled_until.is_none();
                let incident = IncidentId(self.next_id);
                self.next_id += 1;
                let alert = Alert {
                    incident,
                    model: d.model.clone(),
                    title,
                    body: advice.line,
                    code: advice.code,
                    placement: d.placement.placement,
                    notify,
                    actions: advice.actions,
                };
                self.open.insert(
                    d.model.clone(),
                    Open {
                        alert: alert.clone(),
                        cause,
                        checked,
                        notified: notify,
                        due: if muted { None } else { cooled_until },
                    },
                );
                Some(AlertAction::Raise(alert))
            }
        }
    }

    /// An open incident raised inside its cooldown is notified once the cooldown ends.
    fn maybe_due(&mut self, model: &str, now: Instant) -> Option<AlertAction> {
        let open = self.open.get_mut(model)?;
        if self.settings.muted || open.due.is_none_or(|t| now < t) {
            return None;
        }
        open.due = None;
        open.notified = true;
        let mut alert = open.alert.clone();
        alert.notify = true;
        Some(AlertAction::Raise(alert))
    }

    fn texts(&self, d: &ModelDiagnosis, seen: &Seen<'_>) -> (String, Advice) {
        let title = alert_title(&d.model, d.placement.placement, d.placement.contradiction);
        let advice = advice(d, seen).unwrap_or(Advice {
            line: "See the details.".to_owned(),
            code: None,
            actions: Vec::new(),
        });
        (title, advice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{GpuInfo, GpuProcess, ProcessKind};
    use crate::placement::PlacementReport;

    const M: &str = "llama3.2:3b";
    const GIB: u64 = 1 << 30;

    fn report(placement: Placement, checked: bool) -> PlacementReport {
        PlacementReport {
            placement,
            ps_placement: placement,
            ps_processor: placement.ps_label(),
            cpu_share_pct: placement.cpu_share_pct(),
            nvml_agrees: checked.then_some(true),
            contradiction: false,
            suspicious_no_buffer_fallback: false,
            cpu_busy_gpu_idle: false,
            runner_pid: Some(100),
            runner_gpu_bytes: Some(GIB),
            runner_gpu_layers: None,
            block_count: None,
        }
    }

    fn diag(model: &str, placement: Placement) -> ModelDiagnosis {
        ModelDiagnosis {
            model: model.to_owned(),
            loaded: true,
            placement: report(placement, true),
            findings: Vec::new(),
        }
    }

    fn gpu(ok: bool, used: u64, processes: Vec<GpuProcess>) -> MachineView {
        MachineView {
            gpu: GpuSnapshot {
                nvml: if ok {
                    NvmlStatus::Ok
                } else {
                    NvmlStatus::Unavailable {
                        reason: "no driver".into(),
                    }
                },
                driver_version: None,
                gpus: if ok {
                    vec![GpuInfo {
                        index: 0,
                        name: "Test GPU".into(),
                        uuid: None,
                        memory_total: 12 * GIB,
                        memory_used: used,
                        memory_free: (12 * GIB).saturating_sub(used),
                        utilization_gpu: None,
                        utilization_memory: None,
                        processes,
                    }]
                } else {
                    Vec::new()
                },
            },
            runners: Vec::new(),
            full_scan: false,
        }
    }

    fn proc(name: &str, pid: u32, bytes: u64) -> GpuProcess {
        GpuProcess {
            pid,
            name: name.into(),
            used_memory: Some(bytes),
            kind: ProcessKind::Compute,
        }
    }

    struct Rig {
        p: AlertPolicy,
        machine: MachineView,
        ours: Vec<String>,
        t0: Instant,
    }

    impl Rig {
        fn new() -> Self {
            Rig {
                p: AlertPolicy::new(AlertSettings::default()),
                machine: gpu(true, 4 * GIB, Vec::new()),
                ours: vec![M.to_owned()],
                t0: Instant::now(),
            }
        }
        fn at(&mut self, secs: u64, d: &ModelDiagnosis) -> Option<AlertAction> {
            let seen = Seen {
                machine: &self.machine,
                ps: &[],
                ours: &self.ours,
            };
            self.p
                .observe(d, &seen, self.t0 + Duration::from_secs(secs))
        }
    }

    fn notified(out: &[Option<AlertAction>]) -> (usize, usize) {
        out.iter().flatten().fold((0, 0), |(r, s), a| match a {
            AlertAction::Raise(a) if a.notify => (r + 1, s),
            AlertAction::Resolve(a) if a.notify => (r, s + 1),
            _ => (r, s),
        })
    }

    fn partial(pct: u8) -> ModelDiagnosis {
        diag(M, Placement::Partial { cpu_pct: pct })
    }

    #[test]
    fn one_alert_and_one_resolution_per_incident() {
        let mut r = Rig::new();
        let mut out = vec![r.at(0, &diag(M, Placement::Gpu))];
        for i in 1..10 {
            out.push(r.at(2 * i, &partial(62)));
        }
        out.push(r.at(30, &diag(M, Placement::Gpu)));
        out.push(r.at(32, &diag(M, Placement::Gpu)));
        assert_eq!(notified(&out), (1, 1));
        assert_eq!(out.iter().flatten().count(), 2);
        let (Some(AlertAction::Raise(a)), Some(AlertAction::Resolve(b))) = (&out[1], &out[10])
        else {
            panic!("{out:?}")
        };
        assert_eq!((a.incident, b.incident), (IncidentId(1), IncidentId(1)));
        assert_eq!(b.title, "llama3.2:3b is back on the GPU");
        assert!(b.actions.is_empty());
    }

    /// The demo's swallowed fallback: a partial incident resolved, then a CPU fallback 17 s
    /// later, inside the cooldown, must be notified exactly once.
    #[test]
    fn cpu_fallback_after_a_resolved_partial_incident_is_notified_once() {
        let mut r = Rig::new();
        let mut out = vec![r.at(0, &partial(40))];
        out.push(r.at(20, &diag(M, Placement::Gpu)));
        for s in (37..120).step_by(2) {
            out.push(r.at(s, &diag(M, Placement::Cpu)));
        }
        let raises: Vec<&Alert> = out
            .iter()
            .flatten()
            .filter_map(|a| match a {
                AlertAction::Raise(a) if a.notify => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(raises.len(), 2, "{out:?}");
        assert_eq!(raises[1].placement, Placement::Cpu);
        assert_eq!(raises[1].title, "llama3.2:3b runs on the CPU");
        assert_ne!(raises[0].incident, raises[1].incident);
    }

    #[test]
    fn same_cause_inside_cooldown_is_quiet_then_notified_when_it_ends_if_still_open() {
        let mut r = Rig::new();
        assert!(r.at(0, &partial(40)).is_some_and(|a| a.alert().notify));
        assert!(r.at(10, &diag(M, Placement::Gpu)).is_some());
        let quiet = r.at(20, &partial(40));
        assert!(matches!(&quiet, Some(AlertAction::Raise(a)) if !a.notify));
        let id = quiet.map(|a| a.alert().incident);
        // Still open through the cooldown (60 s after the resolution at 10 s).
        for s in (22..70).step_by(2) {
            assert_eq!(r.at(s, &partial(40)), None, "at {s}s");
        }
        let late = r.at(70, &partial(40));
        assert!(
            matches!(&late, Some(AlertAction::Raise(a)) if a.notify && Some(a.incident) == id),
            "{late:?}"
        );
        assert_eq!(r.at(72, &partial(40)), None);
        let resolved = r.at(74, &diag(M, Placement::Gpu));
        assert!(matches!(resolved, Some(AlertAction::Resolve(a)) if a.notify));
    }

    #[test]
    fn flapping_inside_cooldown_is_quiet() {
        let mut r = Rig::new();
        let mut out = Vec::new();
        for i in 0..10u64 {
            let d = if i % 2 == 0 {
                partial(40)
            } else {
                diag(M, Placement::Gpu)
            };
            out.push(r.at(2 * i, &d));
        }
        assert_eq!(
            notified(&out),
            (1, 1),
            "only the first incident is announced"
        );
        assert_eq!(
            out.iter().flatten().count(),
            10,
            "every change is published"
        );
        assert!(r.at(200, &partial(40)).is_some_and(|a| a.alert().notify));
    }

    #[test]
    fn a_worse_incident_on_the_same_model_is_notified() {
        let mut r = Rig::new();
        let first = r.at(0, &partial(30));
        assert!(first.as_ref().is_some_and(|a| a.alert().notify));
        assert_eq!(r.at(2, &partial(35)), None);
        let worse = r.at(4, &diag(M, Placement::Cpu));
        assert!(
            matches!(&worse, Some(AlertAction::Raise(a)) if a.notify && a.placement == Placement::Cpu)
        );
        assert_eq!(
            worse.map(|a| a.alert().incident),
            first.map(|a| a.alert().incident),
            "the same incident, so the notification is replaced"
        );
        // Getting better is not news.
        assert_eq!(r.at(6, &partial(30)), None);
    }

    #[test]
    fn neutral_and_unchecked_neither_raise_nor_resolve() {
        let mut r = Rig::new();
        let mut down = diag(M, Placement::Unknown);
        down.loaded = false;
        assert_eq!(r.at(0, &down), None);
        assert!(r.at(1, &diag(M, Placement::Cpu)).is_some());
        // Ollama restarts mid-incident: the incident stays open, nothing is announced.
        assert_eq!(r.at(2, &down), None);
        assert_eq!(r.at(3, &diag(M, Placement::Unknown)), None);
        // "GPU" that nothing could verify does not end a verified incident.
        let mut unverified = diag(M, Placement::Gpu);
        unverified.placement.nvml_agrees = None;
        assert_eq!(r.at(4, &unverified), None);
        assert!(r.p.open_incident(M).is_some());
        assert!(matches!(
            r.at(5, &diag(M, Placement::Gpu)),
            Some(AlertAction::Resolve(a)) if a.notify
        ));
    }

    #[test]
    fn a_ps_only_incident_is_resolved_by_a_ps_only_gpu() {
        let mut r = Rig::new();
        let mut cpu = diag(M, Placement::Cpu);
        cpu.placement.nvml_agrees = None;
        assert!(r.at(0, &cpu).is_some());
        let mut gpu_ps = diag(M, Placement::Gpu);
        gpu_ps.placement.nvml_agrees = None;
        assert!(matches!(r.at(2, &gpu_ps), Some(AlertAction::Resolve(_))));
    }

    #[test]
    fn mute_silences_but_keeps_tracking() {
        let mut r = Rig::new();
        r.p.set_muted(true);
        assert!(
            matches!(r.at(0, &diag(M, Placement::Cpu)), Some(AlertAction::Raise(a)) if !a.notify)
        );
        r.p.set_muted(false);
        // Unmuting mid-incident does not replay the alert, and its resolution stays quiet.
        assert_eq!(r.at(2, &diag(M, Placement::Cpu)), None);
        assert_eq!(r.at(200, &diag(M, Placement::Cpu)), None);
        assert!(
            matches!(r.at(202, &diag(M, Placement::Gpu)), Some(AlertAction::Resolve(a)) if !a.notify)
        );
    }

    #[test]
    fn models_are_tracked_separately_with_unique_ids() {
        let mut r = Rig::new();
        let a = r.at(0, &diag("a", Placement::Cpu));
        let b = r.at(0, &diag("b", Placement::Cpu));
        assert_eq!(a.map(|a| a.alert().incident), Some(IncidentId(1)));
        assert_eq!(b.map(|a| a.alert().incident), Some(IncidentId(2)));
        assert_eq!(r.p.open_count(), 2);
        assert!(matches!(
            r.at(1, &diag("a", Placement::Gpu)),
            Some(AlertAction::Resolve(_))
        ));
        assert_eq!(r.p.open_count(), 1);
    }

    #[test]
    fn partial_below_the_threshold_is_no_incident() {
        let mut r = Rig::new();
        assert_eq!(r.at(0, &partial(3)), None);
        r.p.settings.on_partial = false;
        assert_eq!(r.at(2, &partial(50)), None);
        assert!(r.at(4, &diag(M, Placement::Cpu)).is_some());
    }

    fn finding(code: Code, deficit: u64) -> Finding {
        let mut f = Finding::new(
            code,
            Severity::Cause,
            80,
            "internal title".into(),
            "internal remedy".into(),
        );
        f.evidence
            .push(crate::diagnose::Evidence::u("deficit_bytes", deficit));
        f
    }

    #[test]
    fn reload_is_offered_only_when_it_would_fit() {
        let mut d = partial(40);
        d.placement.runner_pid = Some(100);
        let ps = [PsModel {
            name: M.into(),
            model: M.into(),
            size: 5 * GIB,
            size_vram: 3 * GIB,
            ..PsModel::default()
        }];
        let ours = [M.to_owned()];
        // 12 GiB, 4 GiB used of which 3 GiB are the runner's own: 11 GiB free after unloading.
        let roomy = gpu(true, 4 * GIB, vec![proc("ollama", 100, 3 * GIB)]);
        let seen = Seen {
            machine: &roomy,
            ps: &ps,
            ours: &ours,
        };
        let a = advice(&d, &seen).expect("advice");
        assert_eq!(a.actions, vec![FixAction::ReloadOnGpu], "{a:?}");
        assert_eq!(a.line, "It fits on the GPU now: reload it.");

        // 10 GiB held by python: even after unloading, 5 GiB do not fit.
        let full = gpu(
            true,
            13 * GIB,
            vec![proc("ollama", 100, 3 * GIB), proc("python3", 7, 10 * GIB)],
        );
        d.findings = vec![finding(Code::VramHeldByOtherProcess, 2 * GIB)];
        let seen = Seen {
            machine: &full,
            ps: &ps,
            ours: &ours,
        };
        let a = advice(&d, &seen).expect("advice");
        assert!(a.actions.is_empty(), "{a:?}");
        assert_eq!(
            a.line,
            "python3 hold 10.0 GiB of GPU memory. A reload won't fit: close them, then reload it."
        );
        // Another client's model is never reloaded from our alert.
        let seen = Seen {
            machine: &roomy,
            ps: &ps,
            ours: &[],
        };
        assert!(advice(&d, &seen).expect("advice").actions.is_empty());
    }

    #[test]
    fn never_advises_closing_the_desktop_or_programs_too_small_to_matter() {
        let mut d = partial(40);
        d.findings = vec![
            finding(Code::VramHeldByOtherProcess, 4 * GIB),
            finding(Code::ModelTooLarge, 4 * GIB),
        ];
        let m = gpu(
            true,
            11 * GIB,
            vec![
                proc("Xorg", 1, 600 << 20),
                proc("gnome-shell", 2, 300 << 20),
            ],
        );
        let seen = Seen {
            machine: &m,
            ps: &[],
            ours: &[],
        };
        let a = advice(&d, &seen).expect("advice");
        assert!(
            !a.line.contains("Xorg") && !a.line.contains("Close"),
            "{}",
            a.line
        );
        assert_eq!(a.code, Some(Code::ModelTooLarge));
        // Firefox holds 1 GiB but 4 GiB are missing: closing it cannot close the gap.
        let m = gpu(true, 11 * GIB, vec![proc("firefox", 3, GIB)]);
        let seen = Seen {
            machine: &m,
            ps: &[],
            ours: &[],
        };
        let a = advice(&d, &seen).expect("advice");
        assert!(!a.line.contains("firefox"), "{}", a.line);
    }

    #[test]
    fn one_fault_gets_one_fix() {
        // The backend-lost fault shows up as two findings; the body gives one cause and one fix.
        let mut d = diag(M, Placement::Cpu);
        d.placement.contradiction = true;
        d.findings = vec![
            finding(Code::GpuBackendLost, 0),
            finding(Code::PsContradictsNvml, 0),
        ];
        let m = gpu(true, GIB, Vec::new());
        let seen = Seen {
            machine: &m,
            ps: &[],
            ours: &[M.to_owned()],
        };
        let a = advice(&d, &seen).expect("advice");
        assert_eq!(a.line, "Ollama lost the GPU. Restart Ollama.");
        assert!(a.actions.is_empty(), "a reload cannot bring the GPU back");
    }

    #[test]
    fn a_gpu_the_server_cannot_use_gets_no_reload_offer() {
        // Both GPUs empty, so the model "fits": but the installed Ollama cannot use them, and a
        // reload would land on the CPU again.
        for code in [Code::DriverTooOld, Code::GpuArchUnsupported] {
            let mut d = diag(M, Placement::Cpu);
            d.findings = vec![finding(code, 0)];
            let m = gpu(true, 40 * GIB, Vec::new());
            let seen = Seen {
                machine: &m,
                ps: &[],
                ours: &[M.to_owned()],
            };
            let a = advice(&d, &seen).expect("advice");
            assert!(a.actions.is_empty(), "{code}: {a:?}");
            assert!(!a.line.contains("reload"), "{code}: {}", a.line);
            assert_eq!(a.code, Some(code));
        }
    }

    #[test]
    fn unchecked_verdicts_never_read_as_clean() {
        let m = gpu(false, 0, Vec::new());
        let seen = Seen {
            machine: &m,
            ps: &[],
            ours: &[],
        };
        let mut d = diag(M, Placement::Gpu);
        d.placement.nvml_agrees = None;
        d.placement.runner_pid = None;
        let a = advice(&d, &seen).expect("an unchecked GPU verdict has advice");
        assert!(a.line.starts_with("Unchecked"), "{}", a.line);
        let ok = gpu(true, GIB, Vec::new());
        let seen = Seen {
            machine: &ok,
            ps: &[],
            ours: &[],
        };
        let a = advice(&d, &seen).expect("no runner found");
        assert_eq!(a.line, "Unchecked: Ollama's model process was not found.");
        assert_eq!(advice(&diag(M, Placement::Gpu), &seen), None);
        // A partial model without a known cause still says something.
        let a = advice(&partial(21), &seen).expect("advice");
        assert!(!a.line.is_empty());
    }

    /// Menu and notification texts: short, plain, no codes.
    #[test]
    fn texts_are_short_and_plain() {
        let mut lines = vec![
            alert_title(M, Placement::Cpu, false),
            alert_title(M, Placement::Cpu, true),
            alert_title(M, Placement::Partial { cpu_pct: 62 }, false),
            resolution_title(M),
            resolution_body(&gpu(true, GIB, Vec::new())),
        ];
        let m = gpu(true, 8 * GIB, vec![proc("python3", 9, 6 * GIB)]);
        for code in [
            Code::CtxTooLarge,
            Code::ModelTooLarge,
            Code::VramHeldByOtherProcess,
            Code::SecondModelLoaded,
            Code::NumGpuZero,
            Code::NumGpuSet,
            Code::DerivedParamsDiffer,
            Code::ParallelMultipliesKv,
            Code::GpuBackendLost,
            Code::PsContradictsNvml,
            Code::GpuArchUnsupported,
            Code::DriverTooOld,
            Code::DriverLibraryMismatch,
            Code::NvidiaDriverMissing,
        ] {
            let (cause, fix) = line_for(&finding(code, GIB), &m, None).expect("a cause line");
            // The menu shows cause and fix on one line.
            lines.push(format!("{cause} {fix}"));
        }
        for l in &lines {
            assert!(l.chars().count() <= 64, "too long for a menu: {l:?}");
            assert!(!l.is_empty());
            let shouting = l
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w.contains('_') && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
            assert!(
                !shouting || l.contains("OLLAMA_NUM_PARALLEL"),
                "a code in user text: {l:?}"
            );
            for code in [
                "CTX_TOO_LARGE",
                "PS_CONTRADICTS",
                "NVML",
                "KV",
                "runner",
                "ps ",
            ] {
                assert!(!l.contains(code), "internal term {code:?} in {l:?}");
            }
        }
        for f in FixAction::ReloadOnGpu.label().chars() {
            assert!(f.is_ascii());
        }
    }
}
