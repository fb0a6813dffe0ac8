//! The global shortcut that opens and closes the chat (`[shortcut] toggle_chat`, Super+Y by
//! default). Bound, in this order, through:
//!
//! 1. the xdg-desktop-portal's `org.freedesktop.portal.GlobalShortcuts` ([`portal`]), where
//!    the desktop offers it (KDE Plasma, GNOME ≥ 48; on Wayland the only way);
//! 2. an X11 key grab on the root window ([`x11`]), in an X11 session;
//! 3. nothing: the user is told once (a notification, remembered in
//!    [`UserFiles::shortcut_notice`](crate::UserFiles)) to bind a desktop shortcut to
//!    `yollayah-tray --toggle-chat`, which reaches this process through the single instance.
//!
//! Every route ends in the same [`AppCommand::ToggleChat`], so a shortcut opens the chat by the
//! very path of the menu's "Open chat".

pub(crate) mod portal;
pub(crate) mod x11;

use std::sync::{Arc, Weak};
use std::time::Duration;

use yollayah_core::shortcut::{Accelerator, Binding};

use crate::actions::{AppCommand, dispatch};
use crate::ipc::ShortcutState;
use crate::notify::Notice;
use crate::shell::Shell;

/// How long the portal may take to say whether it offers global shortcuts at all.
const PORTAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the user is told when no route works (also in the docs, `docs/desktop.md`).
pub fn fallback_advice() -> &'static str {
    "Bind a shortcut in your desktop's keyboard settings to the command \
     `yollayah-tray --toggle-chat`: it opens the chat, or closes it when open."
}

/// Whether a key grab on X11 can work: an X11 session, not Wayland (an X11 grab under
/// XWayland sees only the keys typed into X11 windows).
fn x11_session() -> bool {
    let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some()
        || std::env::var("XDG_SESSION_TYPE").as_deref() == Ok("wayland");
    std::env::var_os("DISPLAY").is_some() && !wayland
}

/// Binds the configured shortcut in the background; the outcome lands in the shell's status.
pub fn start(shell: &Arc<Shell>, binding: Binding) {
    let Some(accel) = binding.accelerator() else {
        shell.set_shortcut(ShortcutState::Off);
        tracing::info!("global shortcut off");
        return;
    };
    shell.set_shortcut(ShortcutState::Binding {
        shortcut: accel.to_string(),
    });
    let weak = Arc::downgrade(shell);
    let on_press: Arc<dyn Fn() + Send + Sync> = Arc::new(move || toggle(&weak));
    let shell = shell.clone();
    shell.runtime().clone().spawn(async move {
        let mut reasons = Vec::new();
        match portal::bind(accel, on_press.clone(), PORTAL_TIMEOUT).await {
            Ok(trigger) => {
                tracing::info!(%accel, ?trigger, "global shortcut bound through the desktop portal");
                shell.set_shortcut(ShortcutState::Portal {
                    shortcut: accel.to_string(),
                    trigger,
                });
                return;
            }
            Err(err) => {
                tracing::info!(%err, "no global shortcut through the desktop portal");
                reasons.push(err.to_string());
            }
        }
        if x11_session() {
            let press = on_press.clone();
            match tokio::task::spawn_blocking(move || x11::grab(accel, press)).await {
                Ok(Ok(())) => {
                    tracing::info!(%accel, "global shortcut grabbed on X11");
                    shell.set_shortcut(ShortcutState::X11 {
                        shortcut: accel.to_string(),
                    });
                    return;
                }
                Ok(Err(err)) => reasons.push(err.to_string()),
                Err(err) => reasons.push(format!("X11 key grab: {err}")),
            }
        } else {
            reasons.push("not an X11 session, so no key grab".into());
        }
        unavailable(&shell, accel, reasons.join("; "));
    });
}

fn toggle(shell: &Weak<Shell>) {
    if let Some(shell) = shell.upgrade() {
        dispatch(&shell, AppCommand::ToggleChat);
    }
}

/// No route: logged at every start, notified once per reason.
fn unavailable(shell: &Arc<Shell>, accel: Accelerator, reason: String) {
    tracing::warn!(%accel, %reason, "the global shortcut is not available; {}", fallback_advice());
    shell.set_shortcut(ShortcutState::Unavailable {
        shortcut: accel.to_string(),
        reason: reason.clone(),
    });
    let marker = &shell.files().shortcut_notice;
    let said = format!("{accel}: {reason}");
    if std::fs::read_to_string(marker).is_ok_and(|told| told == said) {
        return;
    }
    shell.notify(Notice {
        id: yollayah_core::alerts::IncidentId(u64::MAX - 1),
        summary: format!("Yollayah: the shortcut {accel} is not available"),
        body: format!("{reason}. {}", fallback_advice()),
        actions: Vec::new(),
        replaces: None,
    });
    let written = marker
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(marker, &said));
    if let Err(err) = written {
        tracing::warn!(%err, path = %marker.display(), "could not remember the shortcut notice");
    }
}
