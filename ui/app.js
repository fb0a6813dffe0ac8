// Boots the chat window: wires the conversation view, composer, status strip and conversation
// list to the IPC contract (src-tauri/src/ipc.rs). No framework, no build step.

import { Cmd, Ev, closeWindow, errorText, invoke, listen } from "./ipc.js";
import { ChatView } from "./chat.js";
import { StatusStrip } from "./status.js";
import { ConversationPanel } from "./conversations.js";
import { ModelPanel } from "./models.js";
import { PullPanel } from "./pull.js";
import { DownPanel } from "./down.js";
import { recordHandler } from "./perf.js";
import { ImageComposer } from "./images.js";

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
// A window pre-started hidden (the tray's menu opened) is shown by "Open chat": its first
// frames on screen are then what the user waits for, so they are reported too, once (the tray
// logs only the first report after "Open chat").
if (document.visibilityState === "hidden") {
  const onShown = () => {
    if (document.visibilityState !== "visible") return;
    document.removeEventListener("visibilitychange", onShown);
    const shown = { visible: now() };
    requestAnimationFrame(() =>
      requestAnimationFrame(() => {
        shown["shown painted"] = now();
        invoke(Cmd.painted, { marks: shown }).catch(() => {});
      }),
    );
  };
  document.addEventListener("visibilitychange", onShown);
}

const els = {
  log: $("log"),
  input: $("input"),
  send: $("send"),
  stop: $("stop"),
  composer: $("composer"),
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

// Before the chat view: its constructor already renders the composer, which asks this.
const images = new ImageComposer(
  {
    composer: els.composer, input: els.input, strip: $("attachments"), button: $("attach"),
    file: $("attach-file"), note: $("attach-note"),
  },
  { onChange: () => renderComposer() },
);

const chat = new ChatView(els.log, {
  onRetry: (reply, failed) => retry(reply, failed),
  onStreamingChange: (on) => {
    state.streaming = on;
    renderComposer();
  },
  onStats: (stats) => strip.setLastSpeed(stats),
  onOllamaDown: () => onOllamaDown({ kind: "ollama_down" }),
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
  {
    onWarm: () => invoke(Cmd.warm),
    onWarmFailed: (err) => showError(`Warm failed: ${friendlyError(err)}`),
  },
);

const downPanel = new DownPanel(
  {
    panel: $("down"),
    title: $("down-title"),
    body: $("down-body"),
    retry: $("down-retry"),
    status: $("down-status"),
  },
  {
    onRetry: async () => {
      const s = await invoke(Cmd.checkNow);
      onSnapshot(s);
      return s;
    },
  },
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
    // Picker hooks (ui/models.js): the choices live in the tray.
    choice: () => invoke(Cmd.chatChoice),
    choose: (model) => invoke(Cmd.chooseModel, { model }),
    think: (model, think) => invoke(Cmd.setThink, { model, think }),
    watch: (model) => invoke(Cmd.watchModel, { model }),
    host: (host) => invoke(Cmd.chooseHost, { host }),
    // One drop-down at a time.
    onOpen: () => { if (panel.isOpen()) panel.setOpen(false); },
  },
);
$("chats-toggle").addEventListener("click", () => { if (models.isOpen()) models.setOpen(false); });

const pull = new PullPanel(
  { slot: $("pull-slot"), toggle: $("models-toggle") },
  {
    start: (name) => invoke(Cmd.pullModel, { name }),
    cancel: (id) => invoke(Cmd.cancelPull, { id }),
    state: () => invoke(Cmd.pullState),
    // The new model joins the list with its fit prediction, marked (the list reloads when
    // opened, so a closed list needs nothing).
    onPulled: async (name) => {
      if (!models.isOpen()) return;
      await models.refresh();
      const rows = [...$("models-list").querySelectorAll("li.model-row")];
      const row = rows.find((li) => li.dataset.model === name || li.dataset.model === `${name}:latest`);
      if (row) row.dataset.fresh = "true";
      pull.reveal();
    },
    openList: () => { if (!models.isOpen()) models.setOpen(true); },
  },
);

function renderComposer() {
  const busy = state.streaming || state.sending;
  els.stop.hidden = !state.streaming;
  els.send.hidden = state.streaming;
  const empty = els.input.value.trim() === "" && !images.hasImages();
  els.send.disabled = state.down || busy || empty || images.busy();
  els.input.setAttribute("aria-disabled", state.down ? "true" : "false");
}

function setDown(snapshot) {
  state.down = Boolean(snapshot.verdict && snapshot.verdict.kind === "down");
  downPanel.update(snapshot);
  renderComposer();
}

/**
 * An IPC error in words. Errors carry the core's category as `kind`: one that says Ollama is
 * not there gets the plain sentence (the panel says how to start it) instead of the
 * connection error chain, which stays in the log for bug reports.
 */
function friendlyError(err) {
  if (err && err.kind === "ollama_down") {
    console.warn("Ollama is not reachable:", errorText(err));
    return "Ollama is not running or not answering.";
  }
  return errorText(err);
}

/** Ollama went away under a command: show the panel now and ask the app to check. */
function onOllamaDown(err) {
  if (!err || err.kind !== "ollama_down") return;
  invoke(Cmd.checkNow).then(onSnapshot).catch(() => {});
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
  if ((text.trim() === "" && !images.hasImages()) || images.busy()) return;
  if (state.down || state.streaming || state.sending) return;
  state.sending = true;
  renderComposer();
  const attached = images.take();
  const sent = chat.addUser(text, attached.shown);
  els.input.value = "";
  autoGrow();
  try {
    const r = await invoke(Cmd.sendMessage, { conversation: state.conversation, text, images: attached.ids });
    state.conversation = r.conversation;
    panel.setCurrent(r.conversation);
    // A new conversation has no title (the button already says "New chat") until its first message.
    if (els.title.textContent === "") els.title.textContent = firstLine(text || "Image");
    chat.ensureReply(r.reply);
  } catch (err) {
    showError(`Not sent: ${friendlyError(err)}`);
    onOllamaDown(err);
    if (!els.input.value) els.input.value = text; // give the text back to retry by hand
    if (attached.items.length) {
      // The app kept the images: they go back to the composer with the text.
      sent.remove();
      images.restore(attached.items);
    }
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
    showError(`Retry failed: ${friendlyError(err)}`);
    onOllamaDown(err);
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
    listen(Ev.pull, (ev) => pull.onEvent(ev)),
    listen(Ev.chat, (ev) => {
      const t0 = performance.now();
      chat.onChatEvent(ev);
      recordHandler(ev, performance.now() - t0);
    }),
  ]);
  const [snapshot, history] = await Promise.allSettled([invoke(Cmd.status), invoke(Cmd.gpuHistory)]);
  if (history.status === "fulfilled") strip.setHistory(history.value);
  if (snapshot.status === "fulfilled") onSnapshot(snapshot.value);
  // The header names the chat model when the picker chose one (another window may have).
  models.loadChoice();
  pull.resume();
  els.input.focus();
  marks.data = now();
  // The second frame callback runs once the first full frame has been painted: the tray logs
  // "Open chat" → painted from this (the window with the model's status in it).
  await Promise.all([shellPainted, afterTwoFrames("painted")]);
  invoke(Cmd.painted, { marks }).catch(() => {});
}

boot().catch((err) => showError(`Could not start: ${errorText(err)}`));
