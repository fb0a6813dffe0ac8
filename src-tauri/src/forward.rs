//! The adapter's two loops. Core → shell: every watchdog snapshot becomes the tray's view, a
//! GPU sample and (when the chat window is open) a `yollayah://snapshot` event; every alert
//! becomes a desktop notice and a `yollayah://alert` event. Shell → core: the user's Warm,
//! Unload and Mute clicks become watchdog calls. Snapshot-driven: nothing here polls.

use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime};
use tokio::sync::broadcast::error::RecvError;
use yollayah_core::events::{Alert, Event, Snapshot, Verdict, names};

use crate::chat::CHAT_LABEL;
use crate::command::AppCommand;
use crate::core::{Core, lock};
use crate::notify::{IncidentId, Notice, NoticeAction};
use crate::samples::GpuSample;
use crate::state::AppState;
use crate::view::{TrayState, TrayView};

/// The payload of `yollayah://alert`.
#[derive(Debug, Clone, Serialize)]
pub struct AlertPayload<'a> {
    /// The alert as the core wrote it.
    #[serde(flatten)]
    pub alert: &'a Alert,
    /// `true` for the resolution of an incident.
    pub resolved: bool,
}

/// The tray icon state for a verdict.
pub fn tray_state(verdict: Verdict) -> TrayState {
    match verdict {
        Verdict::Gpu => TrayState::Gpu,
        Verdict::Partial { .. } => TrayState::Partial,
        Verdict::Cpu => TrayState::Cpu,
        Verdict::Warming => TrayState::Warming,
        Verdict::Down => TrayState::Down,
        Verdict::NotLoaded | Verdict::Unknown | Verdict::Unverified { .. } => TrayState::Unknown,
    }
}

/// Brings `view` up to date with `snap`. The diagnosis line is the snapshot's advice; when all
/// is well, a startup problem (broken config, history) is shown instead, so it stays visible.
pub fn apply_snapshot(view: &mut TrayView, snap: &Snapshot, problems: &[String]) {
    view.state = tray_state(snap.verdict);
    view.status_line = snap.headline.clone();
    view.diagnosis_line = snap.advice.clone().or_else(|| problems.first().cloned());
}

/// The desktop notice for an alert (a resolution replaces its raise on screen).
pub fn notice_for(alert: &Alert, resolved: bool) -> Notice {
    let id = IncidentId(alert.incident.0);
    Notice {
        id,
        summary: alert.title.clone(),
        body: alert.body.clone(),
        actions: if resolved {
            Vec::new()
        } else {
            [NoticeAction::WarmModel, NoticeAction::Open]
                .into_iter()
                .map(|a| (a, a.label().to_owned()))
                .collect()
        },
        replaces: resolved.then_some(id),
    }
}

fn on_snapshot<R: Runtime>(app: &AppHandle<R>, core: &Core, snap: &Snapshot) {
    if let Some(sample) = GpuSample::from_snapshot(snap) {
        lock(&core.samples).push(sample);
    }
    crate::set_view(app, |view| apply_snapshot(view, snap, &core.problems));
    // Serialising a snapshot for a window that does not exist would be wasted work.
    if app.get_webview_window(CHAT_LABEL).is_some() {
        if let Err(err) = app.emit_to(CHAT_LABEL, names::SNAPSHOT, snap) {
            tracing::debug!(%err, "snapshot not delivered to the chat window");
        }
    }
}

fn on_alert<R: Runtime>(app: &AppHandle<R>, alert: &Alert, resolved: bool) {
    if alert.notify {
        if let Some(state) = app.try_state::<AppState>() {
            state.notify(notice_for(alert, resolved));
        }
    }
    if app.get_webview_window(CHAT_LABEL).is_some() {
        let payload = AlertPayload { alert, resolved };
        if let Err(err) = app.emit_to(CHAT_LABEL, names::ALERT, payload) {
            tracing::debug!(%err, "alert not delivered to the chat window");
        }
    }
}

