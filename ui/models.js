// The model picker in the header (`list_models` + `chat_choice`): each pulled chat model with
// its size, quantisation, capability badges and where it would land on this machine ("fits on
// the GPU", "≈ 30 % on the CPU: …", "needs another model unloaded"), predicted before loading.
// From here the user picks the model that answers ("Use for chat"), the one the watchdog keeps
// warm ("Watch this one"), thinking per model, and (with `[[hosts]]`) the server chats go to.
// The choices live in the tray, so they hold for every chat window, and the tray keeps them
// (all but "Watch this one") in the history database for the next start.
// Everything is written with textContent; every control is a native button/checkbox/select,
// so the picker works from the keyboard (Tab, Space/Enter, Esc closes).

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
    // Where it is now: only all-GPU is good news.
    case "loaded": return fit.prediction.placement && fit.prediction.placement.kind === "gpu" ? "good" : "warn";
    default: return "unknown";
  }
}

function message(err) {
  return err && err.message ? err.message : String(err);
}

/** The `think` value as sent (`true`/`false`/level), or undefined for the server default. */
function thinkOf(choice, model) {
  return choice && choice.think ? choice.think[model] : undefined;
}

export class ModelPanel {
  /**
   * @param {{toggle:HTMLButtonElement, panel:HTMLElement, list:HTMLElement}} els
   * @param {{load:()=>Promise<any[]>, current:()=>string|null, onOpen:()=>void,
   *          choice?:()=>Promise<any>, choose?:(m:string|null)=>Promise<any>,
   *          think?:(m:string, t:string|null)=>Promise<any>, watch?:(m:string)=>Promise<any>,
   *          host?:(h:string|null)=>Promise<any>, onChoice?:(c:any)=>void}} hooks
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.choice = null;
    this.note = el("p", "note model-note");
    this.note.setAttribute("role", "status");
    this.note.hidden = true;
    this.hostRow = el("div", "model-hosts");
    this.hostRow.hidden = true;
    els.panel.prepend(this.hostRow, this.note);
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
    // Keyboard users land on the model in use.
    const here = this.els.list.querySelector('li[aria-current="true"] button') || this.els.list.querySelector("button");
    if (here) here.focus();
  }

  /** Reads the tray's choices (the model that answers, thinking, host) and shows them. */
  async loadChoice() {
    if (!this.hooks.choice) return null;
    try {
      this.setChoice(await this.hooks.choice());
    } catch (_) {
      // An older tray without the picker commands: the list still works read-only.
    }
    return this.choice;
  }

  setChoice(choice) {
    if (!choice || typeof choice !== "object") return;
    this.choice = choice;
    const t = this.els.toggle;
    // The header says which model answers when it is not the watched one.
    t.textContent = choice.chosen && typeof choice.model === "string" ? choice.model : "Models";
    t.title = `Chat model: ${choice.model}${choice.host ? ` on ${choice.host}` : ""}. Models on this machine, and whether each fits on the GPU`;
    if (this.hooks.onChoice) this.hooks.onChoice(choice);
    // Why a choice went away on its own (the chosen model is gone from the server): the tray
    // sends it once.
    if (typeof choice.note === "string" && choice.note) this.say(choice.note);
  }

  say(text) {
    this.note.textContent = text || "";
    this.note.hidden = !text;
  }

  async act(what, fn) {
    try {
      const choice = await fn();
      this.say("");
      this.setChoice(choice);
      await this.refresh(true);
      return true;
    } catch (err) {
      this.say(`${what}: ${message(err)}`);
      return false;
    }
  }

  renderHosts() {
    const c = this.choice;
    const hosts = c && Array.isArray(c.hosts) ? c.hosts : [];
    this.hostRow.hidden = hosts.length === 0 || !this.hooks.host;
    if (this.hostRow.hidden) return;
    const label = el("label", null, "Server ");
    const select = el("select", "model-host");
    select.id = "model-host";
    label.htmlFor = select.id;
    const local = el("option", null, "This machine");
    local.value = "";
    select.append(local);
    for (const h of hosts) {
      const o = el("option", null, `${h.name} (${h.url})`);
      o.value = h.name;
      select.append(o);
    }
    select.value = c.host || "";
    select.addEventListener("change", () => {
      this.act("Could not switch servers", () => this.hooks.host(select.value || null));
    });
    this.hostRow.replaceChildren(label, select);
  }

