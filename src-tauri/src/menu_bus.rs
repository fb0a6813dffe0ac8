//! Hears the tray host open and close our menu, to start the chat before "Open chat" is clicked
//! ([`AppCommand::MenuOpened`], [`AppCommand::MenuClosed`]).
//!
//! Tray hosts (KDE, GNOME's AppIndicator extension, waybar…) call the com.canonical.dbusmenu
//! methods `AboutToShow(0)` and/or `Event(0, "opened", …)` on the app's menu object when the
//! user opens the menu, and `Event(0, "closed", …)` when it closes (`AboutToShowGroup` and
//! `EventGroup` are the batched forms). `tray-icon` and libayatana-appindicator tell the app
//! none of this, but libdbusmenu serves the menu on the process's shared session-bus
//! connection (GIO's singleton, which `gio::bus_get_sync` returns too), so a message filter on
//! that connection sees the calls go by without answering or changing them.

use gtk::gio::{self, DBusMessage, DBusMessageType};
use gtk::glib::{self, Variant};
use std::sync::{Arc, Weak};

use crate::actions::{AppCommand, dispatch};
use crate::error::{Error, Result};
use crate::shell::Shell;

/// The D-Bus interface of exported menus.
const DBUSMENU: &str = "com.canonical.dbusmenu";

/// The root item's id: the menu itself (submenus have others).
const ROOT: i32 = 0;

/// What a dbusmenu call says about the menu as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MenuMove {
    Opened,
    Closed,
}

impl MenuMove {
    fn command(self) -> AppCommand {
        match self {
            MenuMove::Opened => AppCommand::MenuOpened,
            MenuMove::Closed => AppCommand::MenuClosed,
        }
    }
}

/// What the dbusmenu method `member` called with `body` says about the root menu, if anything.
pub(crate) fn menu_move(member: &str, body: Option<&Variant>) -> Option<MenuMove> {
    let arg = |i: usize| body.and_then(|b| b.try_child_value(i));
    match member {
        // AboutToShow(i id) → b needUpdate
        "AboutToShow" => (arg(0)?.get::<i32>()? == ROOT).then_some(MenuMove::Opened),
        // AboutToShowGroup(ai ids) → (ai updatesNeeded, ai idErrors)
        "AboutToShowGroup" => arg(0)?
            .iter()
            .any(|id| id.get::<i32>() == Some(ROOT))
            .then_some(MenuMove::Opened),
        // Event(i id, s eventId, v data, u timestamp)
        "Event" => event(arg(0)?.get::<i32>()?, arg(1)?.str()?),
        // EventGroup(a(isvu) events) → ai idErrors: the last word on the root counts.
        "EventGroup" => arg(0)?
            .iter()
            .filter_map(|e| event(e.try_child_value(0)?.get()?, e.try_child_value(1)?.str()?))
            .next_back(),
        _ => None,
    }
}

fn event(id: i32, kind: &str) -> Option<MenuMove> {
    match (id, kind) {
        (ROOT, "opened") => Some(MenuMove::Opened),
        (ROOT, "closed") => Some(MenuMove::Closed),
        _ => None,
    }
}

fn incoming_move(message: &DBusMessage) -> Option<MenuMove> {
    if message.message_type() != DBusMessageType::MethodCall
        || message.interface().as_deref() != Some(DBUSMENU)
    {
        return None;
    }
    menu_move(message.member()?.as_str(), message.body().as_ref())
}

/// Watches the session bus connection that libdbusmenu serves our menu on. Call on GTK's
/// thread after the tray exists.
pub fn install(shell: &Arc<Shell>) -> Result<()> {
    let bus = gio::bus_get_sync(gio::BusType::Session, gio::Cancellable::NONE)
        .map_err(|e| Error::Tray(format!("the session bus for the menu's events: {e}")))?;
    let weak: Weak<Shell> = Arc::downgrade(shell);
    // The filter runs on GDBus's worker thread for every message: it only looks, and hands what
    // it saw to the main loop (dispatch may start a process).
    bus.add_filter(move |_, message, incoming| {
        if incoming {
            if let Some(moved) = incoming_move(message) {
                tracing::debug!(?moved, "tray menu");
                let weak = weak.clone();
                glib::MainContext::default().invoke(move || {
                    if let Some(shell) = weak.upgrade() {
                        dispatch(&shell, moved.command());
                    }
                });
            }
        }
        Some(message.clone())
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use gtk::glib::{ToVariant, VariantTy};

    /// `(isvu)`: a Variant in a tuple is boxed as `v`.
    fn event_body(id: i32, kind: &str) -> Variant {
        (id, kind, 0i32.to_variant(), 0u32).to_variant()
    }

    #[test]
    fn the_root_menu_opening_and_closing_are_heard_and_nothing_else() {
        let opened = Some(MenuMove::Opened);
        let closed = Some(MenuMove::Closed);
        assert_eq!(
            menu_move("AboutToShow", Some(&(0i32,).to_variant())),
            opened
        );
        assert_eq!(menu_move("AboutToShow", Some(&(7i32,).to_variant())), None);
        assert_eq!(menu_move("AboutToShow", None), None);
        assert_eq!(
            menu_move("AboutToShowGroup", Some(&(vec![3i32, 0],).to_variant())),
            opened
        );
        assert_eq!(
            menu_move("AboutToShowGroup", Some(&(vec![3i32],).to_variant())),
            None
        );
        assert_eq!(menu_move("Event", Some(&event_body(0, "opened"))), opened);
        assert_eq!(menu_move("Event", Some(&event_body(0, "closed"))), closed);
        // A click on an item, or a submenu opening, is not the menu opening.
        assert_eq!(menu_move("Event", Some(&event_body(5, "clicked"))), None);
        assert_eq!(menu_move("Event", Some(&event_body(5, "opened"))), None);
        assert_eq!(menu_move("Event", Some(&event_body(0, "hovered"))), None);
        let group = |events: Vec<(i32, &str)>| {
            let items: Vec<Variant> = events
                .into_iter()
                .map(|(id, kind)| event_body(id, kind))
                .collect();
            Variant::tuple_from_iter([Variant::array_from_iter_with_type(
                VariantTy::new("(isvu)").expect("type"),
                items,
            )])
        };
        assert_eq!(
            menu_move(
                "EventGroup",
                Some(&group(vec![(0, "opened"), (4, "clicked")]))
            ),
            opened
        );
        assert_eq!(
            menu_move(
                "EventGroup",
                Some(&group(vec![(0, "opened"), (0, "closed")]))
            ),
            closed
        );
        assert_eq!(
            menu_move("EventGroup", Some(&group(vec![(4, "clicked")]))),
            None
        );
        assert_eq!(
            menu_move("GetLayout", Some(&(0i32, -1i32).to_variant())),
            None
        );
    }
}
