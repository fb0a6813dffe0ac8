//! The tray icon and its menu, through the `tray-icon` crate (and its `muda` menu) on GTK, with
//! no Tauri and no webview in this process. It draws a [`TrayView`] and turns clicks into
//! [`AppCommand`]s; it decides nothing itself.
//!
//! ## Platform-specific
//! On Linux the icon is a StatusNotifierItem (libayatana-appindicator, loaded at run time) and
//! click events, tooltips and the icon rectangle are unsupported: everything, including "Open
//! chat", is in the menu, and the status text is the menu's first (disabled) item. Without a
//! StatusNotifierWatcher on the session bus nothing appears and nothing fails, so
//! [`watcher_present`] checks for one explicitly.

use std::cell::RefCell;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use gtk::glib;
use tray_icon::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

use crate::actions::{AppCommand, MenuId, dispatch, host_command, warm_host_id};
use crate::error::{Error, Result};
use crate::shell::Shell;
use crate::view::{TrayState, TrayView};

/// The tray icon's id.
pub const TRAY_ID: &str = "yollayah";
/// The bus name a tray host (StatusNotifierWatcher) owns.
pub const WATCHER_NAME: &str = "org.kde.StatusNotifierWatcher";

fn tray_err(err: impl std::fmt::Display) -> Error {
    Error::Tray(err.to_string())
}

/// The RGBA pixels of a state's icon.
fn icon(state: TrayState) -> Result<Icon> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(state.icon_png()));
    decoder.set_transformations(png::Transformations::ALPHA);
    let mut reader = decoder.read_info().map_err(tray_err)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| tray_err("icon too large"))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(tray_err)?;
    if info.color_type != png::ColorType::Rgba || info.bit_depth != png::BitDepth::Eight {
        return Err(tray_err(format!(
            "{} icon is not 8-bit RGBA",
            state.as_str()
        )));
    }
    buf.truncate(info.buffer_size());
    Icon::from_rgba(buf, info.width, info.height).map_err(tray_err)
}

/// The live tray: the icon and the menu items that change. Lives on GTK's thread.
struct Tray {
    icon: TrayIcon,
    status: MenuItem,
    diagnosis: MenuItem,
    /// One disabled line per `[[hosts]]` entry, in the view's order.
    hosts: Vec<MenuItem>,
    mute: CheckMenuItem,
    autostart: CheckMenuItem,
    shown: TrayView,
}

thread_local! {
    // GTK objects are tied to the main thread; redraws are queued there and find the tray here.
    static TRAY: RefCell<Option<Tray>> = const { RefCell::new(None) };
}

