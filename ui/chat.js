// The conversation view: user messages, streamed assistant replies, incomplete-reply badges.
//
// Speed: chat events only queue work; one requestAnimationFrame callback per frame appends the
// blocks that became complete (insertAdjacentHTML of HTML that came from the Rust sanitiser) and
// sets the open tail: its provisional rendering (`tail_html`, sanitised in Rust) when the backend
// sends one, else plain text. Nothing already on screen is re-rendered while a reply
// streams, so a 200 tok/s stream costs a few small DOM writes per frame whatever the length.
//
// Thinking: a model's reasoning trace (`thinking` events) streams into a collapsible
// "Thinking…" block above the answer, open while it streams and collapsed (with its duration)
// once the answer starts (`thinking_done`). A stored reply shows its trace collapsed.
//
// Images: a user message shows its images' thumbnails, `data:` URLs made in Rust (images.js).
//
// Safety: the only HTML ever inserted is `html_blocks[].html`, `tail_html`, the `html` of `done`,
// `failed` and `cancelled`, and a loaded message's `html`, all sanitised in Rust. Everything else (user
// text, tails, thinking traces, errors, stats) goes through textContent.

import { errorText } from "./ipc.js";
import { tokPerSec } from "./format.js";
import { enhanceCodeBlocks } from "./code.js";
import { recordFlush } from "./perf.js";
import { messageImages } from "./images.js";

const BOTTOM_SLACK_PX = 24;
const FALLBACK_FLUSH_MS = 100;

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = text;
  return e;
}

/** Shows or hides a reply's thinking trace (the toggle says which). */
function setThinkingOpen(v, open) {
  v.thinkingBody.hidden = !open;
  v.thinkingSummary.setAttribute("aria-expanded", open ? "true" : "false");
  v.thinking.classList.toggle("open", open);
}

/** The collapsed thinking block's label. */
function thoughtFor(ms) {
  if (typeof ms !== "number" || !(ms >= 0)) return "Thought";
  if (ms < 1000) return "Thought for less than a second";
  const s = ms / 1000;
  return s < 10 ? `Thought for ${s.toFixed(1)} s` : `Thought for ${Math.round(s)} s`;
}

export class ChatView {
  /**
   * @param {HTMLElement} log the role=log scroll container
   * @param {{onRetry:(reply:number)=>void, onStreamingChange:(streaming:boolean)=>void,
   *          onStats:(stats:object)=>void}} hooks
   */
  constructor(log, hooks) {
    this.log = log;
    this.hooks = hooks;
    this.replies = new Map();
    this.dirty = new Set();
    this.frame = 0;
    this.fallback = 0;
    this.stick = true;
    this.streaming = new Set();
    this.empty = null;
    log.addEventListener("scroll", () => {
      this.stick = log.scrollTop + log.clientHeight >= log.scrollHeight - BOTTOM_SLACK_PX;
    }, { passive: true });
    this.clear();
  }

  /** Empties the view (new chat). */
  clear() {
    this.log.replaceChildren();
    this.replies.clear();
    this.dirty.clear();
    this.streaming.clear();
    this.stick = true;
    this.empty = el("p", "empty", "Ask anything. Enter sends, Shift+Enter adds a line, Esc closes.");
    this.log.append(this.empty);
    this.hooks.onStreamingChange(false);
  }

  dropEmptyHint() {
    if (this.empty) {
      this.empty.remove();
      this.empty = null;
    }
  }

  /** Appends a user message (plain text), with its images' thumbnails (`images.js`). */
  addUser(text, images) {
    this.dropEmptyHint();
    const m = el("article", "msg user");
    m.setAttribute("aria-label", "You");
    if (Array.isArray(images) && images.length) m.append(messageImages(images));
    if (text !== "" || !images || !images.length) m.append(el("div", "body", text));
    this.log.append(m);
    this.scrollToBottom(true);
    return m;
  }

