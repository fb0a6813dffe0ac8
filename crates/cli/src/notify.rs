//! `watch --notify`: desktop notifications from the headless watcher. The watchdog's alert
//! policy already decided (one alert per incident, a cooldown against flapping, mute): this
//! only shows `AlertRaised` events whose `notify` is set, and shows the matching
//! `AlertResolved` in place of its raise.
//!
//! The daemon is reached from a worker thread, never from the watch loop, and every call gets
//! [`ANSWER_WITHIN`]: a daemon that owns the bus name but never answers makes a notify call
//! block forever, and that must cost one warning, not the watch.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, channel, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use yollayah_core::alerts::IncidentId;
use yollayah_core::events::Alert;

/// How long the daemon may take to show one notification.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How long an alert stays on screen (the notification's expire timeout).
const SHOW_FOR: Duration = Duration::from_secs(15);
/// Alerts waiting for the worker; beyond it (a daemon too slow) they are dropped.
const QUEUE: usize = 16;
/// Incident-to-notification ids remembered for replacing; older ones are forgotten.
const MAX_REMEMBERED: usize = 64;

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub incident: IncidentId,
    pub summary: String,
    pub body: String,
    /// A resolution: replaces the raise of the same incident on screen.
    pub resolves: bool,
}

impl Notice {
    /// The notification of a raised alert.
    pub fn raised(a: &Alert) -> Notice {
        Notice {
            incident: a.incident,
            summary: a.title.clone(),
            body: a.body.clone(),
            resolves: false,
        }
    }

    /// The notification of a resolution.
    pub fn resolved(a: &Alert) -> Notice {
        Notice {
            resolves: true,
            ..Notice::raised(a)
        }
    }
}

/// The notification daemon. A trait only so tests can stand in for the D-Bus daemon (the
/// system edge); the real one is [`Dbus`].
pub trait Backend: Send + 'static {
    /// Shows `n`, replacing the daemon's notification `replaces`; returns the daemon's id.
    fn show(&mut self, n: &Notice, replaces: Option<u32>) -> Result<u32, String>;
}

/// The freedesktop notification daemon on the session bus.
#[derive(Debug, Default)]
pub struct Dbus;

impl Backend for Dbus {
    fn show(&mut self, n: &Notice, replaces: Option<u32>) -> Result<u32, String> {
        let mut notification = notify_rust::Notification::new();
        notification
            .appname("Yollayah")
            .summary(&n.summary)
            .body(&n.body)
            .timeout(notify_rust::Timeout::Milliseconds(
                u32::try_from(SHOW_FOR.as_millis()).unwrap_or(u32::MAX),
            ));
        if let Some(id) = replaces {
            notification.id(id);
        }
        notification
            .show()
            .map(|h| h.id())
            .map_err(|e| e.to_string())
    }
}

/// Queues notices for the worker; [`Notifier::send`] never waits.
pub struct Notifier {
    tx: SyncSender<Notice>,
}

