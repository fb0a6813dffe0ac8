// Code blocks: a wrapper that keeps the copy button in place while the code scrolls sideways.

function copyLabel(btn, text) {
  btn.textContent = text;
  clearTimeout(btn._reset);
  btn._reset = setTimeout(() => { btn.textContent = "Copy"; }, 1500);
}

async function copyCode(btn, code) {
  const text = code.textContent;
  try {
    if (navigator.clipboard && typeof navigator.clipboard.writeText === "function") {
      await navigator.clipboard.writeText(text);
      copyLabel(btn, "Copied");
      return;
    }
  } catch {
    // Fall through: clipboard API refused (permissions, no focus).
  }
  // Fallback: select the code so Ctrl+C works, and try the legacy command.
  const sel = window.getSelection();
  const range = document.createRange();
  range.selectNodeContents(code);
  sel.removeAllRanges();
  sel.addRange(range);
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  copyLabel(btn, ok ? "Copied" : "Press Ctrl+C");
}

/** Wraps every not-yet-wrapped `pre` under (or being) `root` and adds a copy button. */
export function enhanceCodeBlocks(root) {
  const pres = root.matches && root.matches("pre") ? [root] : root.querySelectorAll("pre");
  for (const pre of pres) {
    if (pre.parentElement && pre.parentElement.classList.contains("code")) continue;
    const wrap = document.createElement("div");
    wrap.className = "code";
    pre.replaceWith(wrap);
    wrap.append(pre);
    pre.tabIndex = 0; // scrollable region must be reachable by keyboard
    const code = pre.querySelector("code") || pre;
    const lang = /\blanguage-([a-z0-9+#-]{1,20})\b/.exec(code.className);
    if (lang) {
      const tag = document.createElement("span");
      tag.className = "lang";
      tag.textContent = lang[1];
      wrap.append(tag);
    }
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "copy";
    btn.textContent = "Copy";
    btn.setAttribute("aria-label", lang ? `Copy ${lang[1]} code` : "Copy code");
    btn.addEventListener("click", () => copyCode(btn, code));
    wrap.append(btn);
  }
}
