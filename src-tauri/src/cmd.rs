//! IPC commands the chat window may invoke (each is listed in build.rs and granted to the
//! `chat` window in capabilities/chat.json).

use tauri::State;

use crate::state::{AppState, Status};

/// What the tray shows and how the desktop integration is doing.
#[tauri::command]
pub fn status(state: State<'_, AppState>) -> Status {
    state.status()
}
