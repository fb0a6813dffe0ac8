//! The view model the tray renders. The shell never decides what the state is:
//! [`crate::forward`] fills a [`TrayView`] from the core's snapshots, and the tray only draws it.

use serde::Serialize;
use yollayah_core::events::Verdict;

/// Where the model runs, as far as the tray icon is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrayState {
    /// Fully on the GPU.
    Gpu,
    /// Split between GPU and CPU.
    Partial,
    /// Entirely on the CPU.
    Cpu,
    /// Being loaded (warming up).
    Warming,
    /// Ollama is not answering.
    Down,
    /// No reading yet, or the reading could not be classified.
    Unknown,
}

impl TrayState {
    /// Every state, in a stable order (tests and icon checks iterate over it).
    pub const ALL: [TrayState; 6] = [
        TrayState::Gpu,
        TrayState::Partial,
        TrayState::Cpu,
        TrayState::Warming,
        TrayState::Down,
        TrayState::Unknown,
    ];

    /// Stable lower-case name (also the icon file stem).
    pub fn as_str(self) -> &'static str {
        match self {
            TrayState::Gpu => "gpu",
            TrayState::Partial => "partial",
            TrayState::Cpu => "cpu",
            TrayState::Warming => "warming",
            TrayState::Down => "down",
            TrayState::Unknown => "unknown",
        }
    }

    /// The 32×32 tray icon for this state (PNG bytes, rendered from `icons/src/*.svg`).
    pub fn icon_png(self) -> &'static [u8] {
        match self {
            TrayState::Gpu => include_bytes!("../../icons/tray/gpu-32.png"),
            TrayState::Partial => include_bytes!("../../icons/tray/partial-32.png"),
            TrayState::Cpu => include_bytes!("../../icons/tray/cpu-32.png"),
            TrayState::Warming => include_bytes!("../../icons/tray/warming-32.png"),
            TrayState::Down => include_bytes!("../../icons/tray/down-32.png"),
            TrayState::Unknown => include_bytes!("../../icons/tray/unknown-32.png"),
        }
    }
}

/// Everything the tray shows. Cheap to clone and compare, so the tray can skip unchanged parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrayView {
    /// Drives the icon.
    pub state: TrayState,
    /// One line, e.g. `llama3.2:3b · 100% GPU · VRAM 3.4/12.0 GiB`.
    pub status_line: String,
    /// Why the model is not fully on the GPU and what to do, in plain words; `None` when all is well.
    pub diagnosis_line: Option<String>,
    /// Desktop alerts are suppressed.
    pub muted: bool,
    /// An XDG autostart entry exists for this app.
    pub autostart: bool,
    /// One line per `[[hosts]]` entry, in config order (empty without hosts).
    pub hosts: Vec<HostLine>,
}

impl Default for TrayView {
    fn default() -> Self {
        Self {
            state: TrayState::Unknown,
            status_line: "Waiting for the first reading…".to_owned(),
            diagnosis_line: None,
            muted: false,
            autostart: false,
            hosts: Vec::new(),
        }
    }
}

impl TrayView {
    /// What the icon shows: the worst state across the local server and every host (the
    /// order is [`worst`]'s). Without hosts, the local state.
    pub fn icon_state(&self) -> TrayState {
        worst(self.state, self.hosts.iter().map(|h| h.state))
    }

    /// The menu text for the diagnosis item (the item always exists, so it says when all is well).
    pub fn diagnosis_text(&self) -> &str {
        self.diagnosis_line
            .as_deref()
            .unwrap_or("No problems found")
    }
}

/// The tray icon state for a verdict.
pub fn tray_state(verdict: Verdict) -> TrayState {
    match verdict {
        Verdict::Gpu => TrayState::Gpu,
        Verdict::Partial { .. } => TrayState::Partial,
        Verdict::Cpu => TrayState::Cpu,
        Verdict::Warming => TrayState::Warming,
        Verdict::Down => TrayState::Down,
        Verdict::NotLoaded | Verdict::Unknown | Verdict::Unverified { .. } => TrayState::Unknown,
    }
}

// The hosts' lines are view data like the rest: here, below `hosts` (which fills them) and
// `forward`, so the view depends on neither.

/// The longest menu line for one host, in characters.
pub const LINE_MAX: usize = 60;

