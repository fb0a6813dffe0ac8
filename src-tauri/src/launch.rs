//! The binary's start-up: arguments, logging, the single instance, demo mode, the tray, and
//! the event loop around [`crate::run_app`].

use tauri::{Builder, RunEvent};

use crate::actions::{AppCommand, dispatch};
use crate::error::{Error, Result};
use crate::ext::YollayahExt;
use crate::startup::{CoreOptions, GpuSource};
use crate::{notify, single_instance, tray};

/// Command-line options of the binary.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    /// `--demo`: an in-process simulator instead of Ollama (builds with the `demo` feature).
    demo: bool,
    /// `--open-chat`: start with the chat window open (the WebDriver tests need a window).
    open_chat: bool,
}

const USAGE: &str = "usage: yollayah-tray [--demo] [--open-chat]";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args> {
    let mut out = Args::default();
    for arg in args {
        match arg.as_str() {
            "--demo" => out.demo = true,
            "--open-chat" => out.open_chat = true,
            other => {
                return Err(Error::BadInput(format!(
                    "unknown argument {other:?} ({USAGE})"
                )));
            }
        }
    }
    Ok(out)
}

/// The desktop app's entry point (the binary calls only this).
pub fn run() {
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

fn options(args: &Args) -> Result<CoreOptions> {
    if args.demo {
        return demo_options();
    }
    let mut options = CoreOptions::default();
    // Test hooks (tests/webview): an ollama-sim the test started, and its GPU view.
    if let Ok(url) = std::env::var("YOLLAYAH_OLLAMA_URL") {
        options.ollama_url = Some(url);
    }
    if std::env::var("YOLLAYAH_GPU_SOURCE").as_deref() == Ok("sim") {
        options.gpu = GpuSource::Simulator;
    }
    Ok(options)
}

#[cfg(feature = "demo")]
fn demo_options() -> Result<CoreOptions> {
    let options = tauri::async_runtime::block_on(crate::demo::start())?;
    if let Some(sim) = &options.sim {
        // The first line on stdout, so scripts and tests can find the simulator to stage
        // states on it.
        println!("yollayah-tray: demo simulator at {}", sim.url());
        tracing::info!(url = %sim.url(), "demo mode: in-process ollama-sim");
    }
    Ok(options)
}

#[cfg(not(feature = "demo"))]
fn demo_options() -> Result<CoreOptions> {
    Err(Error::BadInput(
        "this build has no demo mode (build with `--features demo`)".into(),
    ))
}

fn try_run() -> Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let socket = single_instance::socket_path();
    let Some(listener) = single_instance::claim(&socket)? else {
        tracing::info!("already running: asked the running instance to open the chat");
        return Ok(());
    };
    let app = crate::run_app(Builder::default(), options(&args)?, notify::DbusBackend)?;
    let handle = app.handle().clone();
    single_instance::serve(listener, move || dispatch(&handle, AppCommand::OpenChat))?;
    tray::install(app.handle())?;
    tray::check_host(app.handle());
    if args.open_chat {
        dispatch(app.handle(), AppCommand::OpenChat);
    }
    let demo = args.demo;
    app.run(move |app_handle, event| match event {
        // Closing the chat window must not end a tray app; only Quit (an explicit exit code) does.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::Exit => {
            if let Some(core) = app_handle.core() {
                core.shutdown();
            }
            let _ = std::fs::remove_file(&socket);
            if demo {
                #[cfg(feature = "demo")]
                crate::demo::clean_up();
            }
        }
        _ => {}
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_demo_open_chat_or_nothing() {
        assert_eq!(parse_args([]).expect("none"), Args::default());
        assert_eq!(
            parse_args(["--demo".to_owned(), "--open-chat".to_owned()]).expect("both"),
            Args {
                demo: true,
                open_chat: true
            }
        );
        assert!(matches!(
            parse_args(["--dmeo".to_owned()]),
            Err(Error::BadInput(m)) if m.contains("--dmeo")
        ));
    }
}
