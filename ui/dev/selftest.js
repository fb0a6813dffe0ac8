// Development only: drives the real UI (with the mock backend) through its main paths and
// writes PASS/FAIL lines into <pre id="selftest">. Run by run-selftest.sh under headless
// Chromium (`--dump-dom`), or open dev/index.html?selftest=1 in a browser.

const results = [];
const out = document.createElement("pre");
out.id = "selftest";

function check(name, ok, detail = "") {
  results.push(`${ok ? "PASS" : "FAIL"} ${name}${detail ? ` — ${detail}` : ""}`);
  out.textContent = results.join("\n");
}

const $ = (id) => document.getElementById(id);
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

async function until(pred, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await tick(10);
  }
  return pred();
}

function key(target, k, opts = {}) {
  target.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true, cancelable: true, ...opts }));
}

function normalise(html) {
  // The UI wraps each <pre> in a div with a language tag and a copy button; undo that.
  const d = document.createElement("div");
  d.innerHTML = html;
  for (const w of d.querySelectorAll("div.code")) {
    const pre = w.querySelector("pre");
    pre.removeAttribute("tabindex");
    w.replaceWith(pre);
  }
  return d.innerHTML;
}

export async function run() {
  document.body.append(out);
  const fixture = await (await fetch("stream.json")).json();
  const input = $("input");
  const log = $("log");

  // 1. Shift+Enter does not send; Enter does.
  input.value = "Why is my model slow?";
  input.dispatchEvent(new Event("input"));
  key(input, "Enter", { shiftKey: true });
  await tick(20);
  check("shift+enter does not send", !log.querySelector(".msg.user"));
  key(input, "Enter");
  await until(() => log.querySelector(".msg.user"));
  check("enter sends the message", log.querySelector(".msg.user .body")?.textContent === "Why is my model slow?");
  check("input cleared after send", input.value === "");

  // 2. Streaming: Stop button shown, blocks appended, tail as text, then done.
  await until(() => log.querySelector(".msg.assistant.streaming"));
  check("stop button shown while streaming", !$("stop").hidden && $("send").hidden);
  const msg = log.querySelector(".msg.assistant");
  await until(() => msg.querySelector(".md").children.length >= 2);
  check("tail is plain text (no elements)", msg.querySelector(".tail").children.length === 0);
  await until(() => !msg.classList.contains("streaming"), 15000);
  check("reply done", !msg.classList.contains("streaming"));
  check("streamed HTML equals the final sanitised HTML", normalise(msg.querySelector(".md").innerHTML) === fixture.html);
  check("tail empty after done", msg.querySelector(".tail").textContent === "");
  check("copy buttons on code blocks", msg.querySelectorAll(".code button.copy").length === msg.querySelectorAll("pre").length && msg.querySelectorAll("pre").length > 0);
  check("unsafe markup shown as text", msg.textContent.includes("<img src=x onerror=alert(1)>") && !msg.querySelector("img"));
  check("speed shown in strip", /tok\/s/.test($("speed").textContent), $("speed").textContent);
  check("send button back", !$("send").hidden && $("stop").hidden);

  // 3. Links go to open_external, never navigate.
  const link = msg.querySelector("a[href^='https://']");
  const before = location.href;
  link.click();
  await tick(20);
  check("link click calls open_external", document.documentElement.dataset.lastExternal === link.getAttribute("href"), document.documentElement.dataset.lastExternal);
  check("link click does not navigate", location.href === before);

  // 4. Stop mid-stream → incomplete badge + Retry → new reply.
  input.value = "Again please";
  input.dispatchEvent(new Event("input"));
  key(input, "Enter");
  await until(() => log.querySelectorAll(".msg.assistant").length === 2 && log.querySelectorAll(".msg.assistant")[1].querySelector(".md").children.length > 0);
  $("stop").click();
  const second = log.querySelectorAll(".msg.assistant")[1];
  await until(() => second.classList.contains("incomplete"));
  check("stop marks the reply incomplete", second.querySelector(".badge-incomplete")?.textContent === "Incomplete"
    && second.querySelector(".incomplete-why")?.textContent === "stopped");
  check("partial text kept", second.querySelector(".md").textContent.length > 0);
  second.querySelector("button.retry").click();
  await until(() => log.querySelectorAll(".msg.assistant").length === 3);
  check("retry starts a new reply", log.querySelectorAll(".msg.assistant").length === 3);
  check("retried reply marked superseded", second.classList.contains("superseded") && !second.querySelector("button.retry"));
  await until(() => !log.querySelector(".msg.assistant.streaming"), 15000);

  // 5. rAF batching: a burst of 100 deltas in one frame costs one flush.
  const appendCalls = { n: 0 };
  const orig = Element.prototype.insertAdjacentHTML;
  Element.prototype.insertAdjacentHTML = function (...a) { appendCalls.n++; return orig.apply(this, a); };
  window.__mock.emit("yollayah://chat", { kind: "delta", reply: 998, text: "x", tail: "stray" });
  window.__mock.emit("yollayah://chat", { kind: "started", conversation: 7, user_message: 997, reply: 999 });
  for (let i = 0; i < 100; i++) {
    window.__mock.emit("yollayah://chat", { kind: "delta", reply: 999, text: "x", html_blocks: [{ index: i, html: `<p>b${i}</p>` }], tail: `t${i}` });
  }
  const burstMsg = log.querySelector(".msg[data-reply='999']");
  // Flushed by the next frame (or, in headless virtual time, the app's fallback timer).
  await until(() => burstMsg.querySelector(".tail").textContent === "t99");
  Element.prototype.insertAdjacentHTML = orig;
  check("100 deltas in one frame → one DOM insert", appendCalls.n === 1, `inserts=${appendCalls.n}`);
  check("all burst blocks present in order", burstMsg.querySelectorAll(".md p").length === 100 && burstMsg.querySelector(".md p:last-child").textContent === "b99");
  check("latest tail shown", burstMsg.querySelector(".tail").textContent === "t99");
  check("events of a reply never started here are ignored", !log.querySelector(".msg[data-reply='998']"));
  window.__mock.emit("yollayah://chat", { kind: "cancelled", reply: 999, partial: "" });

  // 6. Status: badge popover by keyboard, Esc closes it, then Esc closes the window.
  const badge = $("badge");
  badge.focus();
  badge.click();
  check("badge opens the diagnosis popover", !$("popover").hidden && badge.getAttribute("aria-expanded") === "true");
  check("popover shows no internal codes", !/\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b/.test($("popover").textContent), $("popover").textContent);
  key(document.body, "Escape");
  check("esc closes the popover first", $("popover").hidden && document.documentElement.dataset.closed !== "1");
  key(document.body, "Escape");
  await tick(10);
  check("esc closes the window", document.documentElement.dataset.closed === "1");
  delete document.documentElement.dataset.closed;

  // 7. Down verdict disables sending and shows the reason.
  window.__mock.emit("yollayah://snapshot", window.__mock.snapshot("down", { at: new Date(Date.now() + 60000).toISOString() }));
  input.value = "hello";
  input.dispatchEvent(new Event("input"));
  check("send disabled while down", $("send").disabled && !$("down").hidden, $("down").textContent);
  check("down panel says how to start Ollama", /Ollama is not running/.test($("down").textContent)
    && /ollama serve/.test($("down").textContent) && !/refused/.test($("down").textContent), $("down").textContent);
  check("badge says down", $("badge-text").textContent === "down");
  check("no 'no GPU' while down", $("vram").textContent === "", $("vram").textContent);
  $("down-retry").click();
  await until(() => !$("down-retry").disabled);
  check("retry checks now", document.documentElement.dataset.checkedNow === "1");
  window.__mock.emit("yollayah://snapshot", window.__mock.snapshot("gpu", { at: new Date(Date.now() + 62000).toISOString() }));
  check("send enabled when back", !$("send").disabled && $("down").hidden);

  // 8. Conversations: open the list, load one, new chat clears.
  $("chats-toggle").click();
  await until(() => $("chats-list").querySelectorAll("button").length > 0);
  check("conversation list shown", !$("chats-panel").hidden && $("chats-list").querySelectorAll("button").length === 3);
  $("chats-list").querySelector("button").click();
  await until(() => !log.querySelector(".msg[data-reply='999']") && log.querySelector(".badge-incomplete"));
  check("conversation loaded with its incomplete reply", log.querySelectorAll(".msg").length === 4 && $("chats-panel").hidden, `msgs=${[...log.querySelectorAll(".msg")].map((m) => m.className + ":" + (m.dataset.reply || "")).join(",")} panelHidden=${$("chats-panel").hidden}`);
  $("new-chat").click();
  await until(() => log.querySelector(".empty"));
  check("new chat clears the view", log.querySelectorAll(".msg").length === 0 && $("title").textContent === "");

  // 9. Accessibility basics.
  check("log has role=log + aria-live", log.getAttribute("role") === "log" && log.getAttribute("aria-live") === "polite");
  check("strip has role=status", $("status").getAttribute("role") === "status");
  const unlabeled = [...document.querySelectorAll("button")].filter((b) => !(b.getAttribute("aria-label") || b.textContent.trim()));
  check("every button has a label", unlabeled.length === 0, unlabeled.map((b) => b.id).join(","));
  check("no inline style attributes from HTML", !document.body.innerHTML.match(/<(?!textarea)[a-z]+[^>]*\sstyle=/i));

  out.textContent = `${results.join("\n")}\nDONE ${results.filter((r) => r.startsWith("FAIL")).length} failed of ${results.length}`;
}
