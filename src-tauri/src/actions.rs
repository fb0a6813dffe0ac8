//! What the user can ask the app to do, from the tray menu, a notification button, the global
//! shortcut or a second launch, and [`dispatch`], which carries each request out itself: windows, autostart and
//! quit in the shell, Warm, Unload and Mute straight on the watchdog's handle (the watchdog's
//! command channel is the one channel a click crosses).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::chat_process::crash_notice;
use crate::error::Error;
use crate::notify::NoticeAction;
use crate::shell::Shell;
use crate::view::TrayView;

/// A request from the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppCommand {
    /// Start the chat window's process, or bring its window forward if it runs.
    OpenChat,
    /// Open the chat if it is closed, close it if it is open (the global shortcut and
    /// `yollayah-tray --toggle-chat`).
    ToggleChat,
    /// The tray menu is opening (the tray host said so over D-Bus, `menu_bus`): start the chat
    /// hidden, so that "Open chat" only has to show it.
    MenuOpened,
    /// The tray menu closed: a pre-started chat that was not shown ends after a short grace.
    MenuClosed,
    /// Load the model into VRAM now.
    WarmModel,
    /// Warm the model of the `[[hosts]]` entry at this index, through its agent.
    WarmHost(usize),
    /// Unload the model now.
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

impl From<NoticeAction> for AppCommand {
    fn from(action: NoticeAction) -> Self {
        match action {
            NoticeAction::WarmModel => AppCommand::WarmModel,
            NoticeAction::ReloadOnGpu => AppCommand::ReloadModel,
            NoticeAction::Open => AppCommand::OpenChat,
        }
    }
}

/// The menu id prefix of a host's "Warm" item; the host's index follows. Host items are made
/// from the config at start, so they are not [`MenuId`]s.
pub const WARM_HOST_PREFIX: &str = "warm-host:";

/// The menu id of host `index`'s "Warm" item.
pub fn warm_host_id(index: usize) -> String {
    format!("{WARM_HOST_PREFIX}{index}")
}

/// The command of a host menu item's id, if `id` is one.
pub fn host_command(id: &str) -> Option<AppCommand> {
    id.strip_prefix(WARM_HOST_PREFIX)?
        .parse()
        .ok()
        .map(AppCommand::WarmHost)
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

/// Carries out `cmd`. Failures are logged and recorded in the status (`last_error`), never
/// raised: a click must not be able to bring the app down. Callable from any thread.
pub fn dispatch(shell: &Arc<Shell>, cmd: AppCommand) {
    tracing::debug!(?cmd, "app command");
    let outcome = match cmd {
        AppCommand::OpenChat => shell.chat.open(&shell.clients, report_crash(shell)),
        AppCommand::ToggleChat => shell.chat.toggle(&shell.clients, report_crash(shell)),
        AppCommand::MenuOpened => shell
            .chat
            .prestart(report_crash(shell))
            .map(|moves| stop_unused_after(shell, moves, MENU_OPEN_LIMIT)),
        AppCommand::MenuClosed => {
            stop_unused_after(shell, shell.chat.menu_closed(), UNUSED_GRACE);
            Ok(())
        }
        AppCommand::WarmHost(index) => {
            crate::hosts::warm(shell, index);
            Ok(())
        }
        AppCommand::WarmModel
        | AppCommand::UnloadModel
        | AppCommand::ReloadModel
        | AppCommand::SetMuted(_) => {
            on_watchdog(shell, cmd);
            Ok(())
        }
        AppCommand::SetAutostart(enabled) => {
            let files = shell.files();
            let outcome = crate::autostart::set(&files.autostart_entry, enabled);
            // Show what is on disk, not what was asked for, so a failed write is visible.
            let actual = crate::autostart::is_enabled(&files.autostart_entry);
            shell.set_view(|view| view.autostart = actual);
            outcome
        }
        AppCommand::OpenConfig => crate::user_files::open_config(&shell.files().config_file),
        AppCommand::Quit => {
            shell.quit();
            Ok(())
        }
    };
    if let Err(err) = outcome {
        report(shell, cmd, &err);
    }
}

/// How long a pre-started chat outlives the menu's closing unused: a menu opened again within
/// it finds the chat still loaded.
const UNUSED_GRACE: Duration = Duration::from_secs(3);

/// How long a pre-started chat waits unused while the menu stays open, for hosts that never
/// say that their menu closed (then the chat window's ~200 MB would stay with the idle tray).
const MENU_OPEN_LIMIT: Duration = Duration::from_secs(30);

/// Stops the pre-started chat after `wait` unless it was shown or the menu moved since `moves`.
fn stop_unused_after(shell: &Arc<Shell>, moves: u64, wait: Duration) {
    let weak = Arc::downgrade(shell);
    shell.runtime().spawn(async move {
        tokio::time::sleep(wait).await;
        if let Some(shell) = weak.upgrade() {
            shell.chat.stop_unused(moves);
        }
    });
}

/// Warm, Reload, Unload and Mute: straight to the watchdog, on a task of their own (a warm waits for a
/// whole model load; the click returns at once).
fn on_watchdog(shell: &Arc<Shell>, cmd: AppCommand) {
    let watchdog = shell.core.watchdog.clone();
    let runtime = shell.runtime().clone();
    let shell = shell.clone();
    runtime.spawn(async move {
        let outcome = match cmd {
            AppCommand::WarmModel => watchdog.warm().await.map(drop),
            AppCommand::ReloadModel => watchdog.reload().await.map(drop),
            AppCommand::UnloadModel => watchdog.unload().await,
            AppCommand::SetMuted(muted) => {
                watchdog.set_muted(muted).await;
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(err) = outcome {
            report(&shell, cmd, &err.into());
        }
    });
}

/// What a crash of the chat process started now does: logged, shown in the status and as a
/// notice, as long as the app still runs (the reaper holds only a weak reference).
fn report_crash(shell: &Arc<Shell>) -> impl FnOnce(String) + Send + 'static {
    let shell = Arc::downgrade(shell);
    move |problem| {
        let Some(shell) = shell.upgrade() else {
            return;
        };
        tracing::warn!("{problem}");
        shell.record_error(&Error::Internal(problem.clone()));
        shell.notify(crash_notice(problem));
    }
}

fn report(shell: &Shell, cmd: AppCommand, err: &Error) {
    tracing::warn!(?cmd, %err, "command failed");
    shell.record_error(err);
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

    #[test]
    fn host_warm_items_round_trip() {
        assert_eq!(
            host_command(&warm_host_id(3)),
            Some(AppCommand::WarmHost(3))
        );
        assert_eq!(host_command("warm-host:x"), None);
        assert_eq!(host_command("warm-model"), None);
        // A host item's id is never mistaken for a fixed item's, nor the other way round.
        assert!(warm_host_id(0).parse::<MenuId>().is_err());
    }

    #[test]
    fn notification_buttons_mean_warm_and_open() {
        assert_eq!(
            AppCommand::from(NoticeAction::WarmModel),
            AppCommand::WarmModel
        );
        assert_eq!(AppCommand::from(NoticeAction::Open), AppCommand::OpenChat);
    }
}
