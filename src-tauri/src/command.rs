//! What the user can ask the app to do, from the tray menu or a notification action, and where
//! those requests go. The shell carries out the ones that are its own business (windows,
//! autostart, config, quit) and forwards every command on a channel, so a later adapter can
//! connect Warm/Unload (and mute, for its alert policy) to the core.

use std::str::FromStr;

use tauri::{AppHandle, Manager, Runtime};

use crate::error::Error;
use crate::state::AppState;
use crate::view::TrayView;

/// A request from the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppCommand {
    /// Create the chat window, or focus it if it is open.
    OpenChat,
    /// Load the model into VRAM now (handled by the core adapter).
    WarmModel,
    /// Unload the model now (handled by the core adapter).
    UnloadModel,
    /// Unload, then load the model, so Ollama places it again (handled by the core adapter).
    ReloadModel,
    /// Suppress (true) or allow (false) desktop alerts.
    SetMuted(bool),
    /// Add (true) or remove (false) the XDG autostart entry.
    SetAutostart(bool),
    /// Open the config file in the user's editor (`xdg-open`).
    OpenConfig,
    /// Exit the app.
    Quit,
}

/// The tray menu's item ids: the one place they are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MenuId {
    /// The disabled status line.
    Status,
    /// The disabled diagnosis line.
    Diagnosis,
    /// "Open chat".
    OpenChat,
    /// "Warm model".
    WarmModel,
    /// "Unload model".
    UnloadModel,
    /// "Mute alerts" (check item).
    MuteAlerts,
    /// "Start at login" (check item).
    StartAtLogin,
    /// "Open config".
    OpenConfig,
    /// "Quit".
    Quit,
}

impl MenuId {
    /// Every id, in menu order.
    pub const ALL: [MenuId; 9] = [
        MenuId::Status,
        MenuId::Diagnosis,
        MenuId::OpenChat,
        MenuId::WarmModel,
        MenuId::UnloadModel,
        MenuId::MuteAlerts,
        MenuId::StartAtLogin,
        MenuId::OpenConfig,
        MenuId::Quit,
    ];

    /// The id string given to the menu item.
    pub fn as_str(self) -> &'static str {
        match self {
            MenuId::Status => "status",
            MenuId::Diagnosis => "diagnosis",
            MenuId::OpenChat => "open-chat",
            MenuId::WarmModel => "warm-model",
            MenuId::UnloadModel => "unload-model",
            MenuId::MuteAlerts => "mute-alerts",
            MenuId::StartAtLogin => "start-at-login",
            MenuId::OpenConfig => "open-config",
            MenuId::Quit => "quit",
        }
    }

    /// The command a click on this item means, given what the menu currently shows (check
    /// items toggle the shown value). The two information lines mean nothing.
    pub fn command(self, view: &TrayView) -> Option<AppCommand> {
        match self {
            MenuId::Status | MenuId::Diagnosis => None,
            MenuId::OpenChat => Some(AppCommand::OpenChat),
            MenuId::WarmModel => Some(AppCommand::WarmModel),
            MenuId::UnloadModel => Some(AppCommand::UnloadModel),
            MenuId::MuteAlerts => Some(AppCommand::SetMuted(!view.muted)),
            MenuId::StartAtLogin => Some(AppCommand::SetAutostart(!view.autostart)),
            MenuId::OpenConfig => Some(AppCommand::OpenConfig),
            MenuId::Quit => Some(AppCommand::Quit),
        }
    }
}

impl FromStr for MenuId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MenuId::ALL
            .into_iter()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| Error::UnknownMenuId(s.to_owned()))
    }
}

/// Carries out `cmd`: the shell's own part first, then forwards it to the adapter channel.
/// Failures are logged and recorded in the status (`last_error`), never raised: a click must
/// not be able to bring the app down.
pub fn dispatch<R: Runtime>(app: &AppHandle<R>, cmd: AppCommand) {
    tracing::debug!(?cmd, "app command");
    let Some(state) = app.try_state::<AppState>() else {
        tracing::warn!(?cmd, "command before the app state exists; dropped");
        return;
    };
    let outcome = match cmd {
        AppCommand::OpenChat => crate::chat::open(app),
        AppCommand::SetMuted(muted) => {
            crate::set_view(app, |view| view.muted = muted);
            Ok(())
        }
        AppCommand::SetAutostart(enabled) => {
            let outcome = crate::autostart::set(enabled);
            // Show what is on disk, not what was asked for, so a failed write is visible.
            let actual = crate::autostart::is_enabled();
            crate::set_view(app, |view| view.autostart = actual);
            outcome
        }
        AppCommand::OpenConfig => crate::autostart::open_config(),
        AppCommand::Quit => {
            app.exit(0);
            Ok(())
        }
        AppCommand::WarmModel | AppCommand::UnloadModel | AppCommand::ReloadModel => Ok(()),
    };
    if let Err(err) = outcome {
        tracing::warn!(?cmd, %err, "command failed");
        state.record_error(&err);
    }
    state.forward(cmd);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_ids_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for id in MenuId::ALL {
            assert!(seen.insert(id.as_str()), "duplicate id {}", id.as_str());
            assert_eq!(id.as_str().parse::<MenuId>().expect("own id parses"), id);
        }
        assert!(matches!("nope".parse::<MenuId>(), Err(Error::UnknownMenuId(s)) if s == "nope"));
    }

    #[test]
    fn check_items_toggle_the_shown_value() {
        let mut view = TrayView::default();
        assert_eq!(
            MenuId::MuteAlerts.command(&view),
            Some(AppCommand::SetMuted(true))
        );
        assert_eq!(
            MenuId::StartAtLogin.command(&view),
            Some(AppCommand::SetAutostart(true))
        );
        view.muted = true;
        view.autostart = true;
        assert_eq!(
            MenuId::MuteAlerts.command(&view),
            Some(AppCommand::SetMuted(false))
        );
        assert_eq!(
            MenuId::StartAtLogin.command(&view),
            Some(AppCommand::SetAutostart(false))
        );
        assert_eq!(MenuId::Status.command(&view), None);
        assert_eq!(MenuId::Diagnosis.command(&view), None);
    }
}
