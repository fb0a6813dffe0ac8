//! yollayah-tray: the desktop shell of Yollayah. A tray icon and menu that render a
//! [`TrayView`], desktop alerts, and a chat window created on demand. It decides nothing: a core
//! adapter fills the view through [`set_view`], sends alerts through [`AppState::notify`] and
//! receives the user's [`AppCommand`]s from [`AppState::take_commands`].

pub mod autostart;
pub mod chat;
pub mod cmd;
pub mod command;
pub mod error;
pub mod notify;
pub mod single;
pub mod state;
pub mod tray;
pub mod view;

use tauri::{App, AppHandle, Builder, Manager, RunEvent, Runtime};

pub use command::{AppCommand, MenuId};
pub use error::{Error, Result};
pub use notify::{IncidentId, Notice, NoticeAction, Notifier};
pub use state::{AppState, Status};
pub use view::{TrayState, TrayView};

/// Builds the app: managed state, IPC commands, capabilities. No tray, no single-instance
/// socket, no bus checks: those are [`run`]'s, so tests can boot this with
/// `tauri::test::mock_builder()` and no display.
pub fn run_app<R: Runtime>(builder: Builder<R>) -> Result<App<R>> {
    let app = builder
        .invoke_handler(tauri::generate_handler![cmd::status])
        .build(tauri::generate_context!())?;
    // Managed here rather than in a setup hook: the mock runtime runs setup only once the event
    // loop starts, and tests never start it.
    let handle = app.handle().clone();
    let notifier = Notifier::spawn(notify::DbusBackend, move |cmd| {
        command::dispatch(&handle, cmd);
    })?;
    let view = TrayView {
        autostart: autostart::is_enabled(),
        ..TrayView::default()
    };
    app.manage(AppState::new(view, notifier));
    Ok(app)
}

/// Changes what the tray shows. Callable from any thread: the state changes at once, the tray
/// is redrawn on the main thread (GTK's).
pub fn set_view<R: Runtime>(app: &AppHandle<R>, change: impl FnOnce(&mut TrayView)) {
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    state.update_view(change);
    let handle = app.clone();
    let queued = app.run_on_main_thread(move || {
        if let Some(state) = handle.try_state::<AppState>() {
            state.redraw();
        }
    });
    if let Err(err) = queued {
        state.record_error(&err.into());
    }
}

/// The desktop app's entry point (the binary calls only this).
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Err(err) = try_run() {
        tracing::error!(%err, "yollayah-tray failed to start");
        eprintln!("yollayah-tray: {err}");
        std::process::exit(1);
    }
}

fn try_run() -> Result<()> {
    let socket = single::socket_path();
    let Some(listener) = single::claim(&socket)? else {
        tracing::info!("already running: asked the running instance to open the chat");
        return Ok(());
    };
    let app = run_app(Builder::default())?;
    let handle = app.handle().clone();
    single::serve(listener, move || {
        command::dispatch(&handle, AppCommand::OpenChat)
    })?;
    tray::install(app.handle())?;
    tray::check_host(app.handle());
    // `--open-chat`: start with the chat window open (WebDriver end-to-end tests need a window).
    if std::env::args().skip(1).any(|a| a == "--open-chat") {
        command::dispatch(app.handle(), AppCommand::OpenChat);
    }
    app.run(move |_app, event| match event {
        // Closing the chat window must not end a tray app; only Quit (an explicit exit code) does.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::Exit => {
            let _ = std::fs::remove_file(&socket);
        }
        _ => {}
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{INVOKE_KEY, get_ipc_response, mock_builder};
    use tauri::webview::InvokeRequest;

    fn invoke_status(label: &str) -> std::result::Result<serde_json::Value, serde_json::Value> {
        let app = run_app(mock_builder()).expect("app builds");
        let window = tauri::WebviewWindowBuilder::new(&app, label, Default::default())
            .build()
            .expect("mock window");
        let request = InvokeRequest {
            cmd: "status".into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().expect("url"),
            body: InvokeBody::default(),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(&window, request).map(|body| body.deserialize().expect("json"))
    }

    #[test]
    fn status_returns_the_view_model_to_the_chat_window() {
        let status = invoke_status(chat::CHAT_LABEL).expect("status allowed for chat");
        assert_eq!(status["view"]["state"], "unknown");
        assert_eq!(
            status["view"]["status_line"],
            TrayView::default().status_line
        );
        assert_eq!(status["view"]["muted"], false);
        assert_eq!(status["tray_host"], serde_json::Value::Null);
        assert_eq!(status["notifications"]["state"], "idle");
        assert_eq!(status["last_error"], serde_json::Value::Null);
    }

    #[test]
    fn other_windows_may_not_call_status() {
        let refused = invoke_status("intruder").expect_err("capability limits status to chat");
        assert!(refused.to_string().contains("not allowed"), "{refused}");
    }

    #[test]
    fn set_view_changes_what_status_reports() {
        let app = run_app(mock_builder()).expect("app builds");
        set_view(app.handle(), |v| {
            v.state = TrayState::Partial;
            v.status_line = "llama3.2:3b · 62% GPU · VRAM 11.8/12.0 GiB".into();
            v.diagnosis_line = Some("Context too large for the free VRAM".into());
        });
        let status = app.state::<AppState>().status();
        assert_eq!(status.view.state, TrayState::Partial);
        assert_eq!(
            status.view.diagnosis_text(),
            "Context too large for the free VRAM"
        );
    }

    #[test]
    fn menu_commands_are_forwarded_to_the_adapter() {
        let app = run_app(mock_builder()).expect("app builds");
        let state = app.state::<AppState>();
        let mut rx = state.take_commands().expect("first take");
        assert!(state.take_commands().is_none(), "receiver handed out twice");
        command::dispatch(app.handle(), AppCommand::WarmModel);
        command::dispatch(app.handle(), AppCommand::SetMuted(true));
        assert_eq!(rx.try_recv().expect("warm"), AppCommand::WarmModel);
        assert_eq!(rx.try_recv().expect("mute"), AppCommand::SetMuted(true));
        assert!(state.view().muted, "mute is the shell's own business too");
    }
}
