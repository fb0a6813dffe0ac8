// Development only (never loaded by the app): a fake window.__TAURI__ that follows
// the IPC contract (src-tauri/src/ipc.rs), with a scripted reply stream whose HTML came from the real Rust sanitiser
// (stream.json, made by `cargo run -p yollayah-render --example stream_fixture < reply.md`).
//
// URL parameters:
//   state=gpu|partial|cpu|down|warming|not_loaded   verdict in the snapshots (default gpu)
//   scenario=idle|stream|history                    what happens after boot (default idle)
//   pause=N        stop the scripted stream after N deltas (leaves it streaming, for screenshots)
//   rate=N         tokens per second of the stream (default 200)
//   popover=1      open the diagnosis popover;  chats=1  open the conversation list
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const verdictKind = params.get("state") || "gpu";
  const scenario = params.get("scenario") || "idle";
  const pauseAt = params.has("pause") ? Number(params.get("pause")) : Infinity;
  const rate = Number(params.get("rate") || 200);
  const GiB = 1024 ** 3;
  const listeners = new Map();
  const fixture = fetch("stream.json").then((r) => r.json());
  let nextId = 100;
  let streamTimer = 0;
  let activeReply = null;

  function emit(event, payload) {
    for (const cb of listeners.get(event) || []) cb({ event, id: 0, payload });
  }

  function snapshot(kind, extra) {
    const verdict = { kind };
    if (kind === "partial") verdict.cpu_pct = 62;
    const used = { gpu: 3.4, partial: 11.6, cpu: 0.4, down: 0.4, warming: 1.2, not_loaded: 0.4 }[kind] ?? 0.4;
    const util = { gpu: 71, partial: 18, cpu: 0, down: 0, warming: 5, not_loaded: 0 }[kind] ?? 0;
    const findings = kind === "partial"
      ? [
        { code: "CTX_TOO_LARGE", severity: "warning", title: "The context is too large for the free VRAM", evidence: [], remedy: "Set num_ctx to 16384", suggested_num_ctx: 16384, rank: 1 },
        { code: "VRAM_HELD_BY_OTHER_PROCESS", severity: "info", title: "firefox holds 812 MiB of VRAM", evidence: [], remedy: "Close it", rank: 2 },
      ]
      : kind === "cpu"
        ? [{ code: "NUM_GPU_ZERO", severity: "warning", title: "The Modelfile sets num_gpu 0", evidence: [], remedy: "Remove PARAMETER num_gpu 0", rank: 1 }]
        : [];
    const headlines = {
      gpu: "llama3.2:3b · 100% GPU · VRAM 3.4/12.0 GiB",
      partial: "llama3.2:3b · 62% CPU / 38% GPU · VRAM 11.6/12.0 GiB",
      cpu: "llama3.2:3b · 100% CPU",
      down: "Ollama is not running",
      warming: "llama3.2:3b · loading…",
      not_loaded: "llama3.2:3b · not loaded",
    };
    const advice = {
      partial: "The context (131072) is too large for the free VRAM. Set num_ctx to 16384.",
      cpu: "The Modelfile forces CPU (num_gpu 0). Remove that parameter.",
    };
    return Object.assign({
      at: new Date().toISOString(),
      url: "http://127.0.0.1:11434",
      ollama: kind === "down" ? { state: "down", reason: "connection refused (127.0.0.1:11434)" } : { state: "up", version: "0.33.0" },
      model: "llama3.2:3b",
      verdict,
      headline: headlines[kind] || "",
      advice: advice[kind] || null,
      diagnoses: [{ model: "llama3.2:3b", loaded: kind !== "not_loaded" && kind !== "down", placement: verdict, findings }],
      gpus: [{ name: "NVIDIA GeForce RTX 3060", memory_used: used * GiB, memory_total: 12 * GiB, utilization_gpu: util }],
      nvml: { status: "ok" },
      warming: kind === "warming",
      muted: false,
      open_incidents: kind === "partial" || kind === "cpu" ? 1 : 0,
    }, extra || {});
  }

  function history() {
    const now = Date.now();
    const out = [];
    for (let i = 150; i > 0; i--) {
      const t = now - i * 2000;
      const wave = Math.max(0, Math.sin(i / 9) * 60 + (i % 17 < 5 ? 30 : 0));
      out.push({ at_ms: t, util_pct: Math.round(wave), vram_used: (verdictKind === "partial" ? 11.2 : 3.2) * GiB + (i % 7) * 0.02 * GiB, vram_total: 12 * GiB });
    }
    return out;
  }

  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  async function streamReply(reply) {
    const f = await fixture;
    activeReply = { reply, partial: "" };
    emit("yollayah://chat", { kind: "started", conversation: 7, user_message: reply - 1, reply });
    let i = 0;
    const step = () => {
      if (!activeReply || activeReply.reply !== reply) return;
      if (i >= pauseAt) return; // frozen mid-stream for a screenshot
      if (i >= f.deltas.length) {
        activeReply = null;
        emit("yollayah://chat", {
          kind: "done", reply, html: f.html,
          stats: { ttft_ms: 182, tokens_per_second: 87.4, load_ms: 0, eval_count: f.deltas.length, prompt_eval_count: 412, total_ms: Math.round((f.deltas.length / rate) * 1000) },
        });
        return;
      }
      const d = f.deltas[i++];
      activeReply.partial += d.text;
      emit("yollayah://chat", { kind: "delta", reply, text: d.text, html_blocks: d.html_blocks, tail: d.tail });
      streamTimer = setTimeout(step, 1000 / rate);
    };
    streamTimer = setTimeout(step, 120);
  }

  function send() {
    const userMessage = nextId++;
    const reply = nextId++;
    setTimeout(() => streamReply(reply), 0);
    return { conversation: 7, user_message: userMessage, reply };
  }

  const conversations = [
    { id: 7, title: "Why is my model slow?", model: "llama3.2:3b", persona: "yollayah", updated_at: new Date(Date.now() - 4 * 60e3).toISOString(), message_count: 4, preview: "Your model is running partly on the CPU (62%)…" },
    { id: 6, title: "Rust lifetimes in async code", model: "qwen2.5-coder:7b", persona: "yollayah", updated_at: new Date(Date.now() - 3 * 3600e3).toISOString(), message_count: 12, preview: "The borrow outlives the await point because…" },
    { id: 5, title: "Translate a recipe to Spanish", model: "llama3.2:3b", persona: "yollayah", updated_at: new Date(Date.now() - 2 * 86400e3).toISOString(), message_count: 6, preview: "Claro. Ingredientes: 200 g de harina…" },
  ];

  let pullSeq = 0;
  let pullTimer = null;
  const handlers = {
    status: () => snapshot(verdictKind),
    gpu_history: () => history(),
    send_message: () => send(),
    retry_reply: () => send(),
    cancel_reply: ({ reply }) => {
      clearTimeout(streamTimer);
      const partial = activeReply ? activeReply.partial : "";
      activeReply = null;
      const html = partial ? `<p>${escapeHtml(partial)}</p>\n` : "";
      setTimeout(() => emit("yollayah://chat", { kind: "cancelled", reply, partial, html }), 0);
      return null;
    },
    list_conversations: ({ limit }) => conversations.slice(0, limit),
    list_models: () => [
      { name: "llama3.2:3b", size: 2019393189, parameter_size: "3.2B", quantization: "Q4_K_M", capabilities: ["completion", "tools"], think: "none", vision: false, chat: true,
        fit: { num_ctx: 4096, prediction: { kind: "loaded" }, summary: "loaded: 100% GPU" } },
      { name: "qwen3:8b", size: 5225374592, parameter_size: "8.2B", quantization: "Q4_K_M", capabilities: ["completion", "tools", "thinking"], think: "toggle", vision: false, chat: true,
        fit: { num_ctx: 4096, prediction: { kind: "fits_gpu" }, summary: "fits on the GPU" } },
      { name: "qwen2.5:14b", size: 8988124069, parameter_size: "14.8B", quantization: "Q4_K_M", capabilities: ["completion", "tools"], think: "none", vision: false, chat: true,
        fit: { num_ctx: 4096, prediction: { kind: "spills", cpu_pct: 23 }, summary: "≈ 23 % on the CPU: largest context that fits is 2048" } },
    ],
    load_conversation: async ({ id }) => {
      const f = await fixture;
      if (id !== 7) return [{ id: 1, role: "user", content: "Hello", status: "complete" }, { id: 2, role: "assistant", content: "Hi!", status: "complete", html: "<p>Hi!</p>\n" }];
      return [
        { id: 10, role: "user", content: "Why is my model slow?", status: "complete" },
        { id: 11, role: "assistant", content: f.text, status: "complete", html: f.html },
        { id: 12, role: "user", content: "And with a 7B model?", status: "complete" },
        { id: 13, role: "assistant", content: "A 7B model at Q4 needs about", status: "incomplete", reason: "Ollama stopped answering (connection reset)", html: "<p>A 7B model at Q4 needs about</p>\n" },
      ];
    },
    warm: () => new Promise((resolve) => {
      emit("yollayah://snapshot", snapshot("warming"));
      setTimeout(() => {
        emit("yollayah://snapshot", snapshot("gpu"));
        resolve({ model: "llama3.2:3b", load_ms: 1180 });
      }, 1200);
    }),
    unload: () => null,
    // A pull of ~500 MiB at ~60 MiB/s; "nope:*" fails as Ollama says an unknown name does.
    pull_state: () => null,
    pull_model: ({ name }) => {
      const id = ++pullSeq;
      const total = 522653767;
      let completed = 0;
      clearInterval(pullTimer);
      pullTimer = setInterval(() => {
        if (name.startsWith("nope")) {
          clearInterval(pullTimer);
          emit("yollayah://pull", { kind: "failed", id, name, error: "pull model manifest: file does not exist" });
          return;
        }
        completed = Math.min(total, completed + 6.3e6);
        const layer = { digest: "sha256:a5d1f3b2c4e6a5d1f3b2c4e6", total, completed };
        emit("yollayah://pull", { kind: "progress", id, name, status: "pulling a5d1f3b2c4e6", total, completed,
          bytes_per_second: 63e6, eta_secs: (total - completed) / 63e6, done: false, layer });
        if (completed >= total) {
          clearInterval(pullTimer);
          emit("yollayah://pull", { kind: "done", id, name, total });
        }
      }, 100);
      return { id, name };
    },
    cancel_pull: ({ id }) => {
      clearInterval(pullTimer);
      setTimeout(() => emit("yollayah://pull", { kind: "cancelled", id, name: "the model" }), 0);
      return null;
    },
    check_now: () => {
      document.documentElement.dataset.checkedNow = "1";
      return snapshot("down");
    },
    // Images: the mock's model is llama3.2:3b, which cannot see them.
    image_support: () => ({ model: "llama3.2:3b", vision: false, suggestion: "gemma3:4b",
      message: "llama3.2:3b cannot see images; gemma3:4b can: switch to it to send images",
      max_file_bytes: 25 << 20, max_pixels: 50000000, max_images: 4, longest_side: 1120 }),
    attach_image: () => Promise.reject({ kind: "bad_input",
      message: "llama3.2:3b cannot see images; gemma3:4b can: switch to it to send images" }),
    discard_image: () => null,
    open_external: ({ url }) => {
      document.documentElement.dataset.lastExternal = url;
      return null;
    },
  };

  window.__TAURI__ = {
    core: {
      invoke(cmd, args) {
        const h = handlers[cmd];
        if (!h) return Promise.reject({ kind: "internal", message: `mock: no command ${cmd}` });
        try {
          return Promise.resolve(h(args || {}));
        } catch (e) {
          return Promise.reject({ kind: "internal", message: String(e) });
        }
      },
    },
    event: {
      listen(event, cb) {
        if (!listeners.has(event)) listeners.set(event, new Set());
        listeners.get(event).add(cb);
        return Promise.resolve(() => listeners.get(event).delete(cb));
      },
    },
    window: {
      getCurrentWindow: () => ({ close: () => { document.documentElement.dataset.closed = "1"; return Promise.resolve(); } }),
    },
  };

  window.__mock = {
    emit,
    snapshot,
    afterBoot() {
      setTimeout(() => {
        if (scenario === "stream") {
          const input = document.getElementById("input");
          input.value = "Why is my model slow?";
          input.dispatchEvent(new Event("input"));
          document.getElementById("composer").requestSubmit();
        } else if (scenario === "history") {
          handlers.load_conversation({ id: 7 }); // warm the fixture
          document.getElementById("chats-toggle").click();
          setTimeout(() => {
            const first = document.querySelector("#chats-list button");
            if (first) first.click();
          }, 100);
        }
        // After the scenario's own clicks, which would close a pinned popover.
        if (params.get("popover") === "1") setTimeout(() => document.getElementById("badge").click(), 400);
        if (params.get("chats") === "1") document.getElementById("chats-toggle").click();
        // Keep snapshots flowing like the watchdog does (every 2 s).
        setInterval(() => emit("yollayah://snapshot", snapshot(verdictKind)), 2000);
      }, 60);
    },
  };
})();
