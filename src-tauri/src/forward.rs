//! Core → shell, in one loop: every watchdog snapshot becomes the tray's view, a GPU sample and
//! (when a chat window is connected) a `yollayah://snapshot` event; every alert the core wants
//! shown becomes a desktop notice. Snapshot-driven: nothing here polls. (The other direction,
//! the user's clicks, needs no loop: [`crate::actions::dispatch`] calls the watchdog's handle.)

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use yollayah_core::alerts::FixAction;
use yollayah_core::events::{Alert, Event, Snapshot};

use crate::ipc::events;
use crate::lock::lock;
use crate::notify::{Notice, NoticeAction};
use crate::samples::GpuSample;
use crate::shell::Shell;
use crate::view::{TrayView, tray_state};

/// Brings `view` up to date with `snap`. The diagnosis line is the snapshot's advice; when all
/// is well, a startup problem (broken config, history) is shown instead, so it stays visible.
/// Mute is the core's state; the menu's check mark shows it.
pub fn apply_snapshot(view: &mut TrayView, snap: &Snapshot, problems: &[String]) {
    view.state = tray_state(snap.verdict);
    view.status_line = snap.headline.clone();
    view.diagnosis_line = snap.advice.clone().or_else(|| problems.first().cloned());
    view.muted = snap.muted;
}

/// The desktop notice for an alert (a resolution replaces its raise on screen).
pub fn notice_for(alert: &Alert, resolved: bool) -> Notice {
    let id = alert.incident;
    Notice {
        id,
        summary: alert.title.clone(),
        body: alert.body.clone(),
        // Only the fixes core offers for this incident, then "Open" for the details.
        actions: if resolved {
            Vec::new()
        } else {
            alert
                .actions
                .iter()
                .filter_map(|fix| match fix {
                    FixAction::ReloadOnGpu => Some(NoticeAction::ReloadOnGpu),
                    FixAction::Warm => Some(NoticeAction::WarmModel),
                    FixAction::Mute => None,
                })
                .chain([NoticeAction::Open])
                .map(|a| (a, a.label().to_owned()))
                .collect()
        },
        replaces: resolved.then_some(id),
    }
}

fn on_snapshot(shell: &Shell, snap: &Snapshot) {
    let core = &shell.core;
    if let Some(sample) = GpuSample::from_snapshot(snap) {
        lock(&core.samples).push(sample);
    }
    shell.set_view(|view| apply_snapshot(view, snap, &core.problems));
    // Serialising a snapshot for a window that does not exist would be wasted work.
    if shell.clients.any() {
        shell.clients.broadcast(events::SNAPSHOT, snap);
    }
}

fn on_alert(shell: &Shell, alert: &Alert, resolved: bool) {
    // `notify` is the core's decision (mute, flap cooldown); the shell only shows.
    if alert.notify {
        shell.notify(notice_for(alert, resolved));
    }
}

/// Starts the loop (a tokio task). It ends when the core's token is cancelled.
pub fn spawn(shell: &Arc<Shell>) {
    let mut snapshots = shell.core.watchdog.snapshots();
    let mut events = shell.core.watchdog.subscribe();
    let cancel = shell.core.cancel.clone();
    let shell = shell.clone();
    shell.runtime().clone().spawn(async move {
        // The initial snapshot (before the first tick) is a state too: show it.
        let first = snapshots.borrow_and_update().clone();
        on_snapshot(&shell, &first);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let snap = snapshots.borrow_and_update().clone();
                    on_snapshot(&shell, &snap);
                }
                event = events.recv() => match event {
                    Ok(Event::AlertRaised(alert)) => on_alert(&shell, &alert, false),
                    Ok(Event::AlertResolved(alert)) => on_alert(&shell, &alert, true),
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => tracing::warn!(n, "missed watchdog events"),
                    Err(RecvError::Closed) => break,
                },
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::TrayState;
    use yollayah_core::alerts::IncidentId;
    use yollayah_core::events::Verdict;
    use yollayah_core::placement::Placement;

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
        assert!(!view.muted);
        snap.muted = true;
        apply_snapshot(&mut view, &snap, &[]);
        assert!(view.muted, "the menu shows the core's mute");
    }

    #[test]
    fn resolution_replaces_the_raise_and_carries_no_buttons() {
        let alert = Alert {
            incident: IncidentId(7),
            model: "llama3.2:3b".into(),
            title: "llama3.2:3b is running on CPU".into(),
            body: "VRAM is held by firefox.".into(),
            code: None,
            placement: Placement::Cpu,
            notify: true,
            actions: vec![FixAction::ReloadOnGpu],
        };
        let raise = notice_for(&alert, false);
        assert_eq!(raise.id, IncidentId(7));
        assert_eq!(raise.replaces, None);
        assert_eq!(raise.summary, alert.title);
        let buttons: Vec<NoticeAction> = raise.actions.iter().map(|(a, _)| *a).collect();
        assert_eq!(buttons, [NoticeAction::ReloadOnGpu, NoticeAction::Open]);
        assert_eq!(raise.actions[0].1, "Reload on the GPU");
        // An incident a reload cannot fix gets no such button.
        let no_fix = Alert {
            actions: Vec::new(),
            ..alert.clone()
        };
        assert_eq!(notice_for(&no_fix, false).actions.len(), 1);
        let resolve = notice_for(&alert, true);
        assert_eq!(resolve.replaces, Some(IncidentId(7)));
        assert!(resolve.actions.is_empty());
    }
}
