// The status strip: model, placement badge (+ diagnosis popover), VRAM, GPU sparkline, last
// reply speed and the Warm button. It only renders snapshots; it never decides anything.

import { gib, meanUtil, tokPerSec, verdictBadge, vramTotals } from "./format.js";
import { Sparkline } from "./sparkline.js";

export class StatusStrip {
  /**
   * @param {Record<string, HTMLElement>} els elements from index.html
   * @param {{onWarm:()=>Promise<any>}} hooks
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.snapshot = null;
    this.warmingLocal = false;
    this.pinned = false;
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

  /** Renders a Snapshot. */
  update(s) {
    this.snapshot = s;
    const { els } = this;
    els.model.textContent = s.model || "no model";
    els.model.title = s.url ? `${s.model || ""} at ${s.url}` : "";
    const badge = verdictBadge(s.verdict);
    els.badgeText.textContent = badge.text;
    els.badge.dataset.tone = badge.tone;
    els.badge.setAttribute("aria-label", `Placement: ${badge.text}. Show diagnosis`);

    const vram = vramTotals(s.gpus);
    els.vram.textContent = vram ? `${gib(vram.used)}/${gib(vram.total)} GiB` : "no GPU";
    els.vram.title = vram ? "VRAM used / total (all GPUs)" : nvmlReason(s);

    if (vram || s.gpus) {
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
    this.els.speed.textContent = tokPerSec(stats && stats.tokens_per_second);
  }

  renderPopover(s) {
    const pop = this.els.popoverBody;
    pop.replaceChildren();
    const add = (tag, cls, text) => {
      const e = document.createElement(tag);
      if (cls) e.className = cls;
      e.textContent = text;
      pop.append(e);
      return e;
    };
    const headline = s.headline || verdictBadge(s.verdict).text;
    add("p", "headline", headline);
    if (s.ollama && s.ollama.state === "down") {
      add("p", "reason", `Ollama is not reachable: ${s.ollama.reason || "no answer"}`);
    }
    if (s.advice && s.advice !== headline) add("p", "advice", s.advice);
    // The headline and advice already say the top finding: list only what they do not, in
    // words (the internal code stays available as a tooltip for bug reports).
    const said = `${headline}\n${s.advice || ""}`;
    const findings = topFindings(s, 3).filter((f) => f.title && !said.includes(f.title.trim()));
    if (findings.length) {
      const ul = document.createElement("ul");
      ul.className = "findings";
      for (const f of findings) {
        const li = document.createElement("li");
        li.textContent = f.title;
        li.title = f.code;
        ul.append(li);
      }
      pop.append(ul);
    }
    if (s.nvml && s.nvml.status === "unavailable") add("p", "note", nvmlReason(s));
    if (!s.advice && !findings.length && s.verdict && s.verdict.kind === "gpu") {
      add("p", "note", "Nothing to fix: the model runs fully on the GPU.");
    }
  }

  renderWarm() {
    const s = this.snapshot;
    const warming = this.warmingLocal || (s && (s.warming || (s.verdict && s.verdict.kind === "warming")));
    const down = s && s.verdict && s.verdict.kind === "down";
    this.els.warm.disabled = Boolean(warming || down);
    this.els.warm.textContent = warming ? "Warming…" : "Warm";
    this.els.warm.setAttribute("aria-busy", warming ? "true" : "false");
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

/** The most important findings over all diagnoses (lowest rank first). */
export function topFindings(s, n) {
  const all = [];
  for (const d of s.diagnoses || []) {
    for (const f of d.findings || []) all.push(f);
  }
  all.sort((a, b) => (a.rank ?? 99) - (b.rank ?? 99));
  return all.slice(0, n);
}
