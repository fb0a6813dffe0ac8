// "Pull a model…" at the end of the model list: a name field, then a progress bar with the
// bytes done and in all, the rate, the time left and the layer being downloaded, a Cancel
// button, and the outcome (errors in Ollama's own words). The pull runs in the tray
// (`pull_model`), not in this window: it goes on when the window closes, and a reopened window
// picks it up (`pull_state`). Events (`yollayah://pull`) come at most 10 a second. A chip next
// to the Models button shows the percentage while the list is closed. Text only, no HTML.

const KIB = 1024;
const MIB = KIB ** 2;
const GIB = KIB ** 3;

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text != null) e.textContent = text;
  return e;
}

/** "523.1 MiB", "1.2 GiB", "12 KiB". */
export function bytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return "–";
  if (n >= GIB) return `${(n / GIB).toFixed(1)} GiB`;
  if (n >= MIB) return `${(n / MIB).toFixed(1)} MiB`;
  if (n >= KIB) return `${Math.round(n / KIB)} KiB`;
  return `${n} B`;
}

/** "8 s", "3 min 20 s", "1 h 05 min". */
export function duration(secs) {
  if (typeof secs !== "number" || !Number.isFinite(secs) || secs < 0) return "";
  const s = Math.round(secs);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

function shortDigest(d) {
  const hex = typeof d === "string" ? d.replace(/^sha256:/, "") : "";
  return hex.slice(0, 12);
}

export class PullPanel {
  /**
   * @param {{slot:HTMLElement, toggle:HTMLElement}} els  `slot`: where the section goes (after
   *   the model list); `toggle`: the Models button, which the chip follows.
   * @param {{start:(name:string)=>Promise<{id:number,name:string}>, cancel:(id:number)=>Promise<any>,
   *   state:()=>Promise<any>, onPulled:(name:string)=>void, openList:()=>void}} hooks
   */
  constructor(els, hooks) {
    this.hooks = hooks;
    this.id = null;
    this.running = false;
    this.cancelling = null;

    const box = el("div", "pull");
    this.open = el("button", "ghost pull-open", "Pull a model…");
    this.open.type = "button";
    this.open.id = "pull-open";
    this.open.setAttribute("aria-expanded", "false");

    this.form = el("form", "pull-form");
    this.form.id = "pull-form";
    this.form.hidden = true;
    this.form.autocomplete = "off";
    const label = el("label", "visually-hidden", "Name of the model to pull");
    label.htmlFor = "pull-name";
    this.input = el("input");
    this.input.id = "pull-name";
    this.input.type = "text";
    this.input.placeholder = "e.g. qwen3:8b";
    this.input.spellcheck = false;
    this.input.setAttribute("autocapitalize", "off");
    const go = el("button", "primary small", "Pull");
    go.type = "submit";
    go.id = "pull-go";
    this.form.append(label, this.input, go);

    this.progress = el("div", "pull-progress");
    this.progress.id = "pull-progress";
    this.progress.hidden = true;
    const head = el("div", "pull-head");
    this.title = el("span", "pull-title");
    this.cancelBtn = el("button", "small pull-cancel", "Cancel");
    this.cancelBtn.type = "button";
    this.cancelBtn.id = "pull-cancel";
    head.append(this.title, this.cancelBtn);
    this.bar = el("progress", "pull-bar");
    this.bar.id = "pull-bar";
    this.bar.max = 1;
    this.figures = el("div", "pull-figures");
    this.figures.id = "pull-figures";
    this.phase = el("div", "pull-phase");
    this.phase.id = "pull-phase";
    this.progress.append(head, this.bar, this.figures, this.phase);

    this.result = el("p", "pull-result");
    this.result.id = "pull-result";
    this.result.hidden = true;

    this.box = box;
    box.append(this.open, this.form, this.progress, this.result);
    els.slot.replaceChildren(box);

    this.chip = el("button", "ghost small pull-chip");
    this.chip.type = "button";
    this.chip.id = "pull-chip";
    this.chip.hidden = true;
    this.chip.title = "A model is being pulled: show its progress";
    els.toggle.after(this.chip);

    this.open.addEventListener("click", () => this.showForm(this.form.hidden));
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.start();
    });
    this.cancelBtn.addEventListener("click", () => this.cancel());
    this.chip.addEventListener("click", () => this.hooks.openList());
  }

  /** Scrolls the section (bar or outcome) into the list's view. */
  reveal() {
    if (typeof this.box.scrollIntoView === "function") this.box.scrollIntoView({ block: "nearest" });
  }

  showForm(show) {
    this.form.hidden = !show;
    this.open.setAttribute("aria-expanded", show ? "true" : "false");
    if (show) this.input.focus();
  }

  async start() {
    const name = this.input.value.trim();
    if (!name || this.running) return;
    this.showResult(null);
    try {
      const r = await this.hooks.start(name);
      this.id = r.id;
      this.running = true;
      this.input.value = "";
      this.showForm(false);
      this.renderProgress({ kind: "progress", id: r.id, name: r.name, status: "starting", total: 0, completed: 0 });
      this.reveal();
    } catch (err) {
      this.showResult("error", `Could not pull ${name}`, err && err.message ? err.message : String(err));
    }
  }

  async cancel() {
    if (this.id == null) return;
    // Progress still arriving until the outcome must not offer Cancel again.
    this.cancelling = this.id;
    this.renderCancel();
    try {
      await this.hooks.cancel(this.id);
    } catch (err) {
      this.cancelling = null;
      this.renderCancel();
      this.showResult("error", "Could not cancel", err && err.message ? err.message : String(err));
    }
  }

  /** The window (re)opened: follow a pull already running, or show how the last one ended. */
  async resume() {
    let s;
    try {
      s = await this.hooks.state();
    } catch {
      return;
    }
    if (s && typeof s === "object") this.onEvent(s);
  }

  /** A `yollayah://pull` payload. */
  onEvent(ev) {
    if (!ev || typeof ev !== "object" || typeof ev.kind !== "string") return;
    // An older pull's late event must not overwrite a newer one.
    if (typeof ev.id === "number" && this.id != null && ev.id < this.id) return;
    this.id = ev.id;
    const name = typeof ev.name === "string" ? ev.name : "the model";
    switch (ev.kind) {
      case "progress":
        this.running = true;
        this.renderProgress(ev);
        break;
      case "done":
        this.finish();
        this.showResult("good", `Pulled ${name}`, ev.total ? bytes(ev.total) : "");
        this.hooks.onPulled(name);
        break;
      case "failed":
        this.finish();
        this.showResult("error", `Could not pull ${name}`, typeof ev.error === "string" ? ev.error : "");
        this.reveal();
        break;
      case "cancelled":
        this.finish();
        this.showResult("info", `Pull of ${name} cancelled`, "nothing was added");
        break;
      default:
        break;
    }
  }

  renderProgress(ev) {
    this.progress.hidden = false;
    this.open.hidden = true;
    this.form.hidden = true;
    this.result.hidden = true;
    this.renderCancel();
    this.title.textContent = `Pulling ${ev.name}`;
    const total = Number(ev.total) || 0;
    const done = Number(ev.completed) || 0;
    if (total > 0) {
      this.bar.max = total;
      this.bar.value = Math.min(done, total);
    } else {
      // Indeterminate until the manifest's layers are known.
      this.bar.removeAttribute("value");
    }
    const pct = total > 0 ? Math.floor((done / total) * 100) : null;
    this.progress.dataset.completed = String(done);
    this.progress.dataset.total = String(total);
    const parts = [total > 0 ? `${bytes(done)} / ${bytes(total)}` : "waiting for the manifest"];
    if (pct != null) parts.push(`${pct} %`);
    if (typeof ev.bytes_per_second === "number" && ev.bytes_per_second > 0) {
      parts.push(`${bytes(ev.bytes_per_second)}/s`);
    }
    if (typeof ev.eta_secs === "number" && total > done) {
      const left = duration(ev.eta_secs);
      if (left) parts.push(`${left} left`);
    }
    this.figures.textContent = parts.join(" · ");
    // Ollama's phase, and the layer it is on with that layer's own bytes.
    const layer = ev.layer;
    if (layer && typeof layer === "object" && Number(layer.total) > 0) {
      this.phase.textContent = `layer ${shortDigest(layer.digest)}: ${bytes(Number(layer.completed) || 0)} / ${bytes(Number(layer.total))}`;
    } else {
      this.phase.textContent = typeof ev.status === "string" ? ev.status : "";
    }
    this.chip.hidden = false;
    this.chip.textContent = pct != null ? `↓ ${pct} %` : "↓ …";
  }

  renderCancel() {
    const on = this.cancelling != null && this.cancelling === this.id;
    this.cancelBtn.disabled = on;
    this.cancelBtn.textContent = on ? "Cancelling…" : "Cancel";
  }

  finish() {
    this.cancelling = null;
    this.running = false;
    this.progress.hidden = true;
    this.open.hidden = false;
    this.chip.hidden = true;
  }

  /** `tone`: good / error / info; null hides it. The detail is shown as it came. */
  showResult(tone, head, detail) {
    if (tone == null) {
      this.result.hidden = true;
      return;
    }
    this.result.dataset.tone = tone;
    this.result.setAttribute("role", tone === "error" ? "alert" : "status");
    const strong = el("strong", "pull-result-head", head);
    const parts = [strong];
    if (detail) parts.push(el("span", "pull-result-detail", detail));
    this.result.replaceChildren(...parts);
    this.result.hidden = false;
  }
}