  /** The view of assistant reply `id`, created at the end of the list if new. */
  ensureReply(id) {
    let v = this.replies.get(id);
    if (v) return v;
    this.dropEmptyHint();
    const m = el("article", "msg assistant");
    m.dataset.reply = String(id);
    m.setAttribute("aria-label", "Assistant");
    const blocks = el("div", "md");
    const tail = el("div", "tail");
    const tailText = document.createTextNode("");
    tail.append(tailText);
    const tailHtml = el("div", "md tail-md");
    const meta = el("div", "meta");
    // A disclosure (button + region), hidden until the first piece of a thinking trace arrives.
    // Not <details>: the message list holds no element the sanitiser would refuse.
    const thinking = el("div", "thinking");
    thinking.hidden = true;
    const thinkingSummary = el("button", "thinking-toggle", "Thinking…");
    thinkingSummary.type = "button";
    const thinkingBody = el("div", "thinking-text");
    thinkingBody.id = `thinking-${id}`;
    thinkingSummary.setAttribute("aria-controls", thinkingBody.id);
    const thinkingText = document.createTextNode("");
    thinkingBody.append(thinkingText);
    thinking.append(thinkingSummary, thinkingBody);
    m.append(thinking, blocks, tailHtml, tail, meta);
    v = {
      id, el: m, blocks, tail, tailText, tailHtml, meta,
      thinking, thinkingSummary, thinkingBody, thinkingText, thinkRaw: "", thinkingDirty: false,
      thinkingStarted: 0, thinkStick: true,
      nextIndex: 0, htmlSoFar: "", queued: [], pendingTail: null, pendingTailHtml: null,
      raw: "", resync: false,
    };
    thinkingSummary.addEventListener("click", () => setThinkingOpen(v, thinkingBody.hidden));
    thinkingBody.addEventListener("scroll", () => {
      v.thinkStick =
        thinkingBody.scrollTop + thinkingBody.clientHeight >= thinkingBody.scrollHeight - BOTTOM_SLACK_PX;
    });
    setThinkingOpen(v, false);
    this.replies.set(id, v);
    this.log.append(m);
    this.scrollToBottom(false);
    return v;
  }

  /** Handles one `yollayah://chat` payload. */
  onChatEvent(ev) {
    if (!ev || typeof ev.reply !== "number") return;
    // Events of a reply this view never saw start belong to a conversation no longer shown
    // (e.g. New chat while a reply streamed): drop them rather than mix conversations.
    if (ev.kind !== "started" && !this.replies.has(ev.reply)) return;
    switch (ev.kind) {
      case "started":
        this.setStreaming(this.ensureReply(ev.reply), true);
        break;
      case "thinking":
        this.onThinking(ev);
        break;
      case "thinking_done":
        this.onThinkingDone(ev);
        break;
      case "delta":
        this.onDelta(ev);
        break;
      case "done":
        this.onDone(ev);
        break;
      case "failed":
        // The error's category (`error_kind`, from the core), not its text, decides the words.
        if (ev.error_kind === "ollama_down") {
          this.onEnded(ev, "Ollama stopped answering", errorText(ev.error));
          if (this.hooks.onOllamaDown) this.hooks.onOllamaDown();
        } else {
          this.onEnded(ev, errorText(ev.error));
        }
        break;
      case "cancelled":
        this.onEnded(ev, "stopped");
        break;
      default:
        break;
    }
  }

  onThinking(ev) {
    if (typeof ev.text !== "string") return;
    const v = this.ensureReply(ev.reply);
    this.setStreaming(v, true);
    if (v.thinking.hidden) {
      v.thinking.hidden = false;
      setThinkingOpen(v, true);
      v.thinking.classList.add("live");
      v.thinkingStarted = performance.now();
    }
    v.thinkRaw += ev.text;
    v.thinkingDirty = true;
    this.markDirty(v);
  }

  onThinkingDone(ev) {
    const v = this.ensureReply(ev.reply);
    this.flushView(v);
    const ms = typeof ev.ms === "number" ? ev.ms : performance.now() - v.thinkingStarted;
    this.closeThinking(v, ms);
  }

  /** Collapses the thinking block (the answer has started) and shows how long it took. */
  closeThinking(v, ms) {
    if (v.thinking.hidden || !v.thinking.classList.contains("live")) return;
    v.thinking.classList.remove("live");
    setThinkingOpen(v, false);
    v.thinkingSummary.textContent = thoughtFor(ms);
  }

