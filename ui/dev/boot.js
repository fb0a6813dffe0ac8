// Development only: loads the real ../index.html markup into this page (which has the mock
// window.__TAURI__ installed), then starts the real ../app.js. Keeps one copy of the markup.

const res = await fetch("../index.html");
const doc = new DOMParser().parseFromString(await res.text(), "text/html");
document.title = `${doc.title} (dev mock)`;
for (const node of doc.body.childNodes) document.body.append(document.importNode(node, true));
await import("../app.js");
if (new URLSearchParams(location.search).get("selftest") === "1") {
  const { run } = await import("./selftest.js");
  setTimeout(() => run().catch((e) => {
    const pre = document.createElement("pre");
    pre.id = "selftest";
    pre.textContent = `FAIL selftest crashed: ${e && e.stack ? e.stack : e}\nDONE 1 failed`;
    document.body.append(pre);
  }), 100);
} else {
  window.__mock.afterBoot();
}