impl Tray {
    fn build(view: &TrayView) -> Result<Self> {
        let item = |id: MenuId, text: &str, enabled: bool| {
            MenuItem::with_id(id.as_str(), text, enabled, None)
        };
        let status = item(MenuId::Status, &menu_text(&view.status_line), false);
        let diagnosis = item(MenuId::Diagnosis, &menu_text(view.diagnosis_text()), false);
        let open_chat = item(MenuId::OpenChat, "Open chat", true);
        let warm = item(MenuId::WarmModel, "Warm model", true);
        let unload = item(MenuId::UnloadModel, "Unload model", true);
        let mute = CheckMenuItem::with_id(
            MenuId::MuteAlerts.as_str(),
            "Mute alerts",
            true,
            view.muted,
            None,
        );
        let autostart = CheckMenuItem::with_id(
            MenuId::StartAtLogin.as_str(),
            "Start at login",
            true,
            view.autostart,
            None,
        );
        let open_config = item(MenuId::OpenConfig, "Open config", true);
        let quit = item(MenuId::Quit, "Quit", true);
        let menu = Menu::with_items(&[&status, &diagnosis]).map_err(tray_err)?;
        // The hosts come from the config at start, so their items are made once, here.
        let hosts: Vec<MenuItem> = view
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| MenuItem::with_id(format!("host:{i}"), menu_text(&h.line), false, None))
            .collect();
        for line in &hosts {
            menu.append(line).map_err(tray_err)?;
        }
        let warm_hosts: Vec<MenuItem> = view
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.agent)
            .map(|(i, h)| {
                let text = format!("Warm model on {}", h.name);
                MenuItem::with_id(warm_host_id(i), menu_text(&text), true, None)
            })
            .collect();
        menu.append_items(&[&PredefinedMenuItem::separator(), &open_chat, &warm])
            .map_err(tray_err)?;
        for w in &warm_hosts {
            menu.append(w).map_err(tray_err)?;
        }
        menu.append_items(&[
            &unload,
            &mute,
            &autostart,
            &open_config,
            &PredefinedMenuItem::separator(),
            &quit,
        ])
        .map_err(tray_err)?;
        let icon = TrayIconBuilder::new()
            .with_id(TRAY_ID)
            .with_icon(icon(view.icon_state())?)
            .with_tooltip(&view.status_line)
            .with_menu(Box::new(menu))
            .build()
            .map_err(tray_err)?;
        Ok(Self {
            icon,
            status,
            diagnosis,
            hosts,
            mute,
            autostart,
            shown: view.clone(),
        })
    }

    fn apply(&mut self, view: &TrayView) -> Result<()> {
        if view.icon_state() != self.shown.icon_state() {
            self.icon
                .set_icon(Some(icon(view.icon_state())?))
                .map_err(tray_err)?;
        }
        for (i, item) in self.hosts.iter().enumerate() {
            let line = view.hosts.get(i).map(|h| h.line.as_str());
            if line.is_some() && line != self.shown.hosts.get(i).map(|h| h.line.as_str()) {
                item.set_text(menu_text(line.unwrap_or_default()));
            }
        }
        if view.status_line != self.shown.status_line {
            self.status.set_text(menu_text(&view.status_line));
            self.icon
                .set_tooltip(Some(&view.status_line))
                .map_err(tray_err)?;
        }
        if view.diagnosis_line != self.shown.diagnosis_line {
            self.diagnosis.set_text(menu_text(view.diagnosis_text()));
        }
        // Check items are compared with the widget, not our last view: the menu toggles them
        // on click before we hear about it.
        if self.mute.is_checked() != view.muted {
            self.mute.set_checked(view.muted);
        }
        if self.autostart.is_checked() != view.autostart {
            self.autostart.set_checked(view.autostart);
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

fn on_menu_event(shell: &Weak<Shell>, event: &MenuEvent) {
    if let Some(cmd) = host_command(event.id().as_ref()) {
        if let Some(shell) = shell.upgrade() {
            dispatch(&shell, cmd);
        }
        return;
    }
    let id = match MenuId::from_str(event.id().as_ref()) {
        Ok(id) => id,
        Err(err) => {
            tracing::warn!(%err, "menu event ignored");
            return;
        }
    };
    let Some(shell) = shell.upgrade() else {
        return;
    };
    if let Some(cmd) = id.command(&shell.view()) {
        dispatch(&shell, cmd);
    }
}

fn redraw(shell: &Shell) {
    let view = shell.view();
    let outcome = TRAY.with(|tray| tray.borrow_mut().as_mut().map(|t| t.apply(&view)));
    if let Some(Err(err)) = outcome {
        tracing::warn!(%err, "tray update failed");
        shell.record_error(&err);
    }
}

/// Creates the tray on this thread (GTK's, after `gtk::init`), routes menu clicks to
/// [`dispatch`], and makes the shell's view changes redraw it. Quit leaves GTK's main loop.
pub fn install(shell: &Arc<Shell>) -> Result<()> {
    let tray = Tray::build(&shell.view())?;
    TRAY.with(|t| *t.borrow_mut() = Some(tray));
    let weak = Arc::downgrade(shell);
    MenuEvent::set_event_handler(Some(move |event: MenuEvent| on_menu_event(&weak, &event)));
    let weak = Arc::downgrade(shell);
    shell.set_redraw(Box::new(move || {
        let weak = weak.clone();
        glib::MainContext::default().invoke(move || {
            if let Some(shell) = weak.upgrade() {
                redraw(&shell);
            }
        });
    }));
    shell.set_quit(Box::new(|| {
        glib::MainContext::default().invoke(gtk::main_quit)
    }));
    // A view change that raced the install is drawn now.
    redraw(shell);
    // Without it "Open chat" still works, only without the head start.
    if let Err(err) = crate::menu_bus::install(shell) {
        tracing::warn!(%err, "the menu's opening is not heard: Open chat starts the chat cold");
    }
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
pub fn check_host(shell: &Arc<Shell>) {
    let shell = shell.clone();
    shell.runtime().clone().spawn(async move {
        let present = match watcher_present(Duration::from_secs(3)).await {
            Ok(present) => present,
            Err(err) => {
                tracing::warn!(%err, "could not ask the session bus for a tray host");
                shell.record_error(&err);
                false
            }
        };
        shell.set_tray_host(present);
        if present {
            tracing::info!("tray host found ({WATCHER_NAME})");
        } else {
            tracing::warn!(
                "no tray host: nothing owns {WATCHER_NAME} on the session bus, so the tray \
                 icon cannot appear; opening the chat window instead"
            );
            dispatch(&shell, AppCommand::OpenChat);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_text_shows_ampersands_verbatim_and_every_icon_decodes() {
        assert_eq!(
            menu_text("sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm"),
            "sudo rmmod nvidia_uvm &&&& sudo modprobe nvidia_uvm"
        );
        for state in TrayState::ALL {
            icon(state).expect("icon decodes to RGBA");
        }
    }
}
