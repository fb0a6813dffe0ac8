//! `yollayah`: the headless command line. Every command only presents what yollayah-core
//! observes and decides; nothing here knows Ollama's wire format or GPU details.

mod doctor;
mod exit;
mod output;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Where your Ollama model really runs (GPU / partly CPU / CPU), why, and what to do.
#[derive(Debug, Parser)]
#[command(name = "yollayah", version, about, long_about = None, after_help = exit::HELP)]
struct Cli {
    /// Ollama server URL; default: OLLAMA_HOST, with the official client's rules.
    #[arg(long, global = true, env = "YOLLAYAH_OLLAMA_URL")]
    url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Where each model really runs, why, and what to do (exit code = verdict).
    Doctor(doctor::Args),
    /// Is Ollama up, which version, and where each loaded model runs (like `ollama ps`).
    Status(status::Args),
}

fn main() -> ExitCode {
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
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Doctor(args) => doctor::run(cli.url.as_deref(), args).await,
            Command::Status(args) => status::run(cli.url.as_deref(), args).await,
        }
    });
    ExitCode::from(code)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("YOLLAYAH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
