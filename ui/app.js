// Boots the chat window: wires the conversation view, composer, status strip and conversation
// list to the IPC contract (src-tauri/src/ipc.rs). No framework, no build step.

import { Cmd, Ev, closeWindow, errorText, invoke, listen } from "./ipc.js";
import { ChatView } from "./chat.js";
import { StatusStrip } from "./status.js";
import { ConversationPanel } from "./conversations.js";
import { ModelPanel } from "./models.js";
import { recordHandler } from "./perf.js";

const $ = (id) => document.getElementById(id);

// Start-up marks (Unix ms), sent with `painted`: the chat process logs them against the moment
// "Open chat" was handled, to show where the time to the first paint goes.
const now = () => performance.timeOrigin + performance.now();
const marks = { navigation: performance.timeOrigin, module: now() };
const afterTwoFrames = (name) =>
  new Promise((done) =>
    requestAnimationFrame(() =>
      requestAnimationFrame(() => {
        marks[name] = now();
        done();
      }),
    ),
  );
// The static shell (the markup and stylesheet, before any data) on screen.
const shellPainted = afterTwoFrames("shell");

const els = {
  log: $("log"),
  input: $("input"),
  send: $("send"),
  stop: $("stop"),
  composer: $("composer"),
  downReason: $("down-reason"),
  title: $("title"),
  newChat: $("new-chat"),
};

const state = {
  conversation: null,
  down: false,
  sending: false,
  streaming: false,
  model: null,
};

const chat = new ChatView(els.log, {
  onRetry: (reply, failed) => retry(reply, failed),
  onStreamingChange: (on) => {
    state.streaming = on;
    renderComposer();
  },
  onStats: (stats) => strip.setLastSpeed(stats),
});

const strip = new StatusStrip(
  {
    badge: $("badge"),
    badgeText: $("badge-text"),
    model: $("model"),
    spark: $("spark"),
    vram: $("vram"),
    speed: $("speed"),
    warm: $("warm"),
    popover: $("popover"),
    popoverBody: $("popover-body"),
  },
  { onWarm: () => invoke(Cmd.warm) },
);

const panel = new ConversationPanel(
  { toggle: $("chats-toggle"), panel: $("chats-panel"), list: $("chats-list") },
  {
    load: () => invoke(Cmd.listConversations, { limit: 50 }),
    open: (id) => openConversation(id),
  },
);

const models = new ModelPanel(
  { toggle: $("models-toggle"), panel: $("models-panel"), list: $("models-list") },
  {
    load: () => invoke(Cmd.listModels),
    current: () => state.model,
    // One drop-down at a time.
    onOpen: () => { if (panel.isOpen()) panel.setOpen(false); },
  },
);
$("chats-toggle").addEventListener("click", () => { if (models.isOpen()) models.setOpen(false); });

function renderComposer() {
  const busy = state.streaming || state.sending;
  els.stop.hidden = !state.streaming;
  els.send.hidden = state.streaming;
  els.send.disabled = state.down || busy || els.input.value.trim() === "";
  els.input.setAttribute("aria-disabled", state.down ? "true" : "false");
}

function setDown(snapshot) {
  const down = Boolean(snapshot.verdict && snapshot.verdict.kind === "down");
  state.down = down;
  if (down) {
    const reason = snapshot.ollama && snapshot.ollama.reason;
    els.downReason.textContent = `Ollama is down${reason ? `: ${reason}` : ""}. Sending is off until it is back.`;
  }
  els.downReason.hidden = !down;
  renderComposer();
}

function onSnapshot(s) {
  if (!s || typeof s !== "object") return;
  if (typeof s.model === "string") state.model = s.model;
  strip.update(s);
  setDown(s);
}

function showError(text) {
  const p = document.createElement("p");
  p.className = "error";
  p.setAttribute("role", "alert");
  p.textContent = text;
  els.log.append(p);
  els.log.scrollTop = els.log.scrollHeight;
}

async function send() {
  const text = els.input.value;
  if (text.trim() === "" || state.down || state.streaming || state.sending) return;
  state.sending = true;
  renderComposer();
  chat.addUser(text);
  els.input.value = "";
  autoGrow();
  try {
    const r = await invoke(Cmd.sendMessage, { conversation: state.conversation, text });
    state.conversation = r.conversation;
    panel.setCurrent(r.conversation);
    // A new conversation has no title (the button already says "New chat") until its first message.
    if (els.title.textContent === "") els.title.textContent = firstLine(text);
    chat.ensureReply(r.reply);
  } catch (err) {
    showError(`Not sent: ${errorText(err)}`);
    if (!els.input.value) els.input.value = text; // give the text back to retry by hand
    autoGrow();
  } finally {
    state.sending = false;
    renderComposer();
  }
}

