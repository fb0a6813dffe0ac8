//! `yollayah watch`: the watchdog in the foreground, one line per event. The watchdog does the
//! observing; this loop only sleeps on the event channel and prints, and a snapshot is printed
//! only when its verdict or headline changes, so an idle watch costs (almost) nothing.

use std::io::Write;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use yollayah_core::config::Config;
use yollayah_core::events::{Event, Snapshot, Verdict, WarmEvent};
use yollayah_core::ollama::env::OllamaEnv;
use yollayah_core::placement::Placement;
use yollayah_core::warm::WarmReason;
use yollayah_core::watchdog::{self, WatchdogHandle, WatchdogSettings};

use crate::context::{Context, Globals};
use crate::doctor::GpuSource;
use crate::error::Result;
use crate::exit;
use crate::notify::{Dbus, Notice, Notifier};
use crate::output::local_hms;

/// Arguments of `watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print NDJSON: one event per line, as the watchdog publishes it.
    #[arg(long)]
    json: bool,
    /// Only observe: do not load the model at start or re-warm it after eviction.
    #[arg(long)]
    no_warm: bool,
    /// Show a desktop notification for each incident and its resolution (the same
    /// one-alert-per-incident policy as the tray).
    #[arg(long)]
    notify: bool,
    #[command(flatten)]
    gpu: GpuSource,
}

/// Runs `watch` until Ctrl-C or SIGTERM; then exits 0.
pub async fn run(globals: &Globals, args: Args) -> Result<u8> {
    let ctx = Context::load(globals)?;
    let notifier = if args.notify {
        notifier(&ctx.config)
    } else {
        None
    };
    let cancel = CancellationToken::new();
    // Subscribe before the task's first tick so the first snapshot is not missed.
    let handle = spawn_watchdog(&ctx, &args.gpu, args.no_warm, cancel.clone())?;
    let mut events = handle.subscribe();
    let stop = stop_signal();
    if !args.json {
        println!(
            "Watching {} at {} (Ctrl-C to stop).",
            handle.profile().model,
            ctx.client.base_url()
        );
    }
    tokio::pin!(stop);
    let mut last_shown: Option<(Verdict, String)> = None;
    // The last advice printed: a snapshot repeats it on every headline change and an alert
    // body often says the same, so each advice is printed once until it changes.
    let mut shown_advice: Option<String> = None;
    loop {
        let event = tokio::select! {
            () = &mut stop => break,
            e = events.recv() => e,
        };
        let event = match event {
            Ok(e) => e,
            // Fell behind: the next snapshot carries the current state anyway.
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        };
        if let Some(n) = &notifier {
            match &event {
                Event::AlertRaised(a) if a.notify => n.send(Notice::raised(a)),
                Event::AlertResolved(a) if a.notify => n.send(Notice::resolved(a)),
                _ => {}
            }
        }
        if let Event::Snapshot(s) = &event {
            let key = (s.verdict, s.headline.clone());
            if last_shown.as_ref() == Some(&key) {
                continue;
            }
            last_shown = Some(key);
        }
        let mut out = std::io::stdout().lock();
        let written = if args.json {
            serde_json::to_string(&event)
                .map_err(std::io::Error::other)
                .and_then(|line| writeln!(out, "{line}"))
        } else {
            write_human(&mut out, &event, &mut shown_advice)
        };
        // A closed pipe (`watch | head`) ends the watch quietly.
        if written.and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    cancel.cancel();
    Ok(exit::OK)
}

/// The desktop notifier for `--notify`; `None` (after saying why) when it cannot work.
fn notifier(config: &Config) -> Option<Notifier> {
    if !config.alerts.enabled {
        eprintln!(
            "yollayah: --notify shows nothing while the config says `[alerts] enabled = false`"
        );
        return None;
    }
    match Notifier::spawn(Dbus, |warning| eprintln!("yollayah: {warning}")) {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!(
                "yollayah: desktop notifications are not available ({e}); watching without them"
            );
            None
        }
    }
}

/// Resolves on Ctrl-C, or SIGTERM where there is one. The handlers are installed by this call,
/// not at the first poll: whoever reads our first line and signals at once must get a clean
/// stop, not the default action.
pub(crate) fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn write_human(
    out: &mut impl Write,
    event: &Event,
    shown_advice: &mut Option<String>,
) -> std::io::Result<()> {
    let now = local_hms(time::OffsetDateTime::now_utc());
    match event {
        Event::Snapshot(s) => write_snapshot(out, s, shown_advice),
        Event::OllamaDown { url, reason } => {
            writeln!(out, "{now}  Ollama DOWN at {url}: {reason}")
        }
        Event::OllamaUp { version } => writeln!(out, "{now}  Ollama {version} is up"),
        Event::PlacementChanged { model, from, to } => match from {
            Some(from) => writeln!(
                out,
                "{now}  {model}: {} → {}",
                placement_word(*from),
                placement_word(*to)
            ),
            None => writeln!(out, "{now}  {model}: loaded, {}", placement_word(*to)),
        },
        Event::Warm(w) => writeln!(out, "{now}  {}", warm_line(w)),
        Event::AlertRaised(a) => {
            let code = a.code.map(|c| format!(" [{c}]")).unwrap_or_default();
            writeln!(out, "{now}  !!! ALERT #{}{code}: {}", a.incident.0, a.title)?;
            write_advice(out, &a.body, shown_advice)
        }
        Event::AlertResolved(a) => {
            writeln!(out, "{now}  ✓ RESOLVED #{}: {}", a.incident.0, a.title)
        }
        Event::FitMispredicted(m) => writeln!(out, "{now}  {} [FIT_MISPREDICTED]", m.message),
    }
}

