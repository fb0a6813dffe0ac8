// Images in the composer: paste (a clipboard image), drag-and-drop, or the attach button's file
// picker (PNG, JPEG, WebP, GIF first frame). Each file goes once to the app (`attach_image`,
// base64), which checks and prepares it in Rust (decoded under limits, downscaled,
// re-encoded) and keeps it; the page gets back an id and a small thumbnail as a `data:` URL
// made in Rust. The page never shows a full-size image or any remote URL (the CSP allows
// `data:` images only), and `send_message` names the ids.
//
// Refusals are said in the composer's note, in words: a model that cannot see images (naming
// a vision model the user has, from `image_support`), too many images, a file too large or not
// an image (the app's message, which names the file).

import { Cmd, errorText, invoke } from "./ipc.js";

/** Only thumbnails made by the app are shown: `data:` image URLs, nothing else. */
export function isThumb(src) {
  return typeof src === "string" && /^data:image\/(jpeg|png);base64,[A-Za-z0-9+/=]+$/.test(src);
}

function thumbImg(src, alt) {
  const img = document.createElement("img");
  img.alt = alt;
  img.decoding = "async";
  if (isThumb(src)) img.src = src;
  return img;
}

/** The images of a message (sent now or loaded from history), as a row of thumbnails. */
export function messageImages(images) {
  const row = document.createElement("div");
  row.className = "msg-images";
  for (const im of images || []) {
    const size = im.width && im.height ? `${im.width} × ${im.height}` : "";
    const img = thumbImg(im.thumb, im.name ? `Image ${im.name} ${size}`.trim() : `Image ${size}`.trim());
    img.className = "msg-thumb";
    if (size) img.title = size;
    row.append(img);
  }
  return row;
}

/** Reads a File as base64 (without the `data:` prefix). */
function readBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => {
      const s = String(r.result || "");
      const comma = s.indexOf(",");
      resolve(comma >= 0 ? s.slice(comma + 1) : "");
    };
    r.onerror = () => reject(r.error || new Error("could not read the file"));
    r.readAsDataURL(file);
  });
}

function mib(bytes) {
  return `${(bytes / 1048576).toFixed(bytes < 10 * 1048576 ? 1 : 0)} MiB`;
}

/** Image files of a paste or drop (`DataTransfer`), or [] when it carries none. */
function filesOf(dt) {
  if (!dt) return [];
  const files = [];
  if (dt.files && dt.files.length) {
    for (const f of dt.files) files.push(f);
  } else if (dt.items) {
    for (const it of dt.items) {
      if (it.kind === "file") {
        const f = it.getAsFile();
        if (f) files.push(f);
      }
    }
  }
  return files;
}

export class ImageComposer {
  /**
   * @param {{composer:HTMLElement, input:HTMLTextAreaElement, strip:HTMLElement,
   *          button:HTMLButtonElement, file:HTMLInputElement, note:HTMLElement}} els
   * @param {{onChange:()=>void}} hooks
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    /** @type {{key:number, id:number|null, name:string, thumb:string|null, width:number, height:number, chip:HTMLElement}[]} */
    this.items = [];
    this.support = null;
    this.nextKey = 1;
    this.dragDepth = 0;

