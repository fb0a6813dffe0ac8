//! The tray's end of the private socket ([`crate::wire`]): accepts chat windows of this user
//! only, answers their commands ([`crate::commands`]) and sends them events. One bad client
//! (another uid, a malformed or oversized frame, an unknown command) loses its connection;
//! nothing it sends reaches the core.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::shell::Shell;
use crate::wire::{Request, ServerMessage, WireError, read_frame, write_frame};

/// Frames queued for one slow client before it is dropped (a window that stops reading must
/// not make the tray hold an ever-growing queue).
const QUEUE: usize = 1024;

/// Listens at `path`: a stale file left by a crash is replaced, and the socket is made 0600.
/// Must run inside a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("removing stale {}", path.display()), e));
        }
        _ => {}
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| Error::io(format!("listening on {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("securing {}", path.display()), e))?;
    Ok(listener)
}

/// Serves chat windows on `listener` (a tokio task) until the core stops. Only connections
/// from `uid` (the owner of the socket file: the user who started the tray) are served.
pub fn serve(shell: &Arc<Shell>, listener: UnixListener, uid: u32) {
    let shell = shell.clone();
    let cancel = shell.core.cancel.clone();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        tracing::warn!(%err, "accepting a chat window failed");
                        continue;
                    }
                },
            };
            tokio::spawn(connection(shell.clone(), stream, uid));
        }
    });
}

/// The uid that owns `path` (for a socket we just bound: ours).
pub fn owner_uid(path: &Path) -> Result<u32> {
    std::fs::metadata(path)
        .map(|m| m.uid())
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

async fn connection(shell: Arc<Shell>, stream: UnixStream, uid: u32) {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == uid => {}
        Ok(cred) => {
            tracing::warn!(peer_uid = cred.uid(), pid = ?cred.pid(), "refused a connection from another user");
            return;
        }
        Err(err) => {
            tracing::warn!(%err, "no peer credentials; connection refused");
            return;
        }
    }
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let id = shell.clients.add(tx.clone());
    shell.chat.connected(&shell.clients, id);
    tracing::debug!(id, "chat window connected");
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write_frame(&mut wr, &frame).await.is_err() {
                break;
            }
        }
    });
    loop {
        let frame = match read_frame(&mut rd).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(id, %err, "bad frame from a chat window; disconnecting it");
                break;
            }
        };
        let request: Request = match serde_json::from_slice(&frame) {
            Ok(request) => request,
            Err(err) => {
                tracing::warn!(id, %err, "malformed message from a chat window; disconnecting it");
                break;
            }
        };
        let shell = shell.clone();
        tokio::spawn(async move {
            let reply = match crate::commands::handle(&shell, id, request.command).await {
                Ok(value) => reply(request.seq, Ok(value)),
                Err(err) => reply(request.seq, Err(WireError::from(&err))),
            };
            shell.clients.send(id, &reply);
        });
    }
    shell.clients.remove(id);
    drop(tx);
    writer.abort();
    tracing::debug!(id, "chat window disconnected");
}

fn reply(seq: u64, result: std::result::Result<Value, WireError>) -> ServerMessage {
    match result {
        Ok(ok) => ServerMessage::Reply {
            seq,
            ok: Some(ok),
            err: None,
        },
        Err(err) => ServerMessage::Reply {
            seq,
            ok: None,
            err: Some(err),
        },
    }
}