/// Starts both loops on Tauri's runtime. They end when the core's token is cancelled.
pub fn spawn<R: Runtime>(app: &AppHandle<R>) {
    let Some(core) = app.try_state::<Core>() else {
        return;
    };
    let mut snapshots = core.watchdog.snapshots();
    let mut events = core.watchdog.subscribe();
    let cancel = core.cancel.clone();
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        let Some(core) = handle.try_state::<Core>() else {
            return;
        };
        // The initial snapshot (before the first tick) is a state too: show it.
        let first = snapshots.borrow_and_update().clone();
        on_snapshot(&handle, &core, &first);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let snap = snapshots.borrow_and_update().clone();
                    on_snapshot(&handle, &core, &snap);
                }
                event = events.recv() => match event {
                    Ok(Event::AlertRaised(alert)) => on_alert(&handle, &alert, false),
                    Ok(Event::AlertResolved(alert)) => on_alert(&handle, &alert, true),
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => tracing::warn!(n, "missed watchdog events"),
                    Err(RecvError::Closed) => break,
                },
            }
        }
    });

    let Some(mut commands) = app.state::<AppState>().take_commands() else {
        tracing::warn!("the command channel was already taken; menu actions stay unconnected");
        return;
    };
    let cancel = core.cancel.clone();
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            let cmd = tokio::select! {
                _ = cancel.cancelled() => break,
                cmd = commands.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => break,
                },
            };
            let Some(core) = handle.try_state::<Core>() else {
                continue;
            };
            let watchdog = core.watchdog.clone();
            let app = handle.clone();
            // Warm waits for a whole model load: run it beside the loop so Mute stays instant.
            match cmd {
                AppCommand::WarmModel => {
                    tauri::async_runtime::spawn(async move {
                        if let Err(err) = watchdog.warm().await {
                            report(&app, err.into());
                        }
                    });
                }
                AppCommand::UnloadModel => {
                    tauri::async_runtime::spawn(async move {
                        if let Err(err) = watchdog.unload().await {
                            report(&app, err.into());
                        }
                    });
                }
                AppCommand::SetMuted(muted) => watchdog.set_muted(muted).await,
                _ => {}
            }
        }
    });
}

fn report<R: Runtime>(app: &AppHandle<R>, err: crate::Error) {
    tracing::warn!(%err, "core command failed");
    if let Some(state) = app.try_state::<AppState>() {
        state.record_error(&err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yollayah_core::alerts::IncidentId as CoreIncident;
    use yollayah_core::placement::Placement;

    #[test]
    fn every_verdict_has_its_tray_state() {
        assert_eq!(tray_state(Verdict::Gpu), TrayState::Gpu);
        assert_eq!(
            tray_state(Verdict::Partial { cpu_pct: 40 }),
            TrayState::Partial
        );
        assert_eq!(tray_state(Verdict::Cpu), TrayState::Cpu);
        assert_eq!(tray_state(Verdict::Warming), TrayState::Warming);
        assert_eq!(tray_state(Verdict::Down), TrayState::Down);
        assert_eq!(tray_state(Verdict::NotLoaded), TrayState::Unknown);
        assert_eq!(tray_state(Verdict::Unknown), TrayState::Unknown);
    }

    #[test]
    fn snapshot_fills_the_view_and_problems_show_when_all_is_well() {
        let mut snap = Snapshot::initial("http://127.0.0.1:11434", "llama3.2:3b");
        snap.verdict = Verdict::Down;
        snap.headline = "llama3.2:3b · Ollama down".into();
        snap.advice = Some("Start it with `ollama serve`.".into());
        let problems = vec!["Config error, using defaults: bad".to_owned()];
        let mut view = TrayView::default();
        apply_snapshot(&mut view, &snap, &problems);
        assert_eq!(view.state, TrayState::Down);
        assert_eq!(view.status_line, "llama3.2:3b · Ollama down");
        assert_eq!(view.diagnosis_text(), "Start it with `ollama serve`.");
        snap.advice = None;
        apply_snapshot(&mut view, &snap, &problems);
        assert_eq!(view.diagnosis_text(), "Config error, using defaults: bad");
        apply_snapshot(&mut view, &snap, &[]);
        assert_eq!(view.diagnosis_text(), "No problems found");
    }

    #[test]
    fn resolution_replaces_the_raise_and_carries_no_buttons() {
        let alert = Alert {
            incident: CoreIncident(7),
            model: "llama3.2:3b".into(),
            title: "llama3.2:3b is running on CPU".into(),
            body: "VRAM is held by firefox.".into(),
            code: None,
            placement: Placement::Cpu,
            notify: true,
        };
        let raise = notice_for(&alert, false);
        assert_eq!(raise.id, IncidentId(7));
        assert_eq!(raise.replaces, None);
        assert_eq!(raise.summary, alert.title);
        assert_eq!(raise.actions.len(), 2);
        let resolve = notice_for(&alert, true);
        assert_eq!(resolve.replaces, Some(IncidentId(7)));
        assert!(resolve.actions.is_empty());
        let json = serde_json::to_value(AlertPayload {
            alert: &alert,
            resolved: true,
        })
        .expect("json");
        assert_eq!(json["incident"], 7);
        assert_eq!(json["resolved"], true);
        assert_eq!(json["title"], "llama3.2:3b is running on CPU");
    }
}
