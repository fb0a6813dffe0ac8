// The only door to the Tauri side: command and event names of the IPC contract
// (src-tauri/src/ipc.rs, src-tauri/src/wire.rs) live here, and
// nowhere else in the UI.

export const Cmd = Object.freeze({
  status: "status",
  sendMessage: "send_message",
  cancelReply: "cancel_reply",
  retryReply: "retry_reply",
  listConversations: "list_conversations",
  loadConversation: "load_conversation",
  warm: "warm",
  openExternal: "open_external",
  gpuHistory: "gpu_history",
  listModels: "list_models",
  chatChoice: "chat_choice",
  chooseModel: "choose_model",
  setThink: "set_think",
  watchModel: "watch_model",
  chooseHost: "choose_host",
  painted: "painted",
  pullModel: "pull_model",
  cancelPull: "cancel_pull",
  pullState: "pull_state",
  checkNow: "check_now",
  imageSupport: "image_support",
  attachImage: "attach_image",
  discardImage: "discard_image",
});

export const Ev = Object.freeze({
  snapshot: "yollayah://snapshot",
  chat: "yollayah://chat",
  pull: "yollayah://pull",
});

function tauri() {
  const t = window.__TAURI__;
  if (!t || !t.core || !t.event) {
    throw new Error("window.__TAURI__ is missing (withGlobalTauri must be true)");
  }
  return t;
}

/** Invokes a command; rejects with the contract's `{kind, message}` error object. */
export function invoke(name, args) {
  return tauri().core.invoke(name, args);
}

/** Subscribes to an event; `cb` receives the payload only. Resolves to an unlisten function. */
export function listen(name, cb) {
  return tauri().event.listen(name, (e) => cb(e.payload));
}

/** Closes the chat window (Esc). */
export function closeWindow() {
  const w = tauri().window;
  if (w && typeof w.getCurrentWindow === "function") {
    return w.getCurrentWindow().close();
  }
  return Promise.resolve();
}

/** Human text of an IPC error, whatever shape it arrived in. */
export function errorText(err) {
  if (err == null) return "unknown error";
  if (typeof err === "string") return err;
  if (typeof err.message === "string" && err.message) return err.message;
  if (typeof err.kind === "string") return err.kind;
  return String(err);
}