impl Notifier {
    /// Starts the worker. `warn` gets one line when notifications stop working (no daemon,
    /// or a daemon that does not answer); it is called again only after they worked again.
    pub fn spawn(
        backend: impl Backend,
        warn: impl Fn(String) + Send + 'static,
    ) -> std::io::Result<Notifier> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || worker(backend, rx, warn))?;
        Ok(Notifier { tx })
    }

    /// Queues `n`. A full queue means the daemon is stuck, which the worker already reported.
    pub fn send(&self, n: Notice) {
        match self.tx.try_send(n) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn worker(backend: impl Backend, rx: Receiver<Notice>, warn: impl Fn(String)) {
    let backend = Arc::new(Mutex::new(backend));
    let mut shown: HashMap<IncidentId, u32> = HashMap::new();
    let mut warned = false;
    // Ends when the Notifier is dropped, i.e. with the watch.
    for notice in rx {
        let replaces = if notice.resolves {
            shown.get(&notice.incident).copied()
        } else {
            None
        };
        // The call runs on its own thread so that a daemon that never answers leaves that
        // thread blocked, not this one.
        let (done_tx, done_rx) = channel();
        let call_backend = Arc::clone(&backend);
        let spawned = std::thread::Builder::new()
            .name("notify-call".into())
            .spawn(move || {
                let mut b = call_backend.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = done_tx.send(b.show(&notice, replaces).map(|id| (notice.incident, id)));
            });
        if let Err(e) = spawned {
            warn(format!(
                "desktop notifications stopped: cannot start a thread ({e})"
            ));
            return;
        }
        match done_rx.recv_timeout(ANSWER_WITHIN) {
            Ok(Ok((incident, id))) => {
                if shown.len() >= MAX_REMEMBERED {
                    shown.clear();
                }
                shown.insert(incident, id);
                warned = false;
            }
            Ok(Err(reason)) => {
                if !warned {
                    warn(format!(
                        "desktop notifications are not available ({reason}); the watch goes on \
                         without them"
                    ));
                    warned = true;
                }
            }
            Err(_) => {
                warn(format!(
                    "the desktop notification service did not answer within {} s; no more \
                     notifications from this watch (it goes on)",
                    ANSWER_WITHIN.as_secs()
                ));
                // The blocked call holds the backend; later notices would only pile up.
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// A daemon stand-in: records calls, or fails, or hangs.
    struct Fake {
        calls: mpsc::Sender<(String, Option<u32>)>,
        mode: Mode,
        next: u32,
    }

    enum Mode {
        Ok,
        Fail,
        Hang(mpsc::Receiver<()>),
    }

    impl Backend for Fake {
        fn show(&mut self, n: &Notice, replaces: Option<u32>) -> Result<u32, String> {
            match &self.mode {
                Mode::Ok => {}
                Mode::Fail => return Err("org.freedesktop.DBus.Error.ServiceUnknown".into()),
                Mode::Hang(gate) => {
                    let _ = gate.recv();
                }
            }
            let _ = self.calls.send((n.summary.clone(), replaces));
            self.next += 1;
            Ok(replaces.unwrap_or(self.next))
        }
    }

    fn notice(id: u64, summary: &str, resolves: bool) -> Notice {
        Notice {
            incident: IncidentId(id),
            summary: summary.into(),
            body: "b".into(),
            resolves,
        }
    }

    #[test]
    fn a_resolution_replaces_its_raise() {
        let (calls_tx, calls) = mpsc::channel();
        let (warn_tx, warns) = mpsc::channel();
        let n = Notifier::spawn(
            Fake {
                calls: calls_tx,
                mode: Mode::Ok,
                next: 40,
            },
            move |w| {
                let _ = warn_tx.send(w);
            },
        )
        .unwrap();
        n.send(notice(1, "on the CPU", false));
        n.send(notice(2, "other model on the CPU", false));
        n.send(notice(1, "back on the GPU", true));
        let got: Vec<_> = (0..3)
            .map(|_| calls.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                ("on the CPU".to_owned(), None),
                ("other model on the CPU".to_owned(), None),
                ("back on the GPU".to_owned(), Some(41)),
            ]
        );
        assert!(warns.try_recv().is_err());
    }

    #[test]
    fn no_daemon_warns_once() {
        let (calls_tx, _calls) = mpsc::channel();
        let (warn_tx, warns) = mpsc::channel();
        let n = Notifier::spawn(
            Fake {
                calls: calls_tx,
                mode: Mode::Fail,
                next: 0,
            },
            move |w| {
                let _ = warn_tx.send(w);
            },
        )
        .unwrap();
        for i in 0..3 {
            n.send(notice(i, "x", false));
        }
        drop(n);
        let all: Vec<String> = warns.iter().collect();
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(all[0].contains("ServiceUnknown") && all[0].contains("goes on"));
    }

    #[test]
    fn a_hung_daemon_costs_one_warning_and_never_blocks_the_sender() {
        let (calls_tx, _calls) = mpsc::channel();
        let (warn_tx, warns) = mpsc::channel();
        let (_release, gate) = mpsc::channel();
        let n = Notifier::spawn(
            Fake {
                calls: calls_tx,
                mode: Mode::Hang(gate),
                next: 0,
            },
            move |w| {
                let _ = warn_tx.send(w);
            },
        )
        .unwrap();
        let started = Instant::now();
        for i in 0..(QUEUE as u64 + 10) {
            n.send(notice(i, "x", false));
        }
        assert!(started.elapsed() < Duration::from_secs(1), "send blocked");
        let w = warns
            .recv_timeout(ANSWER_WITHIN + Duration::from_secs(10))
            .unwrap();
        assert!(w.contains("did not answer"), "{w}");
        assert!(warns.recv_timeout(Duration::from_millis(300)).is_err());
    }
}