async function retry(reply, failed) {
  try {
    const r = await invoke(Cmd.retryReply, { reply });
    state.conversation = r.conversation;
    chat.supersede(reply);
    chat.ensureReply(r.reply);
  } catch (err) {
    showError(`Retry failed: ${errorText(err)}`);
    failed();
  }
}

async function stop() {
  const reply = chat.currentStreaming();
  if (reply == null) return;
  els.stop.disabled = true;
  try {
    await invoke(Cmd.cancelReply, { reply });
  } catch (err) {
    showError(`Could not stop: ${errorText(err)}`);
  } finally {
    els.stop.disabled = false;
  }
}

async function newChat() {
  const streaming = chat.currentStreaming();
  if (streaming != null) {
    // Leaving a reply running into a view that no longer shows it would waste the GPU.
    await invoke(Cmd.cancelReply, { reply: streaming }).catch(() => {});
  }
  // Nothing to ask the app: the next message sent without a conversation starts one.
  state.conversation = null;
  panel.setCurrent(null);
  els.title.textContent = "";
  chat.clear();
  els.input.focus();
}

async function openConversation(id) {
  try {
    const messages = await invoke(Cmd.loadConversation, { id });
    state.conversation = id;
    panel.setCurrent(id);
    const firstUser = messages.find((m) => m.role === "user");
    els.title.textContent = firstUser ? firstLine(firstUser.content) : "Conversation";
    await chat.load(messages);
  } catch (err) {
    showError(`Could not open the conversation: ${errorText(err)}`);
  }
  els.input.focus();
}

function firstLine(text) {
  const line = String(text || "").trim().split("\n")[0];
  return line.length > 40 ? `${line.slice(0, 39)}…` : line || "Conversation";
}

function autoGrow() {
  const t = els.input;
  t.style.height = "auto";
  t.style.height = `${Math.min(t.scrollHeight, 140)}px`;
}

// Links in messages open in the system browser, never in this webview.
document.addEventListener("click", (e) => {
  const a = e.target instanceof Element ? e.target.closest("a") : null;
  if (!a) return;
  e.preventDefault();
  const href = a.getAttribute("href");
  if (href && /^(https?:|mailto:)/i.test(href)) {
    invoke(Cmd.openExternal, { url: href }).catch((err) => showError(`Could not open link: ${errorText(err)}`));
  }
});
document.addEventListener("auxclick", (e) => {
  if (e.target instanceof Element && e.target.closest("a")) e.preventDefault();
});

els.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});
els.input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
els.input.addEventListener("input", () => {
  autoGrow();
  renderComposer();
});
els.stop.addEventListener("click", stop);
els.newChat.addEventListener("click", newChat);

document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape" || e.isComposing) return;
  e.preventDefault();
  if (strip.popoverOpen()) {
    strip.togglePopover(false, true);
  } else if (panel.isOpen()) {
    panel.setOpen(false);
    $("chats-toggle").focus();
  } else if (models.isOpen()) {
    models.setOpen(false);
    $("models-toggle").focus();
  } else {
    closeWindow();
  }
});

async function boot() {
  renderComposer();
  await Promise.all([
    listen(Ev.snapshot, onSnapshot),
    listen(Ev.chat, (ev) => {
      const t0 = performance.now();
      chat.onChatEvent(ev);
      recordHandler(ev, performance.now() - t0);
    }),
  ]);
  const [snapshot, history] = await Promise.allSettled([invoke(Cmd.status), invoke(Cmd.gpuHistory)]);
  if (history.status === "fulfilled") strip.setHistory(history.value);
  if (snapshot.status === "fulfilled") onSnapshot(snapshot.value);
  els.input.focus();
  marks.data = now();
  // The second frame callback runs once the first full frame has been painted: the tray logs
  // "Open chat" → painted from this (the window with the model's status in it).
  await Promise.all([shellPainted, afterTwoFrames("painted")]);
  invoke(Cmd.painted, { marks }).catch(() => {});
}

boot().catch((err) => showError(`Could not start: ${errorText(err)}`));
