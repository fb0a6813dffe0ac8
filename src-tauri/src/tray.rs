//! The tray icon and its menu. It draws a [`TrayView`] and turns clicks into [`AppCommand`]s;
//! it decides nothing itself.
//!
//! ## Platform-specific
//! On Linux the icon is a StatusNotifierItem (libayatana-appindicator, loaded at run time) and
//! click events, tooltips and the icon rectangle are unsupported: everything, including "Open
//! chat", is in the menu, and the status text is the menu's first (disabled) item. Without a
//! StatusNotifierWatcher on the session bus nothing appears and nothing fails, so
//! [`watcher_present`] checks for one explicitly.

use std::str::FromStr;
use std::time::Duration;

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Runtime};

use crate::actions::{AppCommand, MenuId, dispatch};
use crate::error::{Error, Result};
use crate::ext::YollayahExt;
use crate::state::TrayUi;
use crate::view::TrayView;

/// The tray icon's id.
pub const TRAY_ID: &str = "yollayah";
/// The bus name a tray host (StatusNotifierWatcher) owns.
pub const WATCHER_NAME: &str = "org.kde.StatusNotifierWatcher";

/// The live tray: the icon and the menu items that change.
pub struct Tray<R: Runtime> {
    icon: TrayIcon<R>,
    status: MenuItem<R>,
    diagnosis: MenuItem<R>,
    mute: CheckMenuItem<R>,
    autostart: CheckMenuItem<R>,
    shown: TrayView,
}

impl<R: Runtime> Tray<R> {
    /// Creates the tray showing `view`. Must run on the main thread (GTK).
    pub fn build(app: &AppHandle<R>, view: &TrayView) -> Result<Self> {
        let item = |id: MenuId, text: &str, enabled: bool| {
            MenuItem::with_id(app, id.as_str(), text, enabled, None::<&str>)
        };
        let status = item(MenuId::Status, &menu_text(&view.status_line), false)?;
        let diagnosis = item(MenuId::Diagnosis, &menu_text(view.diagnosis_text()), false)?;
        let open_chat = item(MenuId::OpenChat, "Open chat", true)?;
        let warm = item(MenuId::WarmModel, "Warm model", true)?;
        let unload = item(MenuId::UnloadModel, "Unload model", true)?;
        let mute = CheckMenuItem::with_id(
            app,
            MenuId::MuteAlerts.as_str(),
            "Mute alerts",
            true,
            view.muted,
            None::<&str>,
        )?;
        let autostart = CheckMenuItem::with_id(
            app,
            MenuId::StartAtLogin.as_str(),
            "Start at login",
            true,
            view.autostart,
            None::<&str>,
        )?;
        let open_config = item(MenuId::OpenConfig, "Open config", true)?;
        let quit = item(MenuId::Quit, "Quit", true)?;
        let menu = Menu::with_items(
            app,
            &[
                &status,
                &diagnosis,
                &PredefinedMenuItem::separator(app)?,
                &open_chat,
                &warm,
                &unload,
                &mute,
                &autostart,
                &open_config,
                &PredefinedMenuItem::separator(app)?,
                &quit,
            ],
        )?;
        let icon = TrayIconBuilder::with_id(TRAY_ID)
            .icon(Image::from_bytes(view.state.icon_png())?)
            .tooltip(&view.status_line)
            .menu(&menu)
            .on_menu_event(on_menu_event)
            .build(app)?;
        Ok(Self {
            icon,
            status,
            diagnosis,
            mute,
            autostart,
            shown: view.clone(),
        })
    }
}

impl<R: Runtime> TrayUi for Tray<R> {
    fn apply(&mut self, view: &TrayView) -> Result<()> {
        if view.state != self.shown.state {
            self.icon
                .set_icon(Some(Image::from_bytes(view.state.icon_png())?))?;
        }
        if view.status_line != self.shown.status_line {
            self.status.set_text(menu_text(&view.status_line))?;
            self.icon.set_tooltip(Some(&view.status_line))?;
        }
        if view.diagnosis_line != self.shown.diagnosis_line {
            self.diagnosis.set_text(menu_text(view.diagnosis_text()))?;
        }
        // Check items are compared with the widget, not our last view: the menu toggles them
        // on click before we hear about it.
        if self.mute.is_checked()? != view.muted {
            self.mute.set_checked(view.muted)?;
        }
        if self.autostart.is_checked()? != view.autostart {
            self.autostart.set_checked(view.autostart)?;
        }
        self.shown = view.clone();
        Ok(())
    }
}

/// Menu labels treat `&` as the mnemonic marker (`&&` is a literal one); status and advice text
/// come from the core (e.g. "rmmod nvidia_uvm && modprobe nvidia_uvm") and must show verbatim.
pub fn menu_text(text: &str) -> String {
    text.replace('&', "&&")
}

fn on_menu_event<R: Runtime>(app: &AppHandle<R>, event: MenuEvent) {
    let id = match MenuId::from_str(event.id().as_ref()) {
        Ok(id) => id,
        Err(err) => {
            tracing::warn!(%err, "menu event ignored");
            return;
        }
    };
    let Some(state) = app.app_state() else {
        return;
    };
    if let Some(cmd) = id.command(&state.view()) {
        dispatch(app, cmd);
    }
}

/// Creates the tray and installs it in the app state. Main thread only.
pub fn install<R: Runtime>(app: &AppHandle<R>) -> Result<()> {
    let Some(state) = app.app_state() else {
        return Ok(());
    };
    let tray = Tray::build(app, &state.view())?;
    state.set_tray(Box::new(tray));
    Ok(())
}

/// Whether a StatusNotifierWatcher owns its name on the session bus, i.e. whether a tray icon
/// can be seen at all.
pub async fn watcher_present(timeout: Duration) -> Result<bool> {
    let ask = async {
        let conn = zbus::connection::Builder::session()
            .method_timeout(timeout)
            .build()
            .await?;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
        let name = zbus::names::BusName::try_from(WATCHER_NAME)?;
        Ok::<bool, Error>(dbus.name_has_owner(name).await.map_err(zbus::Error::from)?)
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| Error::BusTimeout(timeout))?
}

/// Checks for a tray host in the background; records the answer, and when there is none, says
/// so in the log and opens the chat window so the user is not left with an invisible app.
pub fn check_host<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let present = match watcher_present(Duration::from_secs(3)).await {
            Ok(present) => present,
            Err(err) => {
                tracing::warn!(%err, "could not ask the session bus for a tray host");
                if let Some(state) = app.app_state() {
                    state.record_error(&err);
                }
                false
            }
        };
        if let Some(state) = app.app_state() {
            state.set_tray_host(present);
        }
        if present {
            tracing::info!("tray host found ({WATCHER_NAME})");
        } else {
            tracing::warn!(
                "no tray host: nothing owns {WATCHER_NAME} on the session bus, so the tray \
                 icon cannot appear; opening the chat window instead"
            );
            dispatch(&app, AppCommand::OpenChat);
        }
    });
}
