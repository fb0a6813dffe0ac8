//! `yollayah`: the headless command line. Every command only presents what yollayah-core
//! observes and decides; nothing here knows Ollama's wire format or GPU details.

mod agent;
mod bench;
mod chat;
mod config_cmd;
mod context;
mod doctor;
mod error;
mod exit;
mod host;
mod notify;
mod output;
mod pull;
mod status;
mod warm;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::context::Globals;

/// Where your Ollama model really runs (GPU / partly CPU / CPU), why, and what to do.
#[derive(Debug, Parser)]
#[command(name = "yollayah", version, about, long_about = None, after_help = exit::HELP)]
struct Cli {
    #[command(flatten)]
    globals: Globals,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Where each model really runs, why, and what to do (exit code = verdict).
    #[command(after_help = exit::HELP)]
    Doctor(doctor::Args),
    /// Is Ollama up, which version, and where each loaded model runs (like `ollama ps`).
    Status(status::Args),
    /// Load the configured model as the watchdog does, then say where it landed.
    #[command(after_help = exit::HELP)]
    Warm(warm::WarmArgs),
    /// Unload the configured model now.
    Unload(warm::UnloadArgs),
    /// Chat with the configured model (one message, or a REPL reading stdin).
    Chat(chat::ChatArgs),
    /// Pull a model through Ollama, with a progress bar (Ctrl-C cancels).
    Pull(pull::Args),
    /// List stored conversations.
    History(chat::HistoryArgs),
    /// Run the watchdog in the foreground: one line per change, alerts included.
    Watch(watch::Args),
    /// Run the watchdog as a service: Prometheus /metrics, state, events and warm/unload over
    /// HTTP (see docs/agent.md).
    Agent(agent::Args),
    /// Warm, send N chats, report TTFT, tokens/s, load time and reloads (for bug reports).
    Bench(bench::Args),
    /// The config file: where it is, what is in effect, whether it is valid.
    #[command(subcommand)]
    Config(config_cmd::Command),
}

fn main() -> ExitCode {
    // Before any thread exists: reading the local UTC offset is only sound then.
    output::init_local_offset();
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("yollayah: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let g = &cli.globals;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Doctor(args) => doctor::run(g, args).await,
            Command::Status(args) => status::run(g, args).await,
            Command::Warm(args) => warm::warm(g, args).await,
            Command::Unload(args) => warm::unload(g, args).await,
            Command::Chat(args) => chat::chat(g, args).await,
            Command::Pull(args) => pull::run(g, args).await,
            Command::History(args) => chat::history(g, args).await,
            Command::Watch(args) => watch::run(g, args).await,
            Command::Agent(args) => agent::run(g, args).await,
            Command::Bench(args) => bench::run(g, args).await,
            Command::Config(cmd) => config_cmd::run(g, cmd),
        }
    });
    // Pending blocking reads (stdin in the chat REPL) must not keep the process alive.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("yollayah: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("yollayah: {hint}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("YOLLAYAH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