/// How one host reads in the menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostLine {
    /// The `[[hosts]]` name.
    pub name: String,
    /// The host's share of the icon.
    pub state: TrayState,
    /// `name: state`, at most [`LINE_MAX`] characters.
    pub line: String,
    /// The whole story when the line had to be short (an agent's error, the way to verify).
    pub detail: Option<String>,
    /// Whether the host has an agent (and so a "Warm" item that goes through it).
    pub agent: bool,
    /// Until when the text (a failed warm) outlives the host's snapshots; the state still follows
    /// them.
    #[serde(skip)]
    pub held_until: Option<std::time::Instant>,
}

impl HostLine {
    pub(crate) fn new(
        name: &str,
        agent: bool,
        state: TrayState,
        text: &str,
        detail: Option<String>,
    ) -> Self {
        HostLine {
            name: name.to_owned(),
            state,
            line: short_line(name, text),
            detail,
            agent,
            held_until: None,
        }
    }
}

/// `name: text`, cut to [`LINE_MAX`] characters (with `…`) so a long headline or error cannot
/// widen the menu.
pub fn short_line(name: &str, text: &str) -> String {
    let full = format!("{name}: {text}");
    if full.chars().count() <= LINE_MAX {
        return full;
    }
    let mut cut: String = full.chars().take(LINE_MAX - 1).collect();
    cut.push('…');
    cut
}

/// How bad a state is for the icon: the icon shows the worst state across the local server and
/// every host. Down, then CPU, then partial: those need the user. Then unknown (which covers
/// unverified and refused tokens: the tray cannot vouch for that host), then warming (about to
/// be fine), then GPU.
fn severity(state: TrayState) -> u8 {
    match state {
        TrayState::Down => 5,
        TrayState::Cpu => 4,
        TrayState::Partial => 3,
        TrayState::Unknown => 2,
        TrayState::Warming => 1,
        TrayState::Gpu => 0,
    }
}

/// The worst of `states` by the rule of [`severity`]; `first` when there is nothing else.
pub fn worst(first: TrayState, rest: impl IntoIterator<Item = TrayState>) -> TrayState {
    rest.into_iter()
        .fold(first, |a, b| if severity(b) > severity(a) { b } else { a })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_a_distinct_valid_png() {
        let mut seen = std::collections::HashSet::new();
        for state in TrayState::ALL {
            let png = state.icon_png();
            assert_eq!(&png[1..4], b"PNG", "{} is not a PNG", state.as_str());
            assert!(
                seen.insert(png),
                "{} shares its icon with another state",
                state.as_str()
            );
            let info = png::Decoder::new(std::io::Cursor::new(png))
                .read_info()
                .expect("embedded icon decodes");
            assert_eq!((info.info().width, info.info().height), (32, 32));
        }
    }

    #[test]
    fn diagnosis_text_says_so_when_all_is_well() {
        let mut view = TrayView::default();
        assert_eq!(view.diagnosis_text(), "No problems found");
        view.diagnosis_line = Some("Context too large for free VRAM".to_owned());
        assert_eq!(view.diagnosis_text(), "Context too large for free VRAM");
    }

    #[test]
    fn every_verdict_has_its_tray_state() {
        assert_eq!(tray_state(Verdict::Gpu), TrayState::Gpu);
        assert_eq!(
            tray_state(Verdict::Partial { cpu_pct: 40 }),
            TrayState::Partial
        );
        assert_eq!(tray_state(Verdict::Cpu), TrayState::Cpu);
        assert_eq!(tray_state(Verdict::Warming), TrayState::Warming);
        assert_eq!(tray_state(Verdict::Down), TrayState::Down);
        assert_eq!(tray_state(Verdict::NotLoaded), TrayState::Unknown);
        assert_eq!(tray_state(Verdict::Unknown), TrayState::Unknown);
    }

    #[test]
    fn lines_are_short_and_name_the_host() {
        assert_eq!(
            short_line("gpu", "llama3.2:3b · 100% GPU"),
            "gpu: llama3.2:3b · 100% GPU"
        );
        let long = short_line("gpu-box", &"x".repeat(200));
        assert_eq!(long.chars().count(), LINE_MAX);
        assert!(
            long.starts_with("gpu-box: x") && long.ends_with('…'),
            "{long}"
        );
    }

    #[test]
    fn the_icon_shows_the_worst_state() {
        use TrayState::*;
        assert_eq!(worst(Gpu, []), Gpu);
        assert_eq!(worst(Gpu, [Cpu, Partial]), Cpu);
        assert_eq!(worst(Cpu, [Down]), Down);
        assert_eq!(worst(Gpu, [Unknown, Warming]), Unknown);
        assert_eq!(worst(Partial, [Unknown, Gpu]), Partial);
        assert_eq!(worst(Warming, [Gpu]), Warming);
    }
}
