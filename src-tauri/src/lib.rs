//! yollayah-tray: the desktop shell of Yollayah. A tray icon and menu that render a
//! [`TrayView`], desktop alerts, and a chat window created on demand. It decides nothing: a core
//! adapter fills the view through [`set_view`], sends alerts through [`AppState::notify`] and
//! receives the user's [`AppCommand`]s from [`AppState::take_commands`]. The adapter is
//! [`core`] (startup) + [`forward`] (events in, commands out); the window's IPC is [`cmd`].

pub mod autostart;
pub mod chat;
pub mod cmd;
pub mod command;
pub mod core;
pub mod demo;
pub mod error;
pub mod forward;
pub mod notify;
pub mod reply;
pub mod samples;
pub mod single;
pub mod state;
pub mod tray;
pub mod view;

use tauri::{App, AppHandle, Builder, Manager, RunEvent, Runtime};

pub use crate::core::{Core, CoreOptions, GpuSource};
pub use command::{AppCommand, MenuId};
pub use error::{Error, Result};
pub use notify::{IncidentId, Notice, NoticeAction, Notifier};
pub use state::{AppState, Status};
pub use view::{TrayState, TrayView};

/// Builds the app: managed state, the core (watchdog on Tauri's runtime, forwarding of its
/// events), IPC commands, capabilities. No tray, no single-instance socket, no bus checks:
/// those are [`run`]'s, so tests can boot this with `tauri::test::mock_builder()` and no
/// display. `sim` is demo mode's simulator, kept alive with the core.
///
/// Call it outside any tokio runtime (it blocks on Tauri's to start the core).
pub fn run_app<R: Runtime>(
    builder: Builder<R>,
    options: CoreOptions,
    sim: Option<ollama_sim::SimHandle>,
) -> Result<App<R>> {
    let app = builder
        .invoke_handler(tauri::generate_handler![
            cmd::status,
            cmd::send_message,
            cmd::cancel_reply,
            cmd::retry_reply,
            cmd::new_conversation,
            cmd::list_conversations,
            cmd::load_conversation,
            cmd::render_markdown,
            cmd::warm,
            cmd::unload,
            cmd::open_external,
            cmd::gpu_history,
        ])
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
    // The watchdog is a tokio task: start it inside Tauri's runtime.
    let core = tauri::async_runtime::block_on(async move { Core::start(options, sim) })?;
    for problem in &core.problems {
        tracing::warn!("{problem}");
    }
    app.manage(core);
    forward::spawn(app.handle());
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

/// Command-line options of the binary.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    demo: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args> {
    let mut out = Args::default();
    for arg in args {
        match arg.as_str() {
            "--demo" => out.demo = true,
            other => {
                return Err(Error::BadInput(format!(
                    "unknown argument {other:?} (usage: yollayah-tray [--demo])"
                )));
            }
        }
    }
    Ok(out)
}

fn try_run() -> Result<()> {
    // `--open-chat`: start with the chat window open (WebDriver end-to-end tests need a window).
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let open_chat = raw.iter().any(|a| a == "--open-chat");
    let args = parse_args(raw.into_iter().filter(|a| a != "--open-chat"))?;
    let socket = single::socket_path();
    let Some(listener) = single::claim(&socket)? else {
        tracing::info!("already running: asked the running instance to open the chat");
        return Ok(());
    };
    let (options, sim) = if args.demo {
        let (sim, options) = tauri::async_runtime::block_on(demo::start())?;
        // On stdout, so scripts and tests can find the simulator to stage states on it.
        println!("yollayah-tray: demo simulator at {}", sim.url());
        tracing::info!(url = %sim.url(), "demo mode: in-process ollama-sim");
        (options, Some(sim))
    } else {
        let mut options = CoreOptions::default();
        // Test hooks (tests/webview): an ollama-sim the test started, and its GPU view.
        if let Ok(url) = std::env::var("YOLLAYAH_OLLAMA_URL") {
            options.ollama_url = Some(url);
        }
        if std::env::var("YOLLAYAH_GPU_SOURCE").as_deref() == Ok("sim") {
            options.gpu = GpuSource::Simulator;
        }
        (options, None)
    };
    let app = run_app(Builder::default(), options, sim)?;
    let handle = app.handle().clone();
    single::serve(listener, move || {
        command::dispatch(&handle, AppCommand::OpenChat)
    })?;
    tray::install(app.handle())?;
    tray::check_host(app.handle());
    if open_chat {
        command::dispatch(app.handle(), AppCommand::OpenChat);
    }
    app.run(move |app_handle, event| match event {
        // Closing the chat window must not end a tray app; only Quit (an explicit exit code) does.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::Exit => {
            if let Some(core) = app_handle.try_state::<Core>() {
                core.shutdown();
            }
            let _ = std::fs::remove_file(&socket);
        }
        _ => {}
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_demo_or_nothing() {
        assert_eq!(parse_args([]).expect("none"), Args { demo: false });
        assert_eq!(
            parse_args(["--demo".to_owned()]).expect("demo"),
            Args { demo: true }
        );
        assert!(matches!(
            parse_args(["--dmeo".to_owned()]),
            Err(Error::BadInput(m)) if m.contains("--dmeo")
        ));
    }
}
