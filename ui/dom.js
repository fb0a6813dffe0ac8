// DOM writes that leave unchanged nodes alone.
//
// Why: WebKit forgets a click whose mousedown target is removed before the mouseup
// (`EventHandler::nodeWillBeRemoved` clears the pending click node). The pointer's target on a
// button is its text node, and `el.textContent = …` replaces that node even when the text is the
// same, so a snapshot rendered between press and release (every tick) swallowed the click. That
// was the lost-Warm-click flake of the webview test, and a real user's clicks were lost the
// same way. Text is therefore changed in place, and only when it differs.

/** Sets `el`'s text without replacing its text node (no write at all when unchanged). */
export function setText(el, text) {
  const value = String(text);
  const only = el.firstChild;
  if (only && only === el.lastChild && only.nodeType === Node.TEXT_NODE) {
    if (only.data !== value) only.data = value;
    return;
  }
  if (el.textContent !== value) el.textContent = value;
}

/** Sets or removes an attribute only when it changes. */
export function setAttr(el, name, value) {
  if (value == null || value === false) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== String(value)) {
    el.setAttribute(name, String(value));
  }
}