fn write_snapshot(
    out: &mut impl Write,
    s: &Snapshot,
    shown_advice: &mut Option<String>,
) -> std::io::Result<()> {
    writeln!(out, "{}  {}", local_hms(s.at), s.headline)?;
    match &s.advice {
        Some(advice) => write_advice(out, advice, shown_advice),
        None => {
            *shown_advice = None;
            Ok(())
        }
    }
}

/// Prints `advice` unless it is the one printed last.
fn write_advice(
    out: &mut impl Write,
    advice: &str,
    shown_advice: &mut Option<String>,
) -> std::io::Result<()> {
    if shown_advice.as_deref() == Some(advice) {
        return Ok(());
    }
    *shown_advice = Some(advice.to_owned());
    writeln!(out, "          {advice}")
}

fn placement_word(p: Placement) -> String {
    match p {
        Placement::Gpu => "100% GPU".into(),
        Placement::Partial { cpu_pct } => format!("{cpu_pct}% CPU"),
        Placement::Cpu => "CPU".into(),
        Placement::Unknown => "unknown".into(),
        Placement::Unverified { .. } => "GPU unverified".into(),
    }
}

fn warm_line(w: &WarmEvent) -> String {
    match w {
        WarmEvent::Started { model, reason } => {
            let why = match reason {
                WarmReason::Requested => "requested".to_owned(),
                WarmReason::NotLoaded => "not loaded".to_owned(),
                WarmReason::Evicted { by } => format!("evicted by {}", by.join(", ")),
                WarmReason::AllModelsUnloaded => "every model was unloaded".to_owned(),
                WarmReason::Expired => "keep_alive ran out".to_owned(),
                WarmReason::OllamaRestarted => "Ollama restarted".to_owned(),
            };
            format!("warming {model} ({why})")
        }
        WarmEvent::Finished { model, load_ms } => format!("{model} warm after {load_ms} ms"),
        WarmEvent::Failed {
            model,
            error,
            retry,
        } => format!(
            "warming {model} FAILED: {error}{}",
            if *retry { " (will retry)" } else { "" }
        ),
        WarmEvent::Reasserted {
            model,
            expires_in_s,
        } => format!("{model} would expire in {expires_in_s} s; keep_alive re-sent"),
        WarmEvent::Unloaded { model } => format!("{model} unloaded"),
        WarmEvent::OptionsDrifted {
            model,
            expected_num_ctx,
            loaded_num_ctx,
            advice,
        } => format!(
            "{model} was reloaded by someone else with num_ctx {loaded_num_ctx} (pinned: {expected_num_ctx})\n          {advice}"
        ),
        WarmEvent::Contention { model, with } => format!(
            "{model} keeps being evicted by {}; re-warming paused",
            with.join(", ")
        ),
    }
}

/// The watchdog `watch` and `agent` run: the persona's model profile, GPU facts from `gpu`,
/// and with `no_warm` observation only (no warm at start, no re-warm).
pub fn spawn_watchdog(
    ctx: &Context,
    gpu: &GpuSource,
    no_warm: bool,
    cancel: CancellationToken,
) -> Result<WatchdogHandle> {
    let persona = ctx.persona()?;
    let profile = ctx.profile(&persona);
    let machine = gpu.machine(ctx.client.base_url())?;
    let mut settings = WatchdogSettings::from_config(&ctx.config);
    if no_warm {
        settings.rewarm = false;
        settings.warm_on_start = false;
    }
    Ok(watchdog::spawn(
        ctx.client.clone(),
        machine,
        profile,
        OllamaEnv::from_process_env(),
        settings,
        cancel,
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn each_advice_is_printed_once() {
        let mut out = Vec::new();
        let mut shown = None;
        let mut snap = Snapshot::initial("http://127.0.0.1:11434", "m");
        snap.advice = Some("Close python3, then reload it.".into());
        for vram in ["3.1", "3.2", "3.3"] {
            snap.headline = format!("m · 40% on CPU · VRAM {vram}/12.0 GiB");
            let e = Event::Snapshot(Arc::new(snap.clone()));
            write_human(&mut out, &e, &mut shown).expect("write");
        }
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.matches("Close python3").count(), 1, "{text}");
        assert_eq!(text.matches("VRAM").count(), 3, "{text}");
    }
}
