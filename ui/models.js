// The model list in the header (`list_models`): each pulled chat model with its size,
// quantisation, capability badges and where it would land on this machine ("fits on the GPU",
// "≈ 30 % on the CPU: …", "needs another model unloaded"), predicted before loading.
// Read-only for now: the model is chosen in the config. Everything is written with textContent.

const GIB = 1024 ** 3;

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = text;
  return e;
}

function size(bytes) {
  if (typeof bytes !== "number" || bytes <= 0) return "";
  return bytes >= GIB ? `${(bytes / GIB).toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;
}

/** `good` / `warn` / `info` / `unknown` for a `FitPrediction` (tagged by `kind`). */
function fitTone(fit) {
  const kind = fit && fit.prediction && fit.prediction.kind;
  switch (kind) {
    case "fits_gpu": return "good";
    case "spills": return "warn";
    case "needs_unload": return "info";
    case "loaded": return "good";
    default: return "unknown";
  }
}

export class ModelPanel {
  /**
   * @param {{toggle:HTMLButtonElement, panel:HTMLElement, list:HTMLElement}} els
   * @param {{load:()=>Promise<any[]>, current:()=>string|null, onOpen:()=>void}} hooks
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    els.toggle.addEventListener("click", () => this.setOpen(this.els.panel.hidden));
  }

  isOpen() {
    return !this.els.panel.hidden;
  }

  async setOpen(open) {
    this.els.panel.hidden = !open;
    this.els.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open) return;
    this.hooks.onOpen();
    await this.refresh();
  }

  async refresh() {
    const { list } = this.els;
    list.setAttribute("aria-busy", "true");
    let models;
    try {
      models = await this.hooks.load();
    } catch (err) {
      list.replaceChildren(el("li", "note", `Could not list the models: ${err && err.message ? err.message : err}`));
      list.setAttribute("aria-busy", "false");
      return;
    }
    const rows = [];
    const current = this.hooks.current();
    for (const m of Array.isArray(models) ? models : []) {
      if (!m || typeof m.name !== "string") continue;
      const li = el("li", "model-row");
      li.dataset.model = m.name;
      if (m.name === current) li.setAttribute("aria-current", "true");
      const head = el("div", "model-head");
      head.append(el("span", "model-name", m.name));
      if (m.name === current) head.append(el("span", "model-badge current", "in use"));
      head.append(el("span", "model-size", size(m.size)));
      const facts = el("div", "model-facts");
      const bits = [m.parameter_size, m.quantization].filter((x) => typeof x === "string" && x);
      facts.append(el("span", null, bits.join(" · ")));
      if (m.think && m.think !== "none") facts.append(el("span", "model-badge", "thinking"));
      if (m.vision) facts.append(el("span", "model-badge", "vision"));
      if (Array.isArray(m.capabilities) && m.capabilities.includes("tools")) {
        facts.append(el("span", "model-badge", "tools"));
      }
      const fit = m.fit;
      const summary = fit && typeof fit.summary === "string"
        ? fit.summary
        : (m.show_error ? `no prediction: ${m.show_error}` : "no prediction");
      const p = el("div", "model-fit", summary);
      p.dataset.tone = fitTone(fit);
      if (fit && typeof fit.num_ctx === "number") p.title = `at a context of ${fit.num_ctx} tokens`;
      li.append(head, facts, p);
      rows.push(li);
    }
    if (rows.length === 0) rows.push(el("li", "note", "No chat models are pulled yet."));
    list.replaceChildren(...rows);
    list.setAttribute("aria-busy", "false");
  }
}
