//! yollayah-chat: Yollayah's chat window, a process of its own. The tray (`yollayah-tray`)
//! starts it on "Open chat"; it connects to the tray's private socket
//! ([`yollayah_tray::wire`]), forwards every command of the window there ([`commands`]),
//! emits what the tray sends as the window's events, and exits when its window closes, taking
//! its web processes with it. It holds no state of its own: the core lives in the tray.
//!
//! `--hidden` (the tray's pre-start, when its menu opens) builds the window hidden and loads the
//! page; the tray's `Focus` ("Open chat") shows it.
//!
//! `--standalone` runs a core in this process instead (tests, development): the window still
//! talks to it through the socket.

mod commands;
pub mod timing;
mod window;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tauri::{App, AppHandle, Builder, Emitter, Manager, RunEvent, Runtime};
use tokio::sync::mpsc::UnboundedReceiver;
use yollayah_tray::wire::{Client, Heard};

pub use window::CHAT_LABEL;

/// Builds the app around a connected `client`: the commands, and the pump that turns what the
/// tray sends (`heard`) into window events. No window: [`run`] opens it, tests make their own.
/// When the tray goes away the app exits (its window could do nothing).
pub fn run_app<R: Runtime>(
    builder: Builder<R>,
    client: Client,
    heard: UnboundedReceiver<Heard>,
) -> tauri::Result<App<R>> {
    let app = builder
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::send_message,
            commands::cancel_reply,
            commands::retry_reply,
            commands::list_conversations,
            commands::load_conversation,
            commands::warm,
            commands::unload,
            commands::open_external,
            commands::gpu_history,
            commands::list_models,
            commands::chat_choice,
            commands::choose_model,
            commands::set_think,
            commands::watch_model,
            commands::choose_host,
            commands::painted,
            commands::pull_model,
            commands::cancel_pull,
            commands::pull_state,
            commands::check_now,
            commands::image_support,
            commands::attach_image,
            commands::discard_image,
        ])
        .build(tauri::generate_context!())?;
    app.manage(client);
    pump(app.handle().clone(), heard);
    Ok(app)
}

fn pump<R: Runtime>(app: AppHandle<R>, mut heard: UnboundedReceiver<Heard>) {
    tauri::async_runtime::spawn(async move {
        while let Some(msg) = heard.recv().await {
            match msg {
                Heard::Event { name, payload } => {
                    if let Err(err) = app.emit_to(CHAT_LABEL, &name, payload) {
                        tracing::debug!(%err, "event not delivered to the window");
                    }
                }
                Heard::Focus => {
                    // On the main thread, after `try_run` built the window: a `Focus` that
                    // beats the window's creation (a pre-started process's) shows it rather
                    // than building a second one.
                    let handle = app.clone();
                    let shown = app.run_on_main_thread(move || {
                        if let Err(err) = window::open(&handle, true) {
                            tracing::warn!(%err, "could not bring the chat window forward");
                        }
                    });
                    if let Err(err) = shown {
                        tracing::warn!(%err, "could not bring the chat window forward");
                    }
                }
                Heard::Closed => {
                    tracing::warn!("the tray went away; closing the chat window");
                    app.exit(0);
                    break;
                }
            }
        }
    });
}

/// Command-line options of the binary.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    /// `--socket PATH`: the tray's socket (the tray passes it).
    socket: Option<PathBuf>,
    /// `--standalone`: run a core in this process.
    standalone: bool,
    /// `--demo` (with `--standalone`): against an in-process simulator.
    demo: bool,
    /// `--hidden`: build the window hidden, until the tray says `Focus`.
    hidden: bool,
}

const USAGE: &str = "usage: yollayah-chat [--socket PATH [--hidden] | --standalone [--demo]]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut out = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--socket" => out.socket = Some(args.next().ok_or(USAGE)?.into()),
            "--standalone" => out.standalone = true,
            "--demo" => out.demo = true,
            "--hidden" => out.hidden = true,
            other => return Err(format!("unknown argument {other:?} ({USAGE})")),
        }
    }
    if out.demo && !out.standalone {
        return Err(format!("--demo needs --standalone ({USAGE})"));
    }
    if out.hidden && out.standalone {
        return Err(format!("--hidden needs the tray's socket ({USAGE})"));
    }
    Ok(out)
}

/// The binary's entry point.
pub fn run() {
    let entered = timing::now_ms();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    timing::start(entered);
    timing::mark_at("main entered (exec and dynamic linking before it)", entered);
    if let Err(err) = try_run() {
        tracing::error!(%err, "yollayah-chat failed");
        eprintln!("yollayah-chat: {err}");
        std::process::exit(1);
    }
}

/// Starts a core in this process, listening at a socket of its own; returns the socket and the
/// running shell (kept alive as long as the app).
fn standalone(demo: bool) -> yollayah_tray::Result<(PathBuf, Arc<yollayah_tray::Shell>)> {
    let socket = yollayah_tray::wire::socket_path()
        .with_file_name(format!("yollayah-chat-{}.sock", std::process::id()));
    let shell = tauri::async_runtime::block_on(async {
        let options = yollayah_tray::core_options(demo).await?;
        let chat = yollayah_tray::ChatProcess::new(yollayah_tray::chat_program(), socket.clone());
        yollayah_tray::start(options, yollayah_tray::DbusBackend, &socket, chat)
    })?;
    Ok((socket, shell))
}

fn connect(socket: &Path) -> yollayah_tray::Result<(Client, UnboundedReceiver<Heard>)> {
    tauri::async_runtime::block_on(Client::connect(socket))
}

fn try_run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args(std::env::args().skip(1))?;
    let (socket, shell) = if args.standalone {
        let (socket, shell) = standalone(args.demo)?;
        (socket, Some(shell))
    } else {
        (
            args.socket.unwrap_or_else(yollayah_tray::wire::socket_path),
            None,
        )
    };
    let (client, heard) = connect(&socket)?;
    timing::mark("socket connected");
    let app = run_app(Builder::default(), client, heard)?;
    timing::mark("app built (GTK up)");
    window::open(app.handle(), !args.hidden)?;
    timing::mark("window and webview created");
    app.run(move |_, event| {
        if let RunEvent::Exit = event {
            if let Some(shell) = &shell {
                shell.quit();
                let _ = std::fs::remove_file(&socket);
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_name_the_socket_or_ask_for_a_core_of_our_own() {
        assert_eq!(parse_args([]).expect("none"), Args::default());
        assert_eq!(
            parse_args(["--socket".to_owned(), "/run/x.sock".to_owned()]).expect("socket"),
            Args {
                socket: Some("/run/x.sock".into()),
                ..Args::default()
            }
        );
        assert!(parse_args(["--socket".to_owned()]).is_err());
        assert!(parse_args(["--demo".to_owned()]).is_err());
        assert!(parse_args(["--standalone".to_owned(), "--demo".to_owned()]).is_ok());
        assert!(parse_args(["--hidden".to_owned()]).expect("hidden").hidden);
        assert!(parse_args(["--standalone".to_owned(), "--hidden".to_owned()]).is_err());
    }
}
