// The status strip: model, placement badge (+ diagnosis popover), VRAM, GPU sparkline, last
// reply speed and the Warm button. It only renders snapshots; it never decides anything.

import { gib, meanUtil, tokPerSec, verdictBadge, vramTotals } from "./format.js";
import { Sparkline } from "./sparkline.js";
import { setAttr, setText } from "./dom.js";

/** Verdicts that mean the model is loaded (wherever it runs): a warm has nothing left to do. */
const LOADED = new Set(["gpu", "partial", "cpu", "unverified"]);

export class StatusStrip {
  /**
   * @param {Record<string, HTMLElement>} els elements from index.html
   * @param {{onWarm:()=>Promise<any>, onWarmFailed:(err:any)=>void}} hooks
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.snapshot = null;
    this.warmingLocal = false;
    this.pinned = false;
    this.popoverKey = "";
    this.spark = new Sparkline(els.spark);
    els.badge.addEventListener("click", () => this.togglePopover(!this.pinned, true));
    els.badge.addEventListener("mouseenter", () => this.showPopover(true));
    els.badge.addEventListener("mouseleave", () => { if (!this.pinned) this.showPopover(false); });
    els.badge.addEventListener("focus", () => this.showPopover(true));
    els.badge.addEventListener("blur", () => { if (!this.pinned) this.showPopover(false); });
    els.warm.addEventListener("click", () => this.warm());
    document.addEventListener("click", (e) => {
      if (this.pinned && !els.popover.contains(e.target) && !els.badge.contains(e.target)) {
        this.togglePopover(false, false);
      }
    });
  }

  /** Whether the popover is open (Esc closes it before closing the window). */
  popoverOpen() {
    return !this.els.popover.hidden;
  }

  togglePopover(on, focusBadge) {
    this.pinned = on;
    this.showPopover(on);
    if (!on && focusBadge !== false) this.els.badge.focus();
  }

  showPopover(on) {
    this.els.popover.hidden = !on;
    this.els.badge.setAttribute("aria-expanded", on ? "true" : "false");
  }

  /** Seeds the sparkline from `gpu_history`. */
  setHistory(samples) {
    this.spark.reset(samples);
  }

  /** Renders a Snapshot. Writes only what changed (dom.js says why). */
  update(s) {
    this.snapshot = s;
    const { els } = this;
    const down = Boolean(s.verdict && s.verdict.kind === "down");
    setText(els.model, s.model || "no model");
    setAttr(els.model, "title", s.url ? `${s.model || ""} at ${s.url}` : "");
    const badge = verdictBadge(s.verdict);
    setText(els.badgeText, badge.text);
    if (els.badge.dataset.tone !== badge.tone) els.badge.dataset.tone = badge.tone;
    setAttr(els.badge, "aria-label", `Placement: ${badge.text}. Show diagnosis`);

    // While Ollama is down the snapshot carries no GPU reading at all: say nothing about the
    // GPU rather than "no GPU", which reads as a hardware problem.
    // The meter row (sparkline, VRAM, speed) has nothing to say while Ollama is down.
    const meter = els.spark.parentElement;
    if (meter && meter.hidden !== down) meter.hidden = down;
    const vram = vramTotals(s.gpus);
    setText(els.vram, vram ? `${gib(vram.used)}/${gib(vram.total)} GiB` : down ? "" : "no GPU");
    setAttr(els.vram, "title", vram ? "VRAM used / total (all GPUs)" : down ? "" : nvmlReason(s));

    if (vram || (s.gpus && s.gpus.length)) {
      this.spark.push({
        at_ms: Date.parse(s.at) || Date.now(),
        util_pct: meanUtil(s.gpus),
        vram_used: vram ? vram.used : 0,
        vram_total: vram ? vram.total : 0,
      });
    }
    this.renderPopover(s);
    this.renderWarm();
  }

  /** Shows the last reply's speed. */
  setLastSpeed(stats) {
    setText(this.els.speed, tokPerSec(stats && stats.tokens_per_second));
  }