  thinkControl(m) {
    if (!this.hooks.think || !m.think || m.think === "none") return null;
    const box = el("span", "model-think");
    const sent = thinkOf(this.choice, m.name);
    if (m.think === "levels_only") {
      const id = `think-${m.name.replace(/[^a-z0-9]/gi, "-")}`;
      const label = el("label", null, "Thinking ");
      label.htmlFor = id;
      const select = el("select", "model-think-level");
      select.id = id;
      for (const level of ["low", "medium", "high"]) {
        const o = el("option", null, level);
        o.value = level;
        select.append(o);
      }
      // Ollama's default for a model that takes levels is `true`, which gpt-oss reads as medium.
      select.value = typeof sent === "string" ? sent : "medium";
      select.addEventListener("change", () => {
        this.act("Could not set thinking", () => this.hooks.think(m.name, select.value));
      });
      box.append(label, select, el("span", "model-think-note", "cannot be turned off: low is the least"));
    } else {
      const label = el("label");
      const check = el("input", "model-think-toggle");
      check.type = "checkbox";
      check.checked = sent !== false;
      check.addEventListener("change", () => {
        this.act("Could not set thinking", () => this.hooks.think(m.name, check.checked ? "on" : "off"));
      });
      label.append(check, document.createTextNode(" Thinking"));
      box.append(label);
    }
    return box;
  }

  async refresh(keepNote) {
    const { list } = this.els;
    list.setAttribute("aria-busy", "true");
    if (!keepNote) this.say("");
    let models;
    try {
      // The list first: it is what tells the tray that a chosen model is gone, and the
      // choice read after it then says so.
      models = await this.hooks.load();
      await this.loadChoice();
    } catch (err) {
      list.replaceChildren(el("li", "note", `Could not list the models: ${message(err)}`));
      list.setAttribute("aria-busy", "false");
      return;
    }
    this.renderHosts();
    const c = this.choice;
    const current = c && typeof c.model === "string" ? c.model : this.hooks.current();
    const watched = c && typeof c.watched === "string" ? c.watched : this.hooks.current();
    const remote = Boolean(c && c.host);
    const rows = [];
    for (const m of Array.isArray(models) ? models : []) {
      if (!m || typeof m.name !== "string") continue;
      const li = el("li", "model-row");
      li.dataset.model = m.name;
      if (m.name === current) li.setAttribute("aria-current", "true");
      const head = el("div", "model-head");
      head.append(el("span", "model-name", m.name));
      if (m.name === current) head.append(el("span", "model-badge current", "in use"));
      if (m.name === watched && !remote) head.append(el("span", "model-badge watched", "watched"));
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
      let summary;
      if (fit && typeof fit.summary === "string") summary = fit.summary;
      else if (m.show_error) summary = `no prediction: ${m.show_error}`;
      else if (remote) summary = "no prediction: this machine cannot see that server's GPU";
      else summary = "no prediction";
      const p = el("div", "model-fit", summary);
      p.dataset.tone = fitTone(fit);
      if (fit && typeof fit.num_ctx === "number") p.title = `at a context of ${fit.num_ctx} tokens`;
      li.append(head, facts, p);
      const actions = el("div", "model-actions");
      if (this.hooks.choose) {
        const use = el("button", "small model-use", m.name === current ? "Chatting with this" : "Use for chat");
        use.type = "button";
        use.setAttribute("aria-pressed", m.name === current ? "true" : "false");
        use.setAttribute("aria-label", `Use ${m.name} for chat`);
        // Back to the default is choosing the watched model.
        use.addEventListener("click", () => {
          if (m.name === current) return;
          this.act(`Could not use ${m.name}`, () => this.hooks.choose(m.name === watched && !remote ? null : m.name));
        });
        actions.append(use);
      }
      if (this.hooks.watch && !remote && m.name !== watched) {
        const w = el("button", "small ghost model-watch", "Watch this one");
        w.type = "button";
        w.title = `Keep ${m.name} warm instead of ${watched}, until Yollayah restarts (the config's [model] name decides then)`;
        w.addEventListener("click", () => {
          this.act(`Could not watch ${m.name}`, () => this.hooks.watch(m.name)).then((ok) => {
            if (ok) this.say(`Now keeping ${m.name} warm, until Yollayah restarts. To keep it for good, set [model] name = "${m.name}" in the config.`);
          });
        });
        actions.append(w);
      }
      const think = this.thinkControl(m);
      if (think) actions.append(think);
      if (actions.childElementCount) li.append(actions);
      rows.push(li);
    }
    if (rows.length === 0) rows.push(el("li", "note", "No chat models are pulled yet."));
    // Re-rendering must not drop keyboard focus: put it back on the same control of the same row.
    const active = document.activeElement;
    const row = active && active.closest ? active.closest("li.model-row") : null;
    const where = row && list.contains(row) ? { model: row.dataset.model, cls: active.className } : null;
    list.replaceChildren(...rows);
    list.setAttribute("aria-busy", "false");
    // A render count, so a test can wait for the render an action caused.
    list.dataset.renders = String(Number(list.dataset.renders || 0) + 1);
    if (where) {
      const again = [...list.querySelectorAll("li.model-row")].find((li) => li.dataset.model === where.model);
      const target = again && (again.querySelector(`[class="${where.cls}"]`) || again.querySelector("button, input, select"));
      if (target) target.focus();
    }
  }
}
