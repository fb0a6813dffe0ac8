//! The view model the tray renders. The shell never decides what the state is:
//! [`crate::forward`] fills a [`TrayView`] from the core's snapshots, and the tray only draws it.

use serde::Serialize;

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
    pub hosts: Vec<crate::hosts::HostLine>,
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
    /// order is [`crate::hosts::worst`]'s). Without hosts, the local state.
    pub fn icon_state(&self) -> TrayState {
        crate::hosts::worst(self.state, self.hosts.iter().map(|h| h.state))
    }

    /// The menu text for the diagnosis item (the item always exists, so it says when all is well).
    pub fn diagnosis_text(&self) -> &str {
        self.diagnosis_line
            .as_deref()
            .unwrap_or("No problems found")
    }
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
}
