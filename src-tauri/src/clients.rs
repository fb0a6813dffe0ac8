//! The connected chat windows, as the rest of the tray sees them: send an event to one, to all,
//! or ask them to come forward. Apart from the socket service (`service`, which accepts and
//! reads the connections) so the shell can hold them without depending on the service, which
//! works on the shell (issue 14: no import cycles).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::lock::lock;
use crate::wire::ServerMessage;

/// A connected chat window.
pub type ClientId = u64;

/// The connected chat windows.
#[derive(Debug, Default)]
pub struct Clients {
    next: AtomicU64,
    out: Mutex<HashMap<ClientId, mpsc::Sender<Vec<u8>>>>,
}

impl Clients {
    pub(crate) fn add(&self, tx: mpsc::Sender<Vec<u8>>) -> ClientId {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.out).insert(id, tx);
        id
    }

    pub(crate) fn remove(&self, id: ClientId) {
        lock(&self.out).remove(&id);
    }

    /// Whether any chat window is connected (no window: no event is serialised).
    pub fn any(&self) -> bool {
        !lock(&self.out).is_empty()
    }

    pub(crate) fn send(&self, id: ClientId, msg: &ServerMessage) {
        let Ok(frame) = serde_json::to_vec(msg) else {
            return;
        };
        let mut out = lock(&self.out);
        if let Some(tx) = out.get(&id) {
            if tx.try_send(frame).is_err() {
                tracing::warn!(id, "chat window not reading; disconnecting it");
                out.remove(&id);
            }
        }
    }

    fn ids(&self) -> Vec<ClientId> {
        lock(&self.out).keys().copied().collect()
    }

    /// Sends the event `name` to the window `id`.
    pub fn send_event(&self, id: ClientId, name: &str, payload: &impl Serialize) {
        match serde_json::to_value(payload) {
            Ok(payload) => self.send(
                id,
                &ServerMessage::Event {
                    name: name.to_owned(),
                    payload,
                },
            ),
            Err(err) => tracing::warn!(%err, "event not encodable"),
        }
    }

    /// Sends the event `name` to every window.
    pub fn broadcast(&self, name: &str, payload: &impl Serialize) {
        for id in self.ids() {
            self.send_event(id, name, payload);
        }
    }

    /// Asks every window to come forward.
    pub fn focus(&self) {
        for id in self.ids() {
            self.send(id, &ServerMessage::Focus);
        }
    }
}