  onDelta(ev) {
    const v = this.ensureReply(ev.reply);
    // A backend that sends no `thinking_done`: the first answer text ends the trace.
    if (v.thinking.classList.contains("live")) {
      this.closeThinking(v, performance.now() - v.thinkingStarted);
    }
    this.setStreaming(v, true);
    if (typeof ev.text === "string") v.raw += ev.text;
    if (Array.isArray(ev.html_blocks) && !v.resync) {
      for (const b of ev.html_blocks) v.queued.push(b);
    }
    if (typeof ev.tail_html === "string" && !v.resync) {
      // Markdown of the open block, rendered as it streams (bold is bold before the block ends).
      v.pendingTailHtml = ev.tail_html;
      v.pendingTail = "";
    } else if (typeof ev.tail === "string") {
      v.pendingTail = ev.tail;
    } else if (!Array.isArray(ev.html_blocks)) {
      // A backend that sends raw text only: show it all as plain text until `done`.
      v.pendingTail = v.raw;
    }
    this.markDirty(v);
  }

  onDone(ev) {
    const v = this.ensureReply(ev.reply);
    this.flushView(v);
    this.closeThinking(v, performance.now() - v.thinkingStarted);
    const html = typeof ev.html === "string" ? ev.html : null;
    if (html != null) {
      if (!v.resync && html.startsWith(v.htmlSoFar)) {
        // Normal case: the final HTML is what streamed plus the last block(s).
        this.appendHtml(v, html.slice(v.htmlSoFar.length));
      } else {
        v.blocks.innerHTML = html;
        v.htmlSoFar = html;
        enhanceCodeBlocks(v.blocks);
      }
    }
    v.tailText.data = "";
    v.pendingTail = null;
    v.el.classList.remove("incomplete");
    v.meta.replaceChildren();
    const stats = ev.stats || {};
    const parts = [tokPerSec(stats.tokens_per_second)];
    if (typeof stats.ttft_ms === "number") parts.push(`first token ${Math.round(stats.ttft_ms)} ms`);
    if (typeof stats.load_ms === "number" && stats.load_ms > 0) {
      parts.push(`load ${(stats.load_ms / 1000).toFixed(1)} s`);
    }
    v.meta.append(el("span", "stats", parts.filter(Boolean).join(" · ")));
    this.setStreaming(v, false);
    this.hooks.onStats(stats);
    this.scrollToBottom(false);
  }

  onEnded(ev, reason, detail) {
    const v = this.ensureReply(ev.reply);
    this.flushView(v);
    this.closeThinking(v, performance.now() - v.thinkingStarted);
    this.setStreaming(v, false);
    const partial = typeof ev.partial === "string" ? ev.partial : v.raw;
    this.markIncomplete(v, reason, detail);
    if (partial.trim() === "") {
      v.tailText.data = "";
      return;
    }
    // `html` is the partial text rendered and sanitised in Rust, as `done` carries it.
    if (typeof ev.html === "string") {
      v.blocks.innerHTML = ev.html;
      v.htmlSoFar = ev.html;
      v.tailText.data = "";
      enhanceCodeBlocks(v.blocks);
    } else if (v.htmlSoFar === "") {
      // Plain text: readable, and nothing unsanitised is ever inserted.
      v.tailText.data = partial;
    }
  }

  markIncomplete(v, reason, detail) {
    v.el.classList.add("incomplete");
    v.meta.replaceChildren();
    // A small pill that says what happened; the reason in full is its tooltip.
    const badge = el("span", "badge-incomplete", "Incomplete");
    const why = el("span", "incomplete-why", reason);
    badge.title = `Incomplete: ${detail && detail !== reason ? `${reason} (${detail})` : reason}`;
    const retry = el("button", "retry", "Retry");
    retry.type = "button";
    retry.setAttribute("aria-label", `Retry this reply (incomplete: ${reason})`);
    retry.addEventListener("click", () => {
      retry.disabled = true;
      this.hooks.onRetry(v.id, () => { retry.disabled = false; });
    });
    v.meta.append(badge, why, retry);
  }

  /** Marks the superseded reply once a retry has started. */
  supersede(id) {
    const v = this.replies.get(id);
    if (!v) return;
    v.el.classList.add("superseded");
    const retry = v.meta.querySelector("button.retry");
    if (retry) retry.remove();
  }

  setStreaming(v, on) {
    const had = this.streaming.size > 0;
    if (on) this.streaming.add(v.id);
    else this.streaming.delete(v.id);
    v.el.classList.toggle("streaming", on);
    if (!on) {
      // The provisional tail is replaced by the final rendering (or the partial text).
      v.pendingTailHtml = null;
      v.tailHtml.replaceChildren();
    }
    const has = this.streaming.size > 0;
    this.log.setAttribute("aria-busy", has ? "true" : "false");
    if (had !== has) this.hooks.onStreamingChange(has);
  }

