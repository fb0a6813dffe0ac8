// The collapsible list of past conversations.

import { relativeTime } from "./format.js";

export class ConversationPanel {
  /**
   * @param {{toggle:HTMLButtonElement, panel:HTMLElement, list:HTMLElement}} els
   * @param {{load:()=>Promise<any[]>, open:(id:number)=>void}} hooks
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.currentId = null;
    els.toggle.addEventListener("click", () => this.setOpen(this.els.panel.hidden));
  }

  isOpen() {
    return !this.els.panel.hidden;
  }

  async setOpen(open) {
    this.els.panel.hidden = !open;
    this.els.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open) return;
    await this.refresh();
    const first = this.els.list.querySelector("button[aria-current='true']")
      || this.els.list.querySelector("button");
    if (first) first.focus();
  }

  setCurrent(id) {
    this.currentId = id;
    for (const b of this.els.list.querySelectorAll("button[data-id]")) {
      b.setAttribute("aria-current", Number(b.dataset.id) === id ? "true" : "false");
    }
  }

  async refresh() {
    const { list } = this.els;
    let items;
    try {
      items = await this.hooks.load();
    } catch (err) {
      const p = document.createElement("p");
      p.className = "note";
      p.textContent = `Could not load conversations: ${err && err.message ? err.message : err}`;
      list.replaceChildren(p);
      return;
    }
    list.replaceChildren();
    if (!items.length) {
      const p = document.createElement("p");
      p.className = "note";
      p.textContent = "No conversations yet.";
      list.append(p);
      return;
    }
    for (const c of items) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.id = String(c.id);
      b.setAttribute("aria-current", c.id === this.currentId ? "true" : "false");
      const title = document.createElement("span");
      title.className = "title";
      title.textContent = c.title || "Untitled";
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = relativeTime(c.updated_at);
      const preview = document.createElement("span");
      preview.className = "preview";
      preview.textContent = c.preview || "";
      b.append(title, when, preview);
      b.title = `${c.message_count ?? 0} messages · ${c.model || ""}`;
      b.addEventListener("click", () => {
        this.setOpen(false);
        this.hooks.open(c.id);
      });
      li.append(b);
      list.append(li);
    }
  }
}
