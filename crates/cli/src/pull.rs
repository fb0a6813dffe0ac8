//! `yollayah pull NAME`: downloads a model through Ollama with a progress bar (bytes, rate,
//! ETA) on stderr. Errors are Ollama's own words; Ctrl-C cancels (the connection is closed,
//! which ends the pull on the server) and exits 130.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;
use yollayah_core::pull::{self, PullStatus};

use crate::context::{Context, Globals};
use crate::error::Result;
use crate::exit;

/// Arguments of `pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model to pull, e.g. `qwen3:8b`.
    name: String,
}

/// Runs `pull`.
pub async fn run(globals: &Globals, args: Args) -> Result<u8> {
    let ctx = Context::load(globals)?;
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let bar = ProgressBar::with_draw_target(None, draw_target());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:24} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut last_status = String::new();
    let result = pull::pull(&ctx.client, &args.name, &cancel, |s: &PullStatus| {
        if s.total > 0 {
            bar.set_length(s.total);
            bar.set_position(s.completed);
        }
        bar.set_message(s.status.clone());
        if s.status != last_status && !s.status.starts_with("pulling ") {
            // Phases after the download (verifying, writing) as their own lines when piped.
            if !std::io::stderr().is_terminal() {
                eprintln!("{}", s.status);
            }
            last_status.clone_from(&s.status);
        }
    })
    .await;
    match result {
        Ok(done) => {
            bar.finish_and_clear();
            println!(
                "pulled {} ({})",
                args.name,
                indicatif::HumanBytes(done.total)
            );
            Ok(exit::OK)
        }
        Err(yollayah_core::Error::Cancelled) => {
            bar.abandon();
            eprintln!("pull of {} cancelled", args.name);
            Ok(exit::INTERRUPTED)
        }
        Err(e) => {
            bar.abandon();
            Err(e.into())
        }
    }
}

/// Draws on stderr when it is a terminal; hidden otherwise (a log gets the phase lines).
fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