  renderPopover(s) {
    const items = popoverItems(s);
    // Rebuilt only when its words change (every tick would replace what is being read or
    // selected).
    const key = JSON.stringify(items);
    if (key === this.popoverKey) return;
    this.popoverKey = key;
    const pop = this.els.popoverBody;
    const nodes = [];
    let list = null;
    for (const it of items) {
      if (it.cls === "finding") {
        if (!list) {
          list = document.createElement("ul");
          list.className = "findings";
          nodes.push(list);
        }
        const li = document.createElement("li");
        li.textContent = it.text;
        li.title = it.code;
        list.append(li);
        continue;
      }
      const p = document.createElement("p");
      p.className = it.cls;
      p.textContent = it.text;
      nodes.push(p);
    }
    pop.replaceChildren(...nodes);
  }

  /**
   * The Warm button: "Warming…" from the click (or a warm the app started) until the warm
   * completes, the badge shows the model loaded, or it fails (with a message). A loaded model
   * ends it even while the load request is still open: Ollama lists a model in /api/ps while
   * it loads, so the badge can turn GPU before the warm returns.
   */
  renderWarm() {
    const s = this.snapshot;
    const kind = s && s.verdict && s.verdict.kind;
    const loaded = LOADED.has(kind);
    const down = kind === "down";
    const warming = !loaded && !down
      && (this.warmingLocal || Boolean(s && (s.warming || kind === "warming")));
    const w = this.els.warm;
    const disabled = warming || down;
    if (w.disabled !== disabled) w.disabled = disabled;
    setText(w, warming ? "Warming…" : "Warm");
    const state = warming ? "busy" : loaded ? "loaded" : "idle";
    if (w.dataset.state !== state) w.dataset.state = state;
    setAttr(w, "aria-busy", warming ? "true" : "false");
  }

  async warm() {
    this.warmingLocal = true;
    this.renderWarm();
    try {
      const r = await this.hooks.onWarm();
      if (r && typeof r.load_ms === "number") {
        this.els.warm.title = `${r.model || "model"} loaded in ${(r.load_ms / 1000).toFixed(1)} s`;
      }
    } catch (err) {
      this.els.warm.title = `Warm failed: ${err && err.message ? err.message : err}`;
      if (this.hooks.onWarmFailed) this.hooks.onWarmFailed(err);
    } finally {
      this.warmingLocal = false;
      this.renderWarm();
    }
  }
}

function nvmlReason(s) {
  if (s.nvml && s.nvml.status === "unavailable") {
    return `GPU details unavailable: ${s.nvml.reason || "NVML not found"}`;
  }
  return "";
}

/** The sentences of `text`, normalised for comparison. */
function sentences(text) {
  return String(text || "")
    .split(/(?<=[.!?])\s+|\n+/)
    .map((x) => x.trim().toLowerCase().replace(/[.!?]+$/, ""))
    .filter(Boolean);
}

/**
 * What the diagnosis popover says, in order: `{cls, text, code?}` items. Each sentence is said
 * once: a finding whose words the headline or advice already carry is left out, and internal
 * codes (`GPU_BACKEND_LOST`) are never shown, only kept as a tooltip for bug reports. Pure.
 */
export function popoverItems(s) {
  const items = [];
  const headline = s.headline || verdictBadge(s.verdict).text;
  items.push({ cls: "headline", text: headline });
  const down = Boolean(s.verdict && s.verdict.kind === "down");
  if (s.advice && s.advice !== headline) items.push({ cls: "advice", text: s.advice });
  const said = new Set([...sentences(headline), ...sentences(s.advice)]);
  const findings = down ? [] : topFindings(s, 3);
  for (const f of findings) {
    const title = String(f.title || "").trim();
    if (!title) continue;
    const own = sentences(title);
    if (own.length && own.every((x) => said.has(x) || [...said].some((y) => y.includes(x)))) continue;
    own.forEach((x) => said.add(x));
    items.push({ cls: "finding", text: title, code: f.code || "" });
  }
  if (!down && s.nvml && s.nvml.status === "unavailable") items.push({ cls: "note", text: nvmlReason(s) });
  const shown = items.some((i) => i.cls === "finding");
  if (!s.advice && !shown && s.verdict && s.verdict.kind === "gpu") {
    items.push({ cls: "note", text: "Nothing to fix: the model runs fully on the GPU." });
  }
  return items;
}

/** The most important findings over all diagnoses (lowest rank first). */
export function topFindings(s, n) {
  const all = [];
  for (const d of s.diagnoses || []) {
    for (const f of d.findings || []) all.push(f);
  }
  all.sort((a, b) => (a.rank ?? 99) - (b.rank ?? 99));
  return all.slice(0, n);
}
