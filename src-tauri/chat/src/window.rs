//! The chat window. Closing it destroys it, and with the last window the process exits: the
//! idle tray runs no webview processes (the webview is most of a Tauri app's memory).

use tauri::webview::PageLoadEvent;
use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindow, WebviewWindowBuilder};

use tauri::Result;

/// The chat window's label (the capability file grants permissions to this label).
pub const CHAT_LABEL: &str = "chat";

/// Whether `url` is one of the app's own pages (`tauri://localhost`, or the
/// `http(s)://tauri.localhost` form some platforms use).
fn is_app_page(url: &tauri::Url) -> bool {
    match url.scheme() {
        "tauri" => url.host_str() == Some("localhost"),
        "http" | "https" => url.host_str() == Some("tauri.localhost") && url.port().is_none(),
        _ => false,
    }
}

/// Opens the chat window, or brings it forward if it is already open (shown by a pre-started
/// process: `visible`). `visible` false builds it hidden: the page loads, and a later call
/// with `visible` shows it.
pub fn open<R: Runtime>(app: &AppHandle<R>, visible: bool) -> Result<()> {
    if let Some(window) = app.get_webview_window(CHAT_LABEL) {
        if visible {
            window.unminimize()?;
            show(&window)?;
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
        // Always built hidden, and shown once the page starts loading (`visible`) or on the
        // tray's `Focus` (pre-started). Mapped at once, GTK asked WebKit to paint before the
        // web process had started, and WebKit's UI process then blocked for its 500 ms
        // timeout waiting for the web process's first backing store (1 in 3 cold opens,
        // docs/benchmarks.md); once the page loads, the web process is up.
        .visible(false)
        .focused(false)
        // Model output is untrusted: whatever slips past the sanitiser or a click handler, the
        // window never leaves the app's own pages (links go out through `open_external`).
        .on_navigation(is_app_page)
        .on_page_load(move |window, payload| {
            match payload.event() {
                PageLoadEvent::Started => crate::timing::mark("page load started"),
                PageLoadEvent::Finished => crate::timing::mark("page load finished"),
            }
            if visible && payload.event() == PageLoadEvent::Started {
                if let Err(err) = show(&window) {
                    tracing::warn!(%err, "could not show the chat window");
                }
            }
        })
        .build()?;
    Ok(())
}

/// Shows the (hidden) window and gives it focus.
fn show<R: Runtime>(window: &WebviewWindow<R>) -> Result<()> {
    if !window.is_visible()? {
        crate::timing::mark("window shown");
        window.show()?;
    }
    window.set_focus()
}

#[cfg(test)]
mod tests {
    use super::is_app_page;

    #[test]
    fn only_the_apps_own_pages_are_navigable() {
        let ok = [
            "tauri://localhost/index.html",
            "tauri://localhost/",
            "http://tauri.localhost/index.html",
        ];
        let refused = [
            "https://example.com/",
            "http://localhost:11434/api/tags",
            "tauri://evil/index.html",
            "http://tauri.localhost:8080/",
            "http://tauri.localhost.evil.com/",
            "file:///etc/passwd",
            "data:text/html,<script>1</script>",
            "javascript:alert(1)",
        ];
        for u in ok {
            assert!(is_app_page(&u.parse().expect("url")), "{u}");
        }
        for u in refused {
            assert!(!is_app_page(&u.parse().expect("url")), "{u}");
        }
    }
}