  /** The reply currently streaming (for the Stop button), or null. */
  currentStreaming() {
    let last = null;
    for (const id of this.streaming) last = id;
    return last;
  }

  markDirty(v) {
    this.dirty.add(v);
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => this.flush());
      // Hidden windows get no frames; still apply the queue now and then so it cannot grow.
      this.fallback = setTimeout(() => this.flush(), FALLBACK_FLUSH_MS);
    }
  }

  flush() {
    const t0 = performance.now();
    cancelAnimationFrame(this.frame);
    clearTimeout(this.fallback);
    this.frame = 0;
    this.flushedThinking = false;
    for (const v of this.dirty) this.flushView(v);
    this.dirty.clear();
    this.scrollToBottom(false);
    recordFlush(performance.now() - t0, this.flushedThinking);
  }

  flushView(v) {
    if (v.queued.length) {
      v.queued.sort((a, b) => a.index - b.index);
      let html = "";
      for (const b of v.queued) {
        if (typeof b.index !== "number" || typeof b.html !== "string" || b.index < v.nextIndex) {
          continue; // duplicate or malformed block
        }
        html += b.html;
        v.nextIndex = b.index + 1;
      }
      v.queued.length = 0;
      this.appendHtml(v, html);
    }
    if (v.pendingTail !== null) {
      if (v.tailText.data !== v.pendingTail) v.tailText.data = v.pendingTail;
      v.pendingTail = null;
    }
    if (v.pendingTailHtml !== null) {
      v.tailHtml.innerHTML = v.pendingTailHtml;
      v.pendingTailHtml = null;
    }
    if (v.thinkingDirty) {
      this.flushedThinking = true;
      // Append only what is new: rewriting the whole trace each frame costs as much as the
      // trace is long, and a long trace streams for a while.
      const shown = v.thinkingText.length;
      if (shown <= v.thinkRaw.length && v.thinkRaw.startsWith(v.thinkingText.data)) {
        v.thinkingText.appendData(v.thinkRaw.slice(shown));
      } else {
        v.thinkingText.data = v.thinkRaw;
      }
      v.thinkingDirty = false;
      // Follow a live trace, as the log follows the reply, unless the reader scrolled up in it.
      if (v.thinkStick && !v.thinkingBody.hidden) {
        v.thinkingBody.scrollTop = v.thinkingBody.scrollHeight;
      }
    }
    this.dirty.delete(v);
  }

  appendHtml(v, html) {
    if (!html) return;
    const before = v.blocks.lastChild;
    v.blocks.insertAdjacentHTML("beforeend", html);
    v.htmlSoFar += html;
    let n = before ? before.nextSibling : v.blocks.firstChild;
    for (; n; n = n.nextSibling) {
      if (n.nodeType === Node.ELEMENT_NODE) enhanceCodeBlocks(n);
    }
  }

  scrollToBottom(force) {
    if (force || this.stick) {
      this.log.scrollTop = this.log.scrollHeight;
      this.stick = true;
    }
  }

  /** Replaces the view with a stored conversation (`load_conversation` result). */
  async load(messages) {
    this.clear();
    for (const m of messages) {
      if (m.role === "user") {
        this.addUser(m.content ?? "", m.images);
        continue;
      }
      const v = this.ensureReply(m.id);
      if (typeof m.thinking === "string" && m.thinking !== "") {
        // A stored trace: shown collapsed, as it was once the answer started.
        v.thinkRaw = m.thinking;
        v.thinkingText.data = m.thinking;
        v.thinking.hidden = false;
        setThinkingOpen(v, false);
        v.thinkingSummary.textContent = thoughtFor(m.thinking_ms);
      }
      const html = typeof m.html === "string" ? m.html : null;
      if (typeof html === "string") {
        v.blocks.innerHTML = html;
        v.htmlSoFar = html;
        enhanceCodeBlocks(v.blocks);
      } else if (m.content) {
        v.tailText.data = m.content;
      }
      if (m.status === "incomplete") {
        this.markIncomplete(v, m.reason || "interrupted");
      } else if (m.status === "streaming" || m.status === "pending") {
        // Its earlier blocks are already in `html`; take the rest from `done`.
        v.resync = true;
        this.setStreaming(v, true);
      }
    }
    this.scrollToBottom(true);
  }
}
