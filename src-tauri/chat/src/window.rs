//! The chat window. Closing it destroys it, and with the last window the process exits: the
//! idle tray runs no webview processes (the webview is most of a Tauri app's memory).

use tauri::webview::PageLoadEvent;
use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

use tauri::Result;

/// The chat window's label (the capability file grants permissions to this label).
pub const CHAT_LABEL: &str = "chat";

/// Opens the chat window, or brings it forward if it is already open (shown by a pre-started
/// process: `visible`). `visible` false builds it hidden: the page loads, and a later call
/// with `visible` shows it.
pub fn open<R: Runtime>(app: &AppHandle<R>, visible: bool) -> Result<()> {
    if let Some(window) = app.get_webview_window(CHAT_LABEL) {
        if visible {
            if window.is_visible()? {
                window.unminimize()?;
            } else {
                crate::timing::mark("shown (Open chat)");
                window.show()?;
            }
            window.set_focus()?;
        }
        return Ok(());
    }
    // Closing a Tauri window destroys it (and its web process) unless a handler prevents it;
    // none does, which is the point.
    WebviewWindowBuilder::new(app, CHAT_LABEL, WebviewUrl::App("index.html".into()))
        .title("Yollayah")
        .inner_size(400.0, 560.0)
        .min_inner_size(320.0, 400.0)
        // Files dropped on the window reach the page as HTML drag-and-drop (with their bytes),
        // where ui/images.js attaches them; Tauri's own handler would swallow the drop.
        .disable_drag_drop_handler()
        .visible(visible)
        // Focus follows the window's showing, not its (hidden) creation.
        .focused(visible)
        .on_page_load(|_, payload| match payload.event() {
            PageLoadEvent::Started => crate::timing::mark("page load started"),
            PageLoadEvent::Finished => crate::timing::mark("page load finished"),
        })
        .build()?;
    Ok(())
}
