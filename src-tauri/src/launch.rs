//! The binary's start-up: arguments, logging, GL off, the single instance, demo mode, the core
//! on its tokio runtime, the tray and GTK's main loop.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::actions::{AppCommand, dispatch};
use crate::chat_process::{ChatProcess, NO_GL_MARK, chat_program};
use crate::error::{Error, Result};
use crate::startup::{CoreOptions, GpuSource};
use crate::{notify, single_instance, tray, wire};

/// Command-line options of the binary.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    /// `--demo`: an in-process simulator instead of Ollama (builds with the `demo` feature).
    demo: bool,
    /// `--open-chat`: start with the chat window open.
    open_chat: bool,
    /// `--toggle-chat`: have the running tray open the chat, or close it when open; with no
    /// tray running, start one with the chat open (what a desktop shortcut wants).
    toggle_chat: bool,
    /// `--headless`: everything but the tray icon, no GTK (the memory measurement on the GPU
    /// machine, which has no display: docs/benchmarks.md).
    headless: bool,
}

const USAGE: &str = "usage: yollayah-tray [--demo] [--open-chat | --toggle-chat] [--headless]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args> {
    let mut out = Args::default();
    for arg in args {
        match arg.as_str() {
            "--demo" => out.demo = true,
            "--open-chat" => out.open_chat = true,
            "--toggle-chat" => out.toggle_chat = true,
            "--headless" => out.headless = true,
            other => {
                return Err(Error::BadInput(format!(
                    "unknown argument {other:?} ({USAGE})"
                )));
            }
        }
    }
    Ok(out)
}

/// GTK probes GL visuals at start-up, and Mesa then maps libLLVM (about 26 MB PSS) into a
/// process that never draws with GL. `GDK_GL=disable` stops the probe, but it must be in the
/// environment before GTK starts and setting our own environment needs `unsafe`: so the tray
/// re-executes itself once with it set (same pid, same arguments). A user's own `GDK_GL` wins.
fn without_gl() {
    if std::env::var_os("GDK_GL").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut cmd = Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    let err = cmd
        .args(args)
        .env("GDK_GL", "disable")
        .env(NO_GL_MARK, "1")
        .exec();
    eprintln!("yollayah-tray: could not restart without GL ({err}); going on with it");
}

/// The desktop app's entry point (the binary calls only this).
pub fn run() {
    without_gl();
    // Logs go to stderr: stdout is for what scripts read (demo mode's simulator URL).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
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

/// The core's options: demo mode's simulator, or the test hooks `YOLLAYAH_OLLAMA_URL` (an
/// ollama-sim a test started) and `YOLLAYAH_GPU_SOURCE=sim` (its GPU view). Demo mode must run
/// inside a tokio runtime (the simulator is a task); it prints the simulator's URL as the first
/// line on stdout, so scripts and tests can stage states on it.
pub async fn core_options(demo: bool) -> Result<CoreOptions> {
    if demo {
        return demo_options().await;
    }
    let mut options = CoreOptions::default();
    if let Ok(url) = std::env::var("YOLLAYAH_OLLAMA_URL") {
        options.ollama_url = Some(url);
    }
    if std::env::var("YOLLAYAH_GPU_SOURCE").as_deref() == Ok("sim") {
        options.gpu = GpuSource::Simulator;
    }
    Ok(options)
}

#[cfg(feature = "demo")]
async fn demo_options() -> Result<CoreOptions> {
    let options = crate::demo::start().await?;
    if let Some(sim) = &options.sim {
        println!("yollayah-tray: demo simulator at {}", sim.url());
        tracing::info!(url = %sim.url(), "demo mode: in-process ollama-sim");
    }
    Ok(options)
}

#[cfg(not(feature = "demo"))]
async fn demo_options() -> Result<CoreOptions> {
    Err(Error::BadInput(
        "this build has no demo mode (build with `--features demo`)".into(),
    ))
}

fn try_run() -> Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let instance = single_instance::socket_path();
    let request = if args.toggle_chat {
        single_instance::Request::Toggle
    } else {
        single_instance::Request::Open
    };
    let Some(listener) = single_instance::claim(&instance, request)? else {
        tracing::info!(
            ?request,
            "already running: passed the request to the running instance"
        );
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("yollayah-core")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    let socket = wire::socket_path();
    let shell = runtime.block_on(async {
        let options = core_options(args.demo).await?;
        let chat = ChatProcess::new(chat_program(), socket.clone());
        crate::start(options, notify::DbusBackend, &socket, chat)
    })?;
    let on_request = shell.clone();
    single_instance::serve(listener, move |request| {
        let cmd = match request {
            single_instance::Request::Open => AppCommand::OpenChat,
            single_instance::Request::Toggle => AppCommand::ToggleChat,
        };
        dispatch(&on_request, cmd);
    })?;
    if args.headless {
        tracing::info!("running headless (no tray icon) until SIGTERM");
        runtime.block_on(async {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
            }
        });
    } else {
        gtk::init().map_err(|e| Error::Tray(format!("GTK: {e}")))?;
        tray::install(&shell)?;
        tray::check_host(&shell);
        crate::shortcut::start(&shell, shell.core.shortcut);
        // SIGTERM (logout, systemd, kill) ends the app as Quit does.
        let on_term = shell.clone();
        runtime.spawn(async move {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
                on_term.quit();
            }
        });
        if args.open_chat || args.toggle_chat {
            dispatch(&shell, AppCommand::OpenChat);
        }
        tracing::info!("tray running");
        gtk::main();
    }
    shell.quit();
    let _ = std::fs::remove_file(&instance);
    let _ = std::fs::remove_file(&socket);
    if args.demo {
        #[cfg(feature = "demo")]
        crate::demo::clean_up();
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_demo_open_chat_toggle_chat_headless_or_nothing() {
        assert_eq!(parse_args([]).expect("none"), Args::default());
        assert_eq!(
            parse_args(["--demo".to_owned(), "--open-chat".to_owned()]).expect("both"),
            Args {
                demo: true,
                open_chat: true,
                toggle_chat: false,
                headless: false,
            }
        );
        assert!(
            parse_args(["--toggle-chat".to_owned()])
                .expect("toggle")
                .toggle_chat
        );
        assert!(
            parse_args(["--headless".to_owned()])
                .expect("headless")
                .headless
        );
        assert!(matches!(
            parse_args(["--dmeo".to_owned()]),
            Err(Error::BadInput(m)) if m.contains("--dmeo")
        ));
    }
}
