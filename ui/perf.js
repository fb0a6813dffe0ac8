// Always-on performance counters of the chat stream, read by the real-webview end-to-end test
// (tests/webview) through `window.__yollayahPerf`. A few additions per chat event and per frame:
// nothing worth switching off. Sample rings are fixed-size, so a long session cannot grow them.

const RING = 8192;

function ring() {
  return { values: new Float64Array(RING), n: 0 };
}

function push(r, v) {
  r.values[r.n % RING] = v;
  r.n += 1;
}

export const perf = {
  /** `delta` chat events received. */
  deltas: 0,
  /** Characters of raw delta text received (to prove none was dropped). */
  deltaChars: 0,
  /** `thinking` chat events received, and their characters. */
  thinkings: 0,
  thinkingChars: 0,
  /** Main-thread ms spent in the chat-event handler (all kinds of chat event). */
  handlerMs: 0,
  /** Main-thread ms spent applying queued work to the DOM (rAF or fallback flushes). */
  flushMs: 0,
  /** Longest single flush, ms. */
  maxFlushMs: 0,
  /** Flushes run. */
  frames: 0,
  /** `stats` of the last `done` event (eval_count = chunks the model sent). */
  lastDone: null,
  /** Per-delta handler time (answer deltas; thinking pieces in their own ring) and per-flush
   * time, the last RING of each. */
  handlerSamples: ring(),
  thinkingSamples: ring(),
  flushSamples: ring(),
  /** Flushes that wrote thinking text (a subset of flushSamples). */
  thinkingFlushSamples: ring(),
  /** Zeroes everything (the test calls it before a measured stream). */
  reset() {
    this.deltas = 0;
    this.deltaChars = 0;
    this.thinkings = 0;
    this.thinkingChars = 0;
    this.handlerMs = 0;
    this.flushMs = 0;
    this.maxFlushMs = 0;
    this.frames = 0;
    this.lastDone = null;
    this.handlerSamples = ring();
    this.thinkingSamples = ring();
    this.flushSamples = ring();
    this.thinkingFlushSamples = ring();
  },
  /** The samples of one ring, oldest first, as a plain array (for WebDriver). */
  samples(which) {
    const r = which === "flush" ? this.flushSamples
      : which === "thinking-flush" ? this.thinkingFlushSamples
        : which === "thinking" ? this.thinkingSamples : this.handlerSamples;
    const n = Math.min(r.n, RING);
    const out = new Array(n);
    for (let i = 0; i < n; i += 1) out[i] = r.values[(r.n - n + i) % RING];
    return out;
  },
};

/** Records one chat-event handler run. */
export function recordHandler(ev, ms) {
  perf.handlerMs += ms;
  if (ev && ev.kind === "delta") {
    perf.deltas += 1;
    if (typeof ev.text === "string") perf.deltaChars += ev.text.length;
    push(perf.handlerSamples, ms);
  } else if (ev && ev.kind === "thinking") {
    perf.thinkings += 1;
    if (typeof ev.text === "string") perf.thinkingChars += ev.text.length;
    push(perf.thinkingSamples, ms);
  } else if (ev && ev.kind === "done") {
    perf.lastDone = ev.stats || null;
  }
}

/** Records one flush of queued stream work to the DOM (`thinking`: it wrote thinking text). */
export function recordFlush(ms, thinking) {
  perf.flushMs += ms;
  perf.frames += 1;
  if (ms > perf.maxFlushMs) perf.maxFlushMs = ms;
  push(perf.flushSamples, ms);
  if (thinking) push(perf.thinkingFlushSamples, ms);
}

window.__yollayahPerf = perf;
