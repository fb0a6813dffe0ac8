//! The tray app's one error type. Everything the shell can fail at is a variant here; IPC
//! commands serialise it as its message so the chat window can show it.

use serde::{Serialize, Serializer};

/// Every failure of the desktop shell.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Tauri refused an operation (window, tray or menu creation, …).
    #[error("tauri: {0}")]
    Tauri(#[from] tauri::Error),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, with the path where there is one.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The session D-Bus could not be reached or answered with an error.
    #[error("session bus: {0}")]
    Bus(#[from] zbus::Error),
    /// A D-Bus call did not answer in time.
    #[error("session bus: no answer within {0:?}")]
    BusTimeout(std::time::Duration),
    /// The notification service failed (absent, refused, wrong reply).
    #[error("notification: {0}")]
    Notify(#[from] notify_rust::error::Error),
    /// A tray menu id that this app never created.
    #[error("unknown tray menu id `{0}`")]
    UnknownMenuId(String),
    /// A notification action key that this app never offered.
    #[error("unknown notification action `{0}`")]
    UnknownAction(String),
    /// No config or home directory could be determined (no `$HOME`, no XDG variables).
    #[error("no XDG config directory: set $XDG_CONFIG_HOME or $HOME")]
    NoConfigDir,
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// The shell's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
