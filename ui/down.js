// The "Ollama is not running" panel: shown while the snapshot's verdict is `down`, it says so in
// plain words, how to start Ollama (on which machine, for a remote server) and offers Retry,
// which asks the app to check now instead of at the next tick. The raw error chain of the
// failed connection stays out of sight (in the status line's tooltip, for bug reports).

import { setText } from "./dom.js";

/** Host (and port) of a URL, or "" when it does not parse. */
function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return "";
  }
}

function hostnameOf(url) {
  try {
    return new URL(url).hostname;
  } catch {
    return "";
  }
}

/**
 * What to tell the user about a down Ollama, as `{title, paragraphs}`; each paragraph is a
 * list of `{text}` or `{code}` pieces (commands are shown as code). Pure: tests call it.
 */
export function downHelp(s) {
  const url = (s && s.url) || "";
  const host = hostOf(url);
  const remote = Boolean(s && s.scope && s.scope.kind && s.scope.kind !== "local");
  if (!remote) {
    return {
      title: "Ollama is not running",
      paragraphs: [
        [{ text: host ? `Nothing answers at ${host} on this computer.` : "Nothing answers on this computer." }],
        [
          { text: "Start it in a terminal with " },
          { code: "ollama serve" },
          { text: ", or, where Ollama is installed as a service, with " },
          { code: "sudo systemctl start ollama" },
          { text: "." },
        ],
        [{ text: "Sending is off until Ollama answers. Yollayah notices on its own when it is back." }],
      ],
    };
  }
  const name = hostnameOf(url) || host || "the server";
  return {
    title: `Ollama on ${name} is not answering`,
    paragraphs: [
      [{ text: host ? `Nothing answers at ${host}.` : "The Ollama server does not answer." }],
      [
        { text: `Start Ollama on ${name}: ` },
        { code: "ollama serve" },
        { text: ", or " },
        { code: "sudo systemctl start ollama" },
        { text: " where it runs as a service." },
      ],
      [
        { text: "To be reached from other computers it must listen on the network: set " },
        { code: "OLLAMA_HOST=0.0.0.0" },
        { text: " in its environment." },
      ],
    ],
  };
}

export class DownPanel {
  /**
   * @param {{panel:HTMLElement, title:HTMLElement, body:HTMLElement, retry:HTMLButtonElement,
   *          status:HTMLElement}} els
   * @param {{onRetry:()=>Promise<any>}} hooks `onRetry` resolves to the fresh snapshot
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.key = "";
    this.checking = false;
    els.retry.addEventListener("click", () => this.retry());
  }

  isShown() {
    return !this.els.panel.hidden;
  }

  /** Shows or hides the panel for snapshot `s`. */
  update(s) {
    const down = Boolean(s && s.verdict && s.verdict.kind === "down");
    if (this.els.panel.hidden === down) this.els.panel.hidden = !down;
    if (!down) {
      this.key = "";
      setText(this.els.status, "");
      return;
    }
    const help = downHelp(s);
    // Rebuilt only when the words change: a tick must not replace the Retry button's
    // surroundings under the pointer (see dom.js).
    const key = JSON.stringify(help);
    if (key !== this.key) {
      this.key = key;
      setText(this.els.title, help.title);
      const ps = help.paragraphs.map((pieces) => {
        const p = document.createElement("p");
        for (const piece of pieces) {
          if (piece.code != null) {
            const c = document.createElement("code");
            c.textContent = piece.code;
            p.append(c);
          } else {
            p.append(document.createTextNode(piece.text));
          }
        }
        return p;
      });
      this.els.body.replaceChildren(...ps);
    }
    const reason = s.ollama && s.ollama.reason;
    if (reason && this.els.status.title !== reason) this.els.status.title = reason;
  }

  /** Asks the app to check Ollama now. */
  async retry() {
    if (this.checking) return;
    this.checking = true;
    const { retry, status } = this.els;
    retry.disabled = true;
    setText(retry, "Checking…");
    setText(status, "");
    try {
      const s = await this.hooks.onRetry();
      if (s && s.verdict && s.verdict.kind === "down") {
        const at = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
        setText(status, `Still not answering (checked ${at}).`);
      }
    } catch (err) {
      setText(status, `Could not check: ${err && err.message ? err.message : err}`);
    } finally {
      this.checking = false;
      retry.disabled = false;
      setText(retry, "Retry");
    }
  }
}