    els.input.addEventListener("paste", (e) => {
      const files = filesOf(e.clipboardData);
      if (!files.length) return; // plain text: the textarea takes it
      e.preventDefault();
      this.attach(files);
    });
    // Dropping anywhere in the window attaches (the webview would otherwise navigate to it).
    document.addEventListener("dragenter", (e) => {
      if (!this.isFileDrag(e)) return;
      e.preventDefault();
      this.dragDepth += 1;
      els.composer.classList.add("drop-target");
    });
    document.addEventListener("dragover", (e) => {
      if (!this.isFileDrag(e)) return;
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    });
    document.addEventListener("dragleave", (e) => {
      if (!this.isFileDrag(e)) return;
      this.dragDepth = Math.max(0, this.dragDepth - 1);
      if (this.dragDepth === 0) els.composer.classList.remove("drop-target");
    });
    document.addEventListener("drop", (e) => {
      this.dragDepth = 0;
      els.composer.classList.remove("drop-target");
      const files = filesOf(e.dataTransfer);
      if (!files.length) return;
      e.preventDefault();
      this.attach(files);
    });
    els.button.addEventListener("click", () => {
      // The picker must open within the click (a file dialog needs the user's gesture), so
      // this uses what is known; attaching checks again.
      if (this.support && !this.support.vision) {
        this.say(this.support.message || "This model cannot see images.");
        this.refresh();
        return;
      }
      els.file.click();
    });
    els.file.addEventListener("change", () => {
      const files = [...(els.file.files || [])];
      els.file.value = "";
      if (files.length) this.attach(files);
    });
    window.addEventListener("focus", () => this.refresh());
  }

  isFileDrag(e) {
    const types = e.dataTransfer && e.dataTransfer.types;
    return !!types && [...types].includes("Files");
  }

  /** Asks the app whether the model sees images, and its limits. */
  async refresh() {
    try {
      this.support = await invoke(Cmd.imageSupport);
      this.els.button.title = this.support.vision
        ? `Attach images (PNG, JPEG, WebP, GIF; up to ${this.support.max_images})`
        : this.support.message || "This model cannot see images";
      this.els.button.classList.toggle("blind", !this.support.vision);
    } catch {
      // Ollama down or the tray busy: attaching will say why.
    }
    return this.support;
  }

  /** Shows a refusal or problem under the composer (cleared by the next attach or send). */
  say(text) {
    this.els.note.textContent = text;
    this.els.note.hidden = !text;
  }

  /** Attaches files: checks the model and the limits, then prepares each in the app. */
  async attach(files) {
    this.say("");
    const support = await this.refresh();
    if (support && !support.vision) {
      this.say(support.message || "This model cannot see images.");
      return;
    }
    const max = support ? support.max_images : 4;
    const room = max - this.items.length;
    if (files.length > room) {
      this.say(room <= 0
        ? `At most ${max} images can be sent in one message.`
        : `At most ${max} images can be sent in one message: ${files.length - room} not attached.`);
      files = files.slice(0, Math.max(0, room));
    }
    const problems = [];
    await Promise.all(files.map(async (file) => {
      const name = file.name || "pasted image";
      if (support && file.size > support.max_file_bytes) {
        problems.push(`${name}: the file is ${mib(file.size)}; images up to ${mib(support.max_file_bytes)} are accepted`);
        return;
      }
      const item = this.addChip(name);
      try {
        const data = await readBase64(file);
        const a = await invoke(Cmd.attachImage, { name, data });
        if (!this.items.includes(item)) {
          // Removed while it was being prepared.
          invoke(Cmd.discardImage, { id: a.id }).catch(() => {});
          return;
        }
        Object.assign(item, { id: a.id, thumb: a.thumb, width: a.width, height: a.height });
        this.fillChip(item, a);
      } catch (err) {
        this.removeChip(item, false);
        problems.push(errorText(err));
      }
    }));
    if (problems.length) this.say(problems.join("\n"));
    this.hooks.onChange();
  }

  addChip(name) {
    const chip = document.createElement("div");
    chip.className = "attach-chip busy";
    chip.setAttribute("role", "listitem");
    const img = thumbImg(null, `Image ${name}`);
    img.className = "attach-thumb";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "attach-remove";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `Remove ${name}`);
    remove.title = `Remove ${name}`;
    chip.append(img, remove);
    const item = { key: this.nextKey++, id: null, name, thumb: null, width: 0, height: 0, chip };
    remove.addEventListener("click", () => {
      this.removeChip(item, true);
      this.els.input.focus();
    });
    this.items.push(item);
    this.els.strip.append(chip);
    this.els.strip.hidden = false;
    this.hooks.onChange();
    return item;
  }

  fillChip(item, a) {
    item.chip.classList.remove("busy");
    const img = item.chip.querySelector("img");
    if (isThumb(a.thumb)) img.src = a.thumb;
    const sized = a.original_width !== a.width
      ? `${a.original_width} × ${a.original_height}, sent as ${a.width} × ${a.height}`
      : `${a.width} × ${a.height}`;
    item.chip.title = `${item.name} (${sized})`;
  }

  removeChip(item, discard) {
    this.items = this.items.filter((i) => i !== item);
    item.chip.remove();
    if (discard && item.id != null) invoke(Cmd.discardImage, { id: item.id }).catch(() => {});
    this.els.strip.hidden = this.items.length === 0;
    this.hooks.onChange();
  }

  /** Whether an image is still being prepared (sending waits for it). */
  busy() {
    return this.items.some((i) => i.id == null);
  }

  /** Whether there are images ready to send. */
  hasImages() {
    return this.items.length > 0;
  }

  /** Takes the attached images for sending: their ids and what the sent message shows. */
  take() {
    const taken = this.items.filter((i) => i.id != null);
    for (const i of taken) i.chip.remove();
    this.items = this.items.filter((i) => i.id == null);
    this.els.strip.hidden = this.items.length === 0;
    this.say("");
    return {
      ids: taken.map((i) => i.id),
      shown: taken.map(({ id, name, thumb, width, height }) => ({ id, name, thumb, width, height })),
      items: taken,
    };
  }

  /** Puts taken images back (the message was not sent; the app kept them). */
  restore(items) {
    for (const i of items) {
      this.items.push(i);
      this.els.strip.append(i.chip);
    }
    this.els.strip.hidden = this.items.length === 0;
    this.hooks.onChange();
  }
}
