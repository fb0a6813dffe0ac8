// Development only: loads the real ../index.html markup into this page (which has the mock
// window.__TAURI__ installed), then starts the real ../app.js. Keeps one copy of the markup.

const res = await fetch("../index.html");
const doc = new DOMParser().parseFromString(await res.text(), "text/html");
document.title = `${doc.title} (dev mock)`;
for (const node of doc.body.childNodes) document.body.append(document.importNode(node, true));
await import("../app.js");
window.__mock.afterBoot();
