// A tiny SVG sparkline of GPU utilisation and VRAM use over the last minutes, built with DOM
// APIs (no innerHTML, no inline styles; colours come from style.css classes).

const SVG_NS = "http://www.w3.org/2000/svg";
const WINDOW_MS = 5 * 60 * 1000;
const W = 80;
const H = 20;

export class Sparkline {
  constructor(svg) {
    this.svg = svg;
    this.samples = [];
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("preserveAspectRatio", "none");
    this.vram = document.createElementNS(SVG_NS, "polyline");
    this.vram.setAttribute("class", "spark-vram");
    this.util = document.createElementNS(SVG_NS, "polyline");
    this.util.setAttribute("class", "spark-util");
    const title = document.createElementNS(SVG_NS, "title");
    this.title = title;
    svg.replaceChildren(title, this.vram, this.util);
  }

  reset(samples) {
    this.samples = Array.isArray(samples) ? samples.filter((s) => typeof s.at_ms === "number") : [];
    this.samples.sort((a, b) => a.at_ms - b.at_ms);
    this.draw();
  }

  push(sample) {
    const last = this.samples[this.samples.length - 1];
    if (last && sample.at_ms <= last.at_ms) return; // same snapshot seen twice
    this.samples.push(sample);
    this.draw();
  }

  draw() {
    const s = this.samples;
    if (!s.length) {
      this.util.setAttribute("points", "");
      this.vram.setAttribute("points", "");
      this.title.textContent = "No GPU samples yet";
      return;
    }
    const end = s[s.length - 1].at_ms;
    const start = end - WINDOW_MS;
    while (s.length > 2 && s[0].at_ms < start) s.shift();
    const x = (t) => (((t - start) / WINDOW_MS) * W).toFixed(1);
    const y = (frac) => (H - 1 - Math.max(0, Math.min(1, frac)) * (H - 2)).toFixed(1);
    const util = [];
    const vram = [];
    for (const p of s) {
      if (typeof p.util_pct === "number") util.push(`${x(p.at_ms)},${y(p.util_pct / 100)}`);
      if (p.vram_total > 0) vram.push(`${x(p.at_ms)},${y(p.vram_used / p.vram_total)}`);
    }
    this.util.setAttribute("points", util.join(" "));
    this.vram.setAttribute("points", vram.join(" "));
    const last = s[s.length - 1];
    const u = typeof last.util_pct === "number" ? `${Math.round(last.util_pct)}% GPU` : "GPU n/a";
    const v = last.vram_total > 0 ? `${Math.round((100 * last.vram_used) / last.vram_total)}% VRAM` : "";
    const label = `Last 5 minutes: now ${u}${v ? `, ${v}` : ""}`;
    this.title.textContent = label;
    this.svg.setAttribute("aria-label", label);
  }
}
