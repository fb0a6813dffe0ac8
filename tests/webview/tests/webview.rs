//! The chat window in the REAL webview (WebKitGTK through tauri-driver + WebKitWebDriver),
//! against an `ollama-sim` each test starts itself. Needs a desktop session: run
//! `scripts/e2e/webview.sh` (it wraps `scripts/e2e/run.sh`, which sets `YOLLAYAH_E2E=1`);
//! skipped otherwise. Tests run one at a time (a lock): they share one X display, and the
//! streaming-cost figures must not compete with another webview for the two CPU cores.
//!
//! `YOLLAYAH_WEBVIEW_DOCS=1` writes the screenshots to `docs/screenshots/webview-*.png` and the
//! figures to `docs/benchmarks-webview.md`; otherwise both go to `target/webview-e2e/`.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use yollayah_webview_e2e::app::Bins;
use yollayah_webview_e2e::stats::{Summary, summarize};
use yollayah_webview_e2e::webdriver::ENTER;
use yollayah_webview_e2e::{App, Launch, Result, Sim, collapse_ws, enabled, sim, wait_for};

const MODEL: &str = "llama3.2:3b";
const DEFAULT_SCENARIO: &str = include_str!("../../../crates/ollama-sim/scenarios/default.toml");
const XSS_CORPUS: &str = include_str!("../../../crates/render/tests/xss_payloads.txt");
const LONG_REPLY_SOURCE: &str = include_str!("../../../ui/dev/reply.md");

static SERIAL: Mutex<()> = Mutex::new(());

/// The lock and the binaries, or `None` (test skipped) outside a desktop session.
fn start(test: &str) -> Option<(MutexGuard<'static, ()>, Bins)> {
    if !enabled() {
        eprintln!(
            "SKIPPED {test}: needs Xvfb, a session bus, tauri-driver and WebKitWebDriver; \
             run scripts/e2e/webview.sh (sets YOLLAYAH_E2E=1)"
        );
        return None;
    }
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let bins = Bins::locate().expect("binaries under test");
    Some((guard, bins))
}

fn launch(bins: &Bins, tps: f64, opts: &Launch) -> App {
    let t0 = Instant::now();
    let toml = sim::scenario(
        DEFAULT_SCENARIO,
        &[("tokens_per_second", &format!("{tps:.1}"))],
    );
    let sim = Sim::start(&bins.sim, &toml).expect("start ollama-sim");
    let app = App::launch(bins, sim, opts).expect("launch the app through tauri-driver");
    app.wait_ready().expect("the chat window boots");
    eprintln!("app ready in {:?}", t0.elapsed());
    app
}

fn out_dir(docs_sub: &str) -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    if std::env::var("YOLLAYAH_WEBVIEW_DOCS").as_deref() == Ok("1") {
        repo.join("docs").join(docs_sub)
    } else {
        repo.join("target/webview-e2e")
    }
}

fn shot(app: &App, name: &str) {
    let path = out_dir("screenshots").join(format!("webview-{name}.png"));
    app.screenshot(&path).expect("screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Types `text` in the composer and presses Enter.
fn send(app: &App, text: &str) {
    let input = app.wd.find("#input").expect("message box");
    app.wd.send_keys(&input, text).expect("type");
    app.wd.send_keys(&input, ENTER).expect("Enter");
}

/// The last assistant message: visible text, state, meta line.
fn last_reply(app: &App) -> Result<Value> {
    app.js(
        "const m = [...document.querySelectorAll('#log .msg.assistant')].pop();\
         if (!m) return null;\
         const md = m.querySelector('.md:not(.tail-md)').textContent;\
         const tail = m.querySelector('.tail-md').textContent + m.querySelector('.tail').textContent;\
         return {text: md + tail, md, tail,\
                 streaming: m.classList.contains('streaming'),\
                 incomplete: m.classList.contains('incomplete'),\
                 meta: m.querySelector('.meta').textContent};",
    )
}

/// Waits for the last reply to finish normally (its stats line shows tok/s).
fn wait_done(app: &App, timeout: Duration) -> Value {
    wait_for(
        "the reply to complete",
        timeout,
        Duration::from_millis(50),
        || {
            // Only the state: WebKitWebDriver fails to return some very long strings.
            let r = app.js(
                "const m = [...document.querySelectorAll('#log .msg.assistant')].pop();\
                 return m && {streaming: m.classList.contains('streaming'),\
                              meta: m.querySelector('.meta').textContent,\
                              chars: m.textContent.length};",
            )?;
            Ok((!r.is_null()
                && r["streaming"] == false
                && r["meta"].as_str().unwrap_or("").contains("tok/s"))
            .then_some(r))
        },
    )
    .expect("reply completes")
}

fn words(n: usize) -> String {
    const W: [&str; 12] = [
        "streams", "locally", "quietly", "model", "answer", "token", "window", "river", "lantern",
        "harbor", "orchard", "meadow",
    ];
    (0..n)
        .map(|i| W[(i * 7 + i / 12) % W.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_sent_message_streams_progressively_and_completes() {
    let Some((_lock, bins)) = start("a_sent_message_streams_progressively_and_completes") else {
        return;
    };
    let app = launch(&bins, 40.0, &Launch::default());
    let reply = format!("Sure. {}.", words(60));
    app.sim.set_reply(&reply).expect("set reply");
    let full = collapse_ws(&reply);

    send(&app, "Tell me something");
    let user = app
        .js("const u = document.querySelector('#log .msg.user'); return u && u.textContent;")
        .expect("user message");
    assert_eq!(user, "Tell me something");

    let mut partials = Vec::new();
    let done = wait_for(
        "the streamed reply to complete",
        Duration::from_secs(45),
        Duration::from_millis(15),
        || {
            let r = last_reply(&app)?;
            if r.is_null() {
                return Ok(None);
            }
            let text = collapse_ws(r["text"].as_str().unwrap_or(""));
            if r["streaming"] == true && !text.is_empty() && text != full {
                partials.push(text);
            }
            Ok(
                (r["streaming"] == false && r["meta"].as_str().unwrap_or("").contains("tok/s"))
                    .then_some(r),
            )
        },
    )
    .expect("reply completes");
    assert!(!partials.is_empty(), "never saw the reply part-way through");
    for p in &partials {
        assert!(
            full.starts_with(p.as_str()),
            "partial {p:?} is not a prefix of the reply"
        );
    }
    let distinct: std::collections::BTreeSet<_> = partials.iter().collect();
    eprintln!(
        "observed {} partial states ({} distinct)",
        partials.len(),
        distinct.len()
    );
    assert_eq!(collapse_ws(done["text"].as_str().unwrap_or("")), full);
    let badge = app.badge().expect("badge");
    assert!(
        badge["speed"].as_str().unwrap_or("").ends_with("tok/s"),
        "strip speed: {badge}"
    );
    assert_eq!(
        badge["text"], "GPU",
        "a generating model on an idle 12 GiB GPU: {badge}"
    );
    shot(&app, "light");
}

#[test]
fn stop_keeps_the_partial_reply_marked_incomplete_with_retry() {
    let Some((_lock, bins)) = start("stop_keeps_the_partial_reply_marked_incomplete_with_retry")
    else {
        return;
    };
    let app = launch(&bins, 12.0, &Launch::default());
    let reply = format!("Here is a long answer. {}.", words(200));
    app.sim.set_reply(&reply).expect("set reply");
    let full = collapse_ws(&reply);
    send(&app, "Write a long answer");
    wait_for(
        "a few words of the reply",
        Duration::from_secs(30),
        Duration::from_millis(30),
        || {
            let r = last_reply(&app)?;
            Ok((!r.is_null()
                && collapse_ws(r["text"].as_str().unwrap_or(""))
                    .split(' ')
                    .count()
                    >= 10)
                .then_some(()))
        },
    )
    .expect("reply starts streaming");
    shot(&app, "streaming");
    let stop = app.wd.find("#stop").expect("Stop button");
    app.wd.click(&stop).expect("click Stop");

    let r = wait_for(
        "the reply to end as incomplete",
        Duration::from_secs(15),
        Duration::from_millis(30),
        || {
            let r = last_reply(&app)?;
            Ok((r["incomplete"] == true && r["streaming"] == false).then_some(r))
        },
    )
    .expect("cancelled");
    assert!(
        r["meta"].as_str().unwrap_or("").contains("Incomplete"),
        "badge: {r}"
    );
    // The partial text is swapped for its sanitised rendering: wait for that, then check the
    // text is still the partial reply.
    let r = wait_for(
        "the partial to be rendered",
        Duration::from_secs(10),
        Duration::from_millis(30),
        || {
            let r = last_reply(&app)?;
            Ok((r["tail"] == "" && r["md"] != "").then_some(r))
        },
    )
    .expect("partial rendered");
    let partial = collapse_ws(r["text"].as_str().unwrap_or(""));
    assert!(
        partial.split(' ').count() >= 10,
        "partial kept: {partial:?}"
    );
    assert!(partial.len() < full.len(), "stopped before the end");
    assert!(
        full.starts_with(&partial),
        "{partial:?} is the start of the reply"
    );
    let retry = app
        .js(
            "const b = [...document.querySelectorAll('#log .msg.assistant')].pop().querySelector('button.retry');\
             return b && {visible: b.offsetParent !== null && b.getClientRects().length > 0, disabled: b.disabled};",
        )
        .expect("retry");
    assert_eq!(retry, json!({"visible": true, "disabled": false}));
    let composer = app
        .js("return {send: !document.getElementById('send').hidden, stop: !document.getElementById('stop').hidden};")
        .expect("composer");
    assert_eq!(
        composer,
        json!({"send": true, "stop": false}),
        "Stop turns back into Send"
    );
    shot(&app, "incomplete");
}

/// Loads the model through the Warm button and waits for the GPU badge.
///
/// One click, no second try: a click used to be lost now and then because each snapshot
/// replaced the button's text node between WebKit's mousedown and mouseup, and WebKit drops a
/// click whose pressed node left the document (`ui/dom.js`). That cause is gone, and
/// `a_tick_between_press_and_release_does_not_lose_the_click` pins it.
fn warm_to_gpu(app: &App) {
    let loads = || {
        app.sim
            .stats()
            .ok()
            .and_then(|s| s["load_count"].as_u64())
            .unwrap_or(0)
    };
    let before = loads();
    let warm = app.wd.find("#warm").expect("Warm button");
    app.wd.click(&warm).expect("click Warm");
    wait_for(
        "the badge to show GPU",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let b = app.badge()?;
            Ok((b["text"] == "GPU").then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        let button = app.js(
            "const w = document.getElementById('warm'); return {disabled: w.disabled, text: w.textContent, title: w.title};",
        );
        panic!(
            "GPU badge: {e:?}; loads {before} -> {}, badge {:?}, button {:?}",
            loads(),
            app.badge().ok(),
            button.ok()
        )
    });
}

#[test]
fn placement_badge_follows_a_cpu_fallback_and_back() {
    let Some((_lock, bins)) = start("placement_badge_follows_a_cpu_fallback_and_back") else {
        return;
    };
    let app = launch(&bins, 200.0, &Launch::default());
    warm_to_gpu(&app);
    assert_eq!(app.badge().expect("badge")["tone"], "good");
    // /api/ps still claims the GPU; the GPU view shows the runner holds no VRAM and burns CPU.
    app.sim
        .fault(json!({"kind": "ps_lies_gpu", "model": MODEL}))
        .expect("stage ps_lies_gpu");
    let b = wait_for(
        "the badge to show the CPU fallback",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let b = app.badge()?;
            let t = b["text"].as_str().unwrap_or("");
            Ok((t == "CPU" || t.ends_with("% CPU")).then_some(b))
        },
    )
    .expect("CPU badge");
    assert!(matches!(b["tone"].as_str(), Some("bad" | "warn")), "{b}");
    shot(&app, "cpu-fallback");
    // The diagnosis popover explains it.
    let badge = app.wd.find("#badge").expect("badge");
    app.wd.click(&badge).expect("pin the popover");
    let pop = app
        .js("const p = document.getElementById('popover'); const t = p.innerText;\
             const codes = t.match(/\\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\\b/g) || [];\
             const s = t.split(/(?<=[.!?])\\s+|\\n+/).map((x) => x.trim().toLowerCase()).filter(Boolean);\
             return {hidden: p.hidden, text: p.textContent, codes,\
                     repeated: s.filter((x, i) => s.indexOf(x) !== i)};")
        .expect("popover");
    assert_eq!(pop["hidden"], false);
    // In words, each sentence once; internal codes stay out of sight (tooltips only).
    assert_eq!(pop["codes"], json!([]), "{pop}");
    assert_eq!(pop["repeated"], json!([]), "{pop}");
    assert!(
        !pop["text"].as_str().unwrap_or("").trim().is_empty(),
        "{pop}"
    );
    shot(&app, "cpu-fallback-diagnosis");
    app.wd.click(&badge).expect("unpin");

    app.sim.clear().expect("clear faults");
    wait_for(
        "the badge to return to GPU",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || Ok((app.badge()?["text"] == "GPU").then_some(())),
    )
    .expect("back to GPU");
}

#[test]
fn warm_button_loads_the_model() {
    let Some((_lock, bins)) = start("warm_button_loads_the_model") else {
        return;
    };
    let app = launch(&bins, 200.0, &Launch::default());
    // Nothing loaded at the start (re-warming is off in the test config).
    if !app.sim.loaded().expect("loaded").is_empty() {
        app.sim.unload(MODEL).expect("unload");
    }
    wait_for(
        "the badge to show not loaded",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || Ok((app.badge()?["text"] == "not loaded").then_some(())),
    )
    .expect("not loaded badge");
    let before = app.sim.stats().expect("stats")["load_count"]
        .as_u64()
        .unwrap_or(0);
    // It looks like a button: a visible border and the pointer cursor.
    let look = app
        .js("const w = document.getElementById('warm'); const c = getComputedStyle(w);\
             return {border: c.borderTopStyle, width: parseFloat(c.borderTopWidth), cursor: c.cursor};")
        .expect("Warm style");
    assert_eq!(look["border"], "solid", "{look}");
    assert!(look["width"].as_f64().unwrap_or(0.0) >= 1.0, "{look}");
    assert_eq!(look["cursor"], "pointer", "{look}");
    let warm = app.wd.find("#warm").expect("Warm button");
    app.wd.click(&warm).expect("click Warm");
    // Badge and button read in one go: Ollama lists a model in /api/ps while it loads, so the
    // badge turns GPU before the warm request returns; from then on the button must not still
    // say "Warming…".
    let mut seen_warming = false;
    let at_gpu = wait_for(
        "the badge to show GPU",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let r = app.js("const w = document.getElementById('warm');\
                 return {badge: document.getElementById('badge-text').textContent,\
                         text: w.textContent, disabled: w.disabled, state: w.dataset.state};")?;
            seen_warming |= r["text"] == "Warming…";
            Ok((r["badge"] == "GPU").then_some(r))
        },
    )
    .expect("GPU badge");
    assert_eq!(
        at_gpu["text"], "Warm",
        "Warming… ends when the badge turns GPU: {at_gpu}"
    );
    assert_eq!(at_gpu["disabled"], false, "{at_gpu}");
    assert!(
        seen_warming,
        "the button said Warming… while the model loaded"
    );
    shot(&app, "warm-loaded");
    let stats = app.sim.stats().expect("stats");
    assert_eq!(
        stats["load_count"].as_u64(),
        Some(before + 1),
        "one load: {stats}"
    );
    assert_eq!(app.sim.loaded().expect("loaded"), vec![MODEL.to_owned()]);
    let title = wait_for("the Warm button to report the load", Duration::from_secs(10), Duration::from_millis(50), || {
        let t = app.js("const w = document.getElementById('warm'); return {title: w.title, disabled: w.disabled, text: w.textContent};")?;
        Ok((t["disabled"] == false && t["title"].as_str().unwrap_or("").contains("loaded in")).then_some(t))
    })
    .expect("warm result shown");
    assert_eq!(title["text"], "Warm", "{title}");
    shot(&app, "warm-loaded");
}

struct Payload {
    text: String,
    visible: String,
}

/// The render crate's corpus, with its escapes (`\x00`, `\n`) and optional TAB + visible text.
fn xss_payloads() -> Vec<Payload> {
    let unescape = |s: &str| s.replace("\\x00", "\0").replace("\\n", "\n");
    XSS_CORPUS
        .lines()
        .filter(|l| !l.starts_with(";;") && !l.is_empty())
        .map(|l| {
            let (p, v) = l.split_once('\t').unwrap_or((l, l));
            Payload {
                text: unescape(p),
                visible: collapse_ws(&unescape(v).replace(['\0', '\u{fffd}'], "")),
            }
        })
        .collect()
}

#[test]
fn xss_corpus_in_a_real_reply_stays_inert_text() {
    let Some((_lock, bins)) = start("xss_corpus_in_a_real_reply_stays_inert_text") else {
        return;
    };
    let payloads = xss_payloads();
    assert!(
        payloads.len() >= 30,
        "corpus has {} payloads",
        payloads.len()
    );
    let app = launch(&bins, 1000.0, &Launch::default());
    let reply: Vec<&str> = payloads.iter().map(|p| p.text.as_str()).collect();
    app.sim.set_reply(&reply.join("\n\n")).expect("set reply");
    send(&app, "show me the corpus");
    wait_done(&app, Duration::from_secs(60));

    let fired = app
        .js("return {xss: typeof window.__xss === 'undefined' ? null : String(window.__xss)};")
        .expect("sentinel");
    assert_eq!(fired, json!({"xss": null}), "a payload ran");
    assert_eq!(
        app.wd.alert_text().expect("alert state"),
        None,
        "an alert is open"
    );
    let dom = app
        .js(
            "const log = document.getElementById('log');\
             const bad = log.querySelectorAll('script,iframe,img,svg,math,object,embed,form,input,style,link,meta,base,video,audio,source,details,frame,frameset,template');\
             const on = [];\
             const badHref = [];\
             for (const e of log.querySelectorAll('*')) {\
               for (const a of e.attributes) {\
                 if (a.name.toLowerCase().startsWith('on') || a.name === 'style' || a.name === 'srcdoc') on.push(e.tagName + '[' + a.name + ']');\
               }\
             }\
             for (const a of log.querySelectorAll('[href]')) {\
               if (!/^(https?:|mailto:)/i.test(a.getAttribute('href'))) badHref.push(a.getAttribute('href'));\
             }\
             return {bad: [...bad].map(e => e.tagName), on, badHref, text: log.textContent, links: log.querySelectorAll('a').length};",
        )
        .expect("dom check");
    assert_eq!(
        dom["bad"],
        json!([]),
        "forbidden elements in the message list"
    );
    assert_eq!(
        dom["on"],
        json!([]),
        "forbidden attributes in the message list"
    );
    assert_eq!(dom["badHref"], json!([]), "non-http(s)/mailto links");
    let text = collapse_ws(
        &dom["text"]
            .as_str()
            .unwrap_or("")
            .replace(['\0', '\u{fffd}'], ""),
    );
    let missing: Vec<&str> = payloads
        .iter()
        .filter(|p| !text.contains(&p.visible))
        .map(|p| p.visible.as_str())
        .collect();
    eprintln!(
        "{} payloads, {} visible as text, {} links left (all http/https/mailto)",
        payloads.len(),
        payloads.len() - missing.len(),
        dom["links"]
    );
    assert!(missing.is_empty(), "payload text not visible: {missing:#?}");
    // Still nothing ran after a moment of layout and event dispatch.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        app.js("return typeof window.__xss;").expect("sentinel"),
        "undefined"
    );
    // And should something ever slip through, the window cannot be taken elsewhere: the shell
    // refuses any navigation away from the app's own pages (the link below is a closed port
    // of this machine, not a real target).
    let before = app.js("return location.href;").expect("href");
    app.js("setTimeout(() => { location.href = 'http://127.0.0.1:9/x'; }, 0); return null;")
        .expect("navigate");
    std::thread::sleep(Duration::from_millis(800));
    let after = app
        .js("return {href: location.href, log: !!document.getElementById('log')};")
        .expect("after navigation");
    assert_eq!(
        after,
        json!({"href": before, "log": true}),
        "the window navigated away"
    );
}

/// The simulator's token count of `text` (its rule: a piece ends at whitespace after a word, at
/// ASCII punctuation other than `'`, and after 6 characters).
fn sim_tokens(text: &str) -> usize {
    let mut n = 0;
    let mut cur = String::new();
    for c in text.chars() {
        let boundary = (c.is_whitespace() && !cur.trim().is_empty())
            || (c.is_ascii_punctuation() && !cur.is_empty() && c != '\'')
            || cur.chars().count() >= 6 && !c.is_whitespace();
        if boundary {
            n += 1;
            cur.clear();
        }
        cur.push(c);
    }
    n + usize::from(!cur.is_empty())
}

/// About `tokens` simulator tokens of realistic Markdown: the dev reply, repeated, cut at a
/// paragraph boundary.
fn long_reply(tokens: usize) -> String {
    let mut s = String::new();
    'outer: loop {
        for para in LONG_REPLY_SOURCE.trim_end().split("\n\n") {
            s.push_str(para);
            s.push_str("\n\n");
            if sim_tokens(&s) >= tokens {
                break 'outer;
            }
        }
    }
    s
}

fn ms(x: f64) -> String {
    format!("{x:.3}")
}

#[test]
fn streaming_cost_of_a_4000_token_reply_in_the_real_webview() {
    let Some((_lock, bins)) = start("streaming_cost_of_a_4000_token_reply_in_the_real_webview")
    else {
        return;
    };
    let app = launch(&bins, 200.0, &Launch::default());
    let reply = long_reply(4000);
    app.sim.set_reply(&reply).expect("set reply");
    warm_to_gpu(&app);
    app.js("window.__yollayahPerf.reset(); return true;")
        .expect("reset counters");
    let t0 = Instant::now();
    send(&app, "Write the long one");
    wait_done(&app, Duration::from_secs(90));
    let wall = t0.elapsed();
    let perf = app
        .js(
            "const p = window.__yollayahPerf;\
             return {deltas: p.deltas, deltaChars: p.deltaChars, handlerMs: p.handlerMs, flushMs: p.flushMs,\
                     maxFlushMs: p.maxFlushMs, frames: p.frames, lastDone: p.lastDone,\
                     handler: p.samples('handler'), flush: p.samples('flush'),\
                     res: (() => { let m = Infinity; for (let i = 0; i < 20; i++) { const a = performance.now(); let b = a; while (b === a) b = performance.now(); m = Math.min(m, b - a); } return m; })()};",
        )
        .expect("perf counters");
    let f = |k: &str| perf[k].as_f64().unwrap_or(f64::NAN);
    let samples = |k: &str| -> Vec<f64> {
        perf[k]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let deltas = perf["deltas"].as_u64().unwrap_or(0);
    let sent = perf["lastDone"]["eval_count"].as_u64();
    let expected_chars = reply.encode_utf16().count() as u64;
    let handler = summarize(&samples("handler"));
    let flush = summarize(&samples("flush"));
    let total = f("handlerMs") + f("flushMs");
    // Does a flush get dearer as the message grows? First vs last quarter of the frames.
    let flushes = samples("flush");
    let q = flushes.len() / 4;
    let early = summarize(&flushes[..q]).mean;
    let late = summarize(&flushes[flushes.len() - q..]).mean;
    let per_delta = total / deltas.max(1) as f64;
    let row = |name: &str, s: &Summary| {
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} |\n",
            s.n,
            ms(s.mean),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            ms(s.sum)
        )
    };
    let report = format!(
        "Reply: {chars} characters, {sent} tokens from the simulator at 200 tok/s; wall time from Enter to \
         the rendered final message {wall:.1} s.\n\n\
         | | count | mean ms | p50 ms | p99 ms | max ms | total ms |\n|---|---:|---:|---:|---:|---:|---:|\n\
         {h}{fl}\n\
         - deltas received by the page: **{deltas}**; tokens sent by the simulator (`eval_count`): **{sent}**; \
         delta characters received: {got} of {chars} (nothing dropped: {ok})\n\
         - main-thread time in Yollayah's code for the whole reply: **{total:.1} ms** \
         ({per_delta:.3} ms per delta on average, {pct:.2} % of the stream's {wall:.1} s)\n\
         - flushes (frames with DOM work): {frames}, {dpf:.1} deltas per flush; longest flush {maxf:.2} ms; \
         mean flush in the first quarter of the stream {early:.2} ms, in the last quarter {late:.2} ms\n\
         - `performance.now()` step in this WebKit: {res:.3} ms (samples are quantised to it; means over many samples are still fair, single samples are not)\n",
        chars = expected_chars,
        sent = sent.map_or("?".to_owned(), |s| s.to_string()),
        wall = wall.as_secs_f64(),
        h = row("chat-event handler, per delta", &handler),
        fl = row("rAF flush (DOM write + scroll), per frame", &flush),
        got = perf["deltaChars"],
        ok = perf["deltaChars"].as_u64() == Some(expected_chars),
        pct = 100.0 * total / (wall.as_secs_f64() * 1000.0),
        frames = perf["frames"],
        dpf = deltas as f64 / f("frames").max(1.0),
        maxf = f("maxFlushMs"),
        res = f("res"),
    );
    eprintln!("{report}");
    let dir = out_dir("");
    std::fs::create_dir_all(&dir).expect("out dir");
    let path = if dir.ends_with("docs/") || dir.ends_with("docs") {
        dir.join("benchmarks-webview.md")
    } else {
        dir.join("benchmarks-webview-figures.md")
    };
    write_figures(&path, &report);

    assert_eq!(
        perf["deltaChars"].as_u64(),
        Some(expected_chars),
        "every delta's text reached the page"
    );
    assert!(
        sent.is_some_and(|s| (3900..=4600).contains(&s)),
        "a ~4000-token reply: {sent:?}"
    );
    assert!(
        deltas > 0 && deltas <= sent.unwrap_or(0),
        "deltas {deltas} vs tokens {sent:?}"
    );
    // One flush per frame at most, not one per delta: batching works in the real webview.
    assert!(
        f("frames") < deltas as f64,
        "frames {} vs deltas {deltas}",
        f("frames")
    );
}

/// Writes the figures between the markers of `path` (creating it with a heading if needed).
fn write_figures(path: &std::path::Path, report: &str) {
    write_figures_named(path, "figures", report);
}

/// Writes `report` between the `<!-- NAME:begin … -->` and `<!-- NAME:end -->` markers.
fn write_figures_named(path: &std::path::Path, name: &str, report: &str) {
    let begin = format!("<!-- {name}:begin (written by tests/webview) -->\n");
    let end = format!("<!-- {name}:end -->\n");
    let (begin, end) = (begin.as_str(), end.as_str());
    let old = std::fs::read_to_string(path)
        .unwrap_or_else(|_| format!("# Streaming cost in the real webview\n\n{begin}{end}"));
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{begin}{report}{}", &old[..b], &old[e..]),
        _ => format!("{old}\n{begin}{report}{end}"),
    };
    std::fs::write(path, new).expect("write figures");
    eprintln!("figures: {}", path.display());
}

#[test]
fn dark_theme_follows_gtk_and_screenshots() {
    let Some((_lock, bins)) = start("dark_theme_follows_gtk_and_screenshots") else {
        return;
    };
    let app = launch(
        &bins,
        400.0,
        &Launch {
            dark: true,
            ..Launch::default()
        },
    );
    let dark = app
        .js("return matchMedia('(prefers-color-scheme: dark)').matches;")
        .expect("media query");
    assert_eq!(
        dark, true,
        "GTK_THEME=Adwaita:dark should make WebKitGTK prefer dark"
    );
    let bg = app
        .js("return getComputedStyle(document.body).backgroundColor;")
        .expect("background");
    eprintln!("dark body background: {bg}");
    app.sim
        .set_reply("Dark mode works.\n\n```rust\nfn main() { println!(\"hi\"); }\n```\n\nDone.")
        .expect("reply");
    send(&app, "Show dark mode");
    wait_done(&app, Duration::from_secs(30));
    shot(&app, "dark");
}

/// The thinking block of the last reply: `{hidden, open, live, summary, text}`.
fn last_thinking(app: &App) -> Result<Value> {
    app.js(
        "const m = [...document.querySelectorAll('#log .msg.assistant')].pop();\
         if (!m) return null;\
         const t = m.querySelector('.thinking');\
         const b = t.querySelector('button.thinking-toggle');\
         return {hidden: t.hidden, open: b.getAttribute('aria-expanded') === 'true' && !t.querySelector('.thinking-text').hidden,\
                 live: t.classList.contains('live'),\
                 summary: b.textContent,\
                 text: t.querySelector('.thinking-text').textContent,\
                 html_children: t.querySelector('.thinking-text').children.length,\
                 answer: m.querySelector('.md:not(.tail-md)').textContent\
                         + m.querySelector('.tail-md').textContent + m.querySelector('.tail').textContent,\
                 streaming: m.classList.contains('streaming')};",
    )
}

#[test]
fn thinking_streams_live_collapses_survives_reload_and_is_not_resent() {
    let Some((_lock, bins)) =
        start("thinking_streams_live_collapses_survives_reload_and_is_not_resent")
    else {
        return;
    };
    // Markup in the trace must stay text: model output is untrusted.
    let trace = "The user asks for six times seven. <b>Multiplying</b> gives forty-two. \
                 I should answer **briefly** and show the number.";
    let toml = sim::scenario(
        DEFAULT_SCENARIO,
        &[
            ("tokens_per_second", "15.0"),
            ("thinking", &format!("{trace:?}")),
        ],
    );
    let sim = Sim::start(&bins.sim, &toml).expect("start ollama-sim");
    let app = App::launch(
        &bins,
        sim,
        &Launch {
            model: Some("qwen3:8b".into()),
            ..Launch::default()
        },
    )
    .expect("launch");
    app.wait_ready().expect("the chat window boots");
    let answer = "Six times seven is **42**.";
    app.sim.set_reply(answer).expect("set reply");
    send(&app, "What is six times seven?");

    // Live: the block is open and growing while no answer text has arrived yet.
    let live = wait_for(
        "the thinking trace to stream",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let t = last_thinking(&app)?;
            Ok((!t.is_null()
                && t["hidden"] == false
                && t["live"] == true
                && collapse_ws(t["text"].as_str().unwrap_or(""))
                    .split(' ')
                    .count()
                    >= 4)
                .then_some(t))
        },
    )
    .expect("thinking streams");
    assert_eq!(live["open"], true, "open while it streams: {live}");
    assert_eq!(live["summary"], "Thinking…");
    assert_eq!(live["answer"].as_str().map(str::trim), Some(""), "{live}");
    let partial = collapse_ws(live["text"].as_str().unwrap_or(""));
    assert!(
        partial.len() < trace.len() && collapse_ws(trace).starts_with(&partial),
        "part of the trace, streamed: {partial:?}"
    );
    shot(&app, "thinking-live");

    let done = wait_done(&app, Duration::from_secs(60));
    let t = last_thinking(&app).expect("thinking");
    assert_eq!(t["open"], false, "collapsed once the answer started: {t}");
    assert_eq!(t["live"], false);
    assert!(
        t["summary"].as_str().unwrap_or("").starts_with("Thought"),
        "duration shown: {t}"
    );
    assert_eq!(
        collapse_ws(t["text"].as_str().unwrap_or("")),
        collapse_ws(trace)
    );
    assert_eq!(
        t["html_children"], 0,
        "the trace is text, never markup: {t}"
    );
    assert_eq!(
        collapse_ws(t["answer"].as_str().unwrap_or("")),
        "Six times seven is 42.",
        "{done}"
    );
    let bold = app
        .js("return [...document.querySelectorAll('#log .msg.assistant')].pop().querySelector('.md strong')?.textContent ?? null;")
        .expect("bold");
    assert_eq!(bold, "42");
    // Open it to show the trace in the screenshot.
    let toggle = app
        .wd
        .find("#log .msg.assistant:last-of-type .thinking-toggle")
        .expect("the Thought toggle");
    app.wd.click(&toggle).expect("expand the trace");
    let t = last_thinking(&app).expect("thinking");
    assert_eq!(t["open"], true, "a click opens it again: {t}");
    shot(&app, "thinking");

    // A second question in the same conversation: the first reply's trace is not context.
    app.sim.set_reply("Yes, 42.").expect("set reply");
    send(&app, "Are you sure?");
    wait_for(
        "the second reply",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let n = app.js(
                "return [...document.querySelectorAll('#log .msg.assistant')].filter(m => \
                 !m.classList.contains('streaming') && m.querySelector('.meta').textContent.includes('tok/s')).length;",
            )?;
            Ok((n == 2).then_some(()))
        },
    )
    .expect("second reply completes");
    let chats: Vec<Value> = app
        .sim
        .requests()
        .expect("recorded requests")
        .into_iter()
        .filter(|r| r["path"] == "/api/chat")
        .collect();
    let last = chats.last().expect("a chat request");
    let messages = last["body"]["messages"].as_array().expect("messages");
    let assistant: Vec<&Value> = messages
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    assert_eq!(assistant.len(), 1, "the first reply is context: {last}");
    assert!(
        assistant[0].get("thinking").is_none(),
        "thinking is not sent back: {}",
        assistant[0]
    );
    assert_eq!(assistant[0]["content"], answer);
    let body = last["body"].to_string();
    assert!(
        !body.contains("Multiplying"),
        "no part of the trace is re-sent: {body}"
    );

    // Reload the page and open the conversation from history: the trace is there, collapsed.
    app.js("window.__beforeReload = true; setTimeout(() => location.reload(), 0); return true;")
        .expect("reload");
    // While the page reloads a script may fail: such probes count as "not yet".
    wait_for(
        "the window to boot again",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let r = app
                .js(
                    "return !window.__beforeReload && document.readyState === 'complete' \
                     && !!document.getElementById('chats-toggle') \
                     && document.getElementById('badge')?.textContent !== '…';",
                )
                .unwrap_or(Value::Bool(false));
            Ok((r == true).then_some(()))
        },
    )
    .expect("reloaded");
    let toggle = app.wd.find("#chats-toggle").expect("Chats");
    app.wd.click(&toggle).expect("open Chats");
    wait_for(
        "the conversation in the list",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let r = app.js("return !!document.querySelector('#chats-list button[data-id]');")?;
            Ok((r == true).then_some(()))
        },
    )
    .expect("a conversation");
    let item = app
        .wd
        .find("#chats-list button[data-id]")
        .expect("the item");
    app.wd.click(&item).expect("open it");
    let loaded = wait_for(
        "the stored conversation",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let r = app.js(
                "const ts = [...document.querySelectorAll('#log .msg.assistant .thinking')];\
                 return ts.map(t => ({hidden: t.hidden, open: !t.querySelector('.thinking-text').hidden,\
                                      summary: t.querySelector('button.thinking-toggle').textContent,\
                                      text: t.querySelector('.thinking-text').textContent}));",
            )?;
            Ok((r.as_array().is_some_and(|a| a.len() == 2)).then_some(r))
        },
    )
    .expect("loaded");
    for t in loaded.as_array().expect("list") {
        assert_eq!(t["hidden"], false, "stored thinking shown: {t}");
        assert_eq!(t["open"], false, "collapsed: {t}");
        assert_eq!(
            collapse_ws(t["text"].as_str().unwrap_or("")),
            collapse_ws(trace)
        );
        assert!(
            t["summary"].as_str().unwrap_or("").starts_with("Thought"),
            "{t}"
        );
    }
}

#[test]
fn model_list_shows_each_model_with_its_fit_prediction() {
    let Some((_lock, bins)) = start("model_list_shows_each_model_with_its_fit_prediction") else {
        return;
    };
    let app = launch(&bins, 200.0, &Launch::default());
    let toggle = app.wd.find("#models-toggle").expect("Models");
    app.wd.click(&toggle).expect("open Models");
    let rows = wait_for(
        "the model list",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            let r = app.js(
                "return [...document.querySelectorAll('#models-list li.model-row')].map(li => ({\
                   name: li.dataset.model, current: li.getAttribute('aria-current') === 'true',\
                   facts: li.querySelector('.model-facts').textContent,\
                   fit: li.querySelector('.model-fit').textContent,\
                   tone: li.querySelector('.model-fit').dataset.tone}));",
            )?;
            Ok(r.as_array().is_some_and(|a| a.len() >= 3).then_some(r))
        },
    )
    .expect("rows");
    let rows = rows.as_array().expect("rows");
    let row = |n: &str| {
        rows.iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("{n} listed: {rows:?}"))
    };
    let ours = row(MODEL);
    assert_eq!(
        ours["current"], true,
        "the configured model is marked: {ours}"
    );
    let qwen3 = row("qwen3:8b");
    assert!(
        qwen3["facts"].as_str().unwrap_or("").contains("thinking"),
        "{qwen3}"
    );
    assert!(
        row("gemma3:4b")["facts"]
            .as_str()
            .unwrap_or("")
            .contains("vision")
    );
    for r in rows {
        assert!(
            !r["fit"].as_str().unwrap_or("").is_empty() && r["tone"] != Value::Null,
            "every model has a prediction: {r}"
        );
    }
    shot(&app, "models");
    // Esc closes the list, not the window.
    app.wd
        .send_keys(&app.wd.find("#models-toggle").expect("toggle"), "\u{e00c}")
        .expect("Esc");
    let hidden = wait_for(
        "the list to close",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let h = app.js("return document.getElementById('models-panel').hidden;")?;
            Ok((h == true).then_some(h))
        },
    )
    .expect("closed");
    assert_eq!(hidden, true);
}

/// The picker's rows as the user sees them: name → {fit, tone, current, use}.
fn picker_rows(app: &App) -> Value {
    wait_for(
        "the picker's rows",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            let r = app.js("if (document.getElementById('models-panel').hidden) \
                   document.getElementById('models-toggle').click();\
                 const list = document.getElementById('models-list');\
                 if (list.getAttribute('aria-busy') !== 'false') return null;\
                 const rows = {};\
                 for (const li of list.querySelectorAll('li.model-row')) {\
                   rows[li.dataset.model] = {\
                     fit: li.querySelector('.model-fit').textContent,\
                     tone: li.querySelector('.model-fit').dataset.tone,\
                     current: li.getAttribute('aria-current') === 'true',\
                     think: (li.querySelector('.model-think-toggle') || {}).checked ?? null};\
                 }\
                 return Object.keys(rows).length >= 3 ? rows : null;")?;
            Ok((!r.is_null()).then_some(r))
        },
    )
    .expect("picker rows")
}

/// Scrolls `model`'s row into view and puts the keyboard focus on its first control.
fn show_row(app: &App, model: &str) {
    app.js(&format!(
        "const li = document.querySelector('#models-list li[data-model=\"{model}\"]');\
         li.scrollIntoView({{block: 'center'}}); li.querySelector('button').focus();"
    ))
    .expect("show the row");
    // Two frames, so the screenshot shows the scrolled list, not the last painted one.
    app.js("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))));")
        .expect("a painted frame");
}

/// The tray's snapshot (the `status` command, as the window invokes it).
fn status(app: &App) -> Value {
    app.js("return window.__TAURI__.core.invoke('status');")
        .expect("status")
}

/// `/api/ps` of the simulator: `(size, size_vram)` of `model`, if loaded.
fn ps_of(app: &App, model: &str) -> Option<(u64, u64)> {
    let url = format!("{}/api/ps", app.sim.url());
    let ps = yollayah_webview_e2e::http::request("GET", &url, None, Duration::from_secs(5))
        .and_then(|r| r.json(&url))
        .expect("ps");
    ps["models"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == model)
        .map(|m| {
            (
                m["size"].as_u64().unwrap_or(0),
                m["size_vram"].as_u64().unwrap_or(0),
            )
        })
}

/// Picks `model` in the picker, sends a message, waits for the reply, and returns the chat
/// request the simulator recorded.
fn chat_with(app: &App, model: &str, text: &str) -> Value {
    picker_rows(app);
    app.js(&format!(
        "document.querySelector('#models-list li[data-model=\"{model}\"] .model-use').click();"
    ))
    .expect("click Use for chat");
    wait_for(
        "the choice to show",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let rows = picker_rows(app);
            let toggle = app.js("return document.getElementById('models-toggle').textContent;")?;
            Ok((rows[model]["current"] == true && toggle == model).then_some(()))
        },
    )
    .expect("chosen");
    app.js("document.getElementById('models-toggle').click();")
        .expect("close the picker");
    let count = "return document.querySelectorAll('#log .msg.assistant').length;";
    let before = app.js(count).expect("count").as_u64().unwrap_or(0);
    send(app, text);
    // The reply of this message, not the last one's.
    wait_for(
        "the new reply",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || Ok((app.js(count)?.as_u64().unwrap_or(0) > before).then_some(())),
    )
    .expect("a new reply");
    wait_done(app, Duration::from_secs(60));
    app.sim
        .requests()
        .expect("recorded requests")
        .into_iter()
        .rfind(|r| r["path"] == "/api/chat")
        .expect("a chat request")["body"]
        .clone()
}

/// No `FIT_MISPREDICTED` finding on any diagnosis of the tray's snapshot.
fn mispredictions(app: &App) -> Vec<Value> {
    let s = status(app);
    s["diagnoses"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["findings"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["code"] == "FIT_MISPREDICTED")
        .collect()
}

#[test]
fn picker_predictions_hold_after_loading_and_the_choice_reaches_the_request() {
    let Some((_lock, bins)) =
        start("picker_predictions_hold_after_loading_and_the_choice_reaches_the_request")
    else {
        return;
    };
    // A pinned context, so every model is predicted (and loaded) at 16384 tokens on the
    // simulator's 12 GiB GPU; nothing is warmed at start (the harness turns re-warming off).
    let app = launch(
        &bins,
        200.0,
        &Launch {
            extra_config: "\n[model.load]\nnum_ctx = 16384\n".into(),
            ..Launch::default()
        },
    );
    let rows = picker_rows(&app);
    eprintln!("picker before loading: {rows:#}");
    // 1. Fits: qwen3:8b on the empty GPU. Thinking off first.
    assert_eq!(rows["qwen3:8b"]["fit"], "fits on the GPU", "{rows}");
    assert_eq!(rows["qwen3:8b"]["think"], true, "thinking is on by default");
    let renders = "return Number(document.getElementById('models-list').dataset.renders || 0);";
    let before = app.js(renders).expect("renders").as_u64().unwrap_or(0);
    app.js(
        "document.querySelector('#models-list li[data-model=\"qwen3:8b\"] .model-think-toggle').click();",
    )
    .expect("thinking off");
    // The checkbox flips at once; wait for the render of the tray's answer.
    wait_for(
        "thinking off",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let done = app.js(renders)?.as_u64().unwrap_or(0) > before;
            Ok((done && picker_rows(&app)["qwen3:8b"]["think"] == false).then_some(()))
        },
    )
    .expect("thinking off shown");
    show_row(&app, "qwen3:8b");
    shot(&app, "picker");
    let body = chat_with(&app, "qwen3:8b", "Hello qwen");
    assert_eq!(body["model"], "qwen3:8b");
    assert_eq!(body["think"], false, "thinking off → think:false: {body}");
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["role"], "system", "the persona first: {body}");
    assert!(
        messages[0]["content"].as_str().unwrap_or("").len() > 20,
        "{body}"
    );
    assert_eq!(body["options"]["num_ctx"], 16384, "{body}");
    let (size, vram) = ps_of(&app, "qwen3:8b").expect("qwen3 loaded");
    assert_eq!(size, vram, "predicted on the GPU, loaded on the GPU");
    let rows = picker_rows(&app);
    assert_eq!(rows["qwen3:8b"]["fit"], "loaded, on the GPU", "{rows}");
    assert_eq!(mispredictions(&app), Vec::<Value>::new());

    // 2. Needs an unload: qwen2.5:7b beside the loaded qwen3:8b.
    let fit = rows["qwen2.5:7b"]["fit"].as_str().unwrap_or("").to_owned();
    assert!(
        fit.starts_with("needs another model unloaded (qwen3:8b)"),
        "{rows}"
    );
    show_row(&app, "qwen2.5:7b");
    shot(&app, "picker-needs-unload");
    let body = chat_with(&app, "qwen2.5:7b", "Hello qwen2.5");
    assert_eq!(body["model"], "qwen2.5:7b");
    assert!(body.get("think").is_none(), "not a thinking model: {body}");
    let (size, vram) = ps_of(&app, "qwen2.5:7b").expect("qwen2.5:7b loaded");
    assert_eq!(size, vram, "fits once qwen3 is unloaded");
    assert_eq!(ps_of(&app, "qwen3:8b"), None, "Ollama unloaded qwen3:8b");
    assert_eq!(mispredictions(&app), Vec::<Value>::new());

    // 3. Spills: qwen2.5:14b at 16384 does not fit even alone; the picker says how much goes
    // to the CPU and the largest context that would fit.
    let rows = picker_rows(&app);
    let fit = rows["qwen2.5:14b"]["fit"].as_str().unwrap_or("").to_owned();
    assert_eq!(rows["qwen2.5:14b"]["tone"], "warn", "{rows}");
    let pct: u64 = fit
        .strip_prefix("≈ ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a CPU share: {fit}"));
    assert!(fit.contains("largest context that fits is "), "{fit}");
    show_row(&app, "qwen2.5:14b");
    shot(&app, "picker-spills");
    let body = chat_with(&app, "qwen2.5:14b", "Hello big qwen");
    assert_eq!(body["model"], "qwen2.5:14b");
    let (size, vram) = ps_of(&app, "qwen2.5:14b").expect("qwen2.5:14b loaded");
    let cpu = 100 * (size - vram) / size.max(1);
    eprintln!("qwen2.5:14b predicted ≈ {pct} % on the CPU, loaded with {cpu} %");
    assert!(
        vram < size && cpu.abs_diff(pct) <= 20,
        "predicted ≈ {pct} %, loaded {cpu} %"
    );
    // The watchdog compared every prediction with the load, and none disagreed.
    assert_eq!(mispredictions(&app), Vec::<Value>::new());
    let rows = picker_rows(&app);
    assert!(
        rows["qwen2.5:14b"]["fit"]
            .as_str()
            .unwrap_or("")
            .starts_with("loaded: "),
        "{rows}"
    );
    assert_eq!(
        rows["qwen2.5:14b"]["tone"], "warn",
        "partly on the CPU is no good news"
    );
    shot(&app, "picker-after-loads");

    // gpt-oss takes a level and says it cannot stop thinking.
    let oss = app
        .js(
            "const li = document.querySelector('#models-list li[data-model=\"gpt-oss:20b\"]');\
             return {level: li.querySelector('.model-think-level').value,\
                     note: li.querySelector('.model-think-note').textContent,\
                     toggle: li.querySelector('.model-think-toggle') !== null};",
        )
        .expect("gpt-oss row");
    assert_eq!(oss["level"], "medium", "{oss}");
    assert!(
        oss["note"]
            .as_str()
            .unwrap_or("")
            .contains("cannot be turned off"),
        "{oss}"
    );
    assert_eq!(oss["toggle"], false, "no off switch for gpt-oss: {oss}");
    show_row(&app, "gpt-oss:20b");
    shot(&app, "picker-gpt-oss");

    // "Watch this one" moves the watchdog: the status strip follows.
    app.js(
        "document.querySelector('#models-list li[data-model=\"gemma3:4b\"] .model-watch').click();",
    )
    .expect("Watch this one");
    wait_for(
        "gemma3 watched",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let m = app.js("return document.getElementById('model').textContent;")?;
            Ok((status(&app)["model"] == "gemma3:4b"
                && m.as_str().unwrap_or("").contains("gemma3:4b"))
            .then_some(()))
        },
    )
    .expect("the strip names the watched model");
    let note = app
        .js("return document.querySelector('#models-panel .model-note').textContent;")
        .expect("note");
    assert!(
        note.as_str()
            .unwrap_or("")
            .contains("until Yollayah restarts"),
        "{note}"
    );
}

/// The registry model the simulator can fetch (about 523 MB).
const PULLABLE: &str = "qwen3:0.6b";

/// Launches with the simulator downloading at `bytes_per_second`, and opens the model list
/// and its "Pull a model…" field.
fn launch_for_pull(bins: &Bins, bytes_per_second: f64) -> App {
    let toml = sim::scenario(
        DEFAULT_SCENARIO,
        &[
            ("tokens_per_second", "200.0"),
            ("pull_bytes_per_second", &format!("{bytes_per_second:.1}")),
        ],
    );
    let sim = Sim::start(&bins.sim, &toml).expect("start ollama-sim");
    let app = App::launch(bins, sim, &Launch::default()).expect("launch");
    app.wait_ready().expect("the chat window boots");
    let toggle = app.wd.find("#models-toggle").expect("Models");
    app.wd.click(&toggle).expect("open Models");
    wait_for(
        "the model list",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            let n =
                app.js("return document.querySelectorAll('#models-list li.model-row').length;")?;
            Ok((n.as_u64() > Some(0)).then_some(()))
        },
    )
    .expect("rows");
    app
}

/// Types `name` in the pull field (opening it first when closed) and presses Enter.
fn pull(app: &App, name: &str) {
    let hidden = app
        .js("return document.getElementById('pull-form').hidden;")
        .expect("form");
    if hidden == true {
        app.wd
            .click(&app.wd.find("#pull-open").expect("Pull a model…"))
            .expect("open the field");
    }
    let input = app.wd.find("#pull-name").expect("name field");
    app.wd.send_keys(&input, name).expect("type");
    app.wd.send_keys(&input, ENTER).expect("Enter");
}

/// The pull section as shown: `{running, completed, total, figures, phase, result, tone, chip}`.
fn pull_view(app: &App) -> Result<Value> {
    app.js(
        "const p = document.getElementById('pull-progress'), r = document.getElementById('pull-result');\
         return {running: !p.hidden, completed: Number(p.dataset.completed || 0),\
                 total: Number(p.dataset.total || 0),\
                 bar: document.getElementById('pull-bar').value,\
                 figures: document.getElementById('pull-figures').textContent,\
                 phase: document.getElementById('pull-phase').textContent,\
                 result: r.hidden ? null : r.textContent, tone: r.dataset.tone || null,\
                 chip: document.getElementById('pull-chip').hidden ? null : document.getElementById('pull-chip').textContent};",
    )
}

fn wait_result(app: &App, what: &str, timeout: Duration) -> Value {
    let mut last = Value::Null;
    let got = wait_for(what, timeout, Duration::from_millis(50), || {
        let v = pull_view(app)?;
        last = v.clone();
        Ok((v["running"] == false && v["result"].is_string()).then_some(v))
    });
    got.unwrap_or_else(|e| {
        let button = app
            .js("const b = document.getElementById('pull-cancel'); return {text: b.textContent, disabled: b.disabled};")
            .unwrap_or(Value::Null);
        let sim = app.sim.stats().map(|s| s["pulls"].clone()).unwrap_or(Value::Null);
        panic!("{e:?}: last view {last}; cancel button {button}; simulator pulls {sim}")
    })
}

fn listed_models(app: &App) -> Vec<String> {
    app.js("return [...document.querySelectorAll('#models-list li.model-row')].map(li => li.dataset.model);")
        .expect("rows")
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pull_progress_advances_then_cancel_stops_it_and_errors_are_ollamas_words() {
    let Some((_lock, bins)) =
        start("pull_progress_advances_then_cancel_stops_it_and_errors_are_ollamas_words")
    else {
        return;
    };
    // ~523 MB at 10 MB/s: about 50 s, far longer than the test lets it run.
    let app = launch_for_pull(&bins, 10e6);
    assert!(!listed_models(&app).contains(&PULLABLE.to_owned()));
    pull(&app, PULLABLE);

    let mut seen = std::collections::BTreeSet::new();
    let mut last = Value::Null;
    wait_for(
        "the pull to advance",
        Duration::from_secs(30),
        Duration::from_millis(40),
        || {
            let v = pull_view(&app)?;
            if v["running"] == true && v["completed"].as_u64() > Some(0) {
                seen.insert(v["completed"].as_u64().unwrap_or(0));
                last = v;
            }
            // A few percent in, so the screenshot shows a bar that has moved.
            Ok(
                (seen.len() >= 3 && last["completed"].as_u64() > Some(522_653_767 / 25))
                    .then_some(()),
            )
        },
    )
    .expect("progress advances");
    eprintln!("distinct progress values seen: {seen:?}; last view {last}");
    let figures = last["figures"].as_str().unwrap_or("");
    assert!(
        figures.contains(" / ") && figures.contains("MiB/s") && figures.contains("left"),
        "bytes, rate and time left: {figures:?}"
    );
    assert!(
        last["phase"].as_str().unwrap_or("").starts_with("layer "),
        "the layer being downloaded: {last}"
    );
    assert!(
        last["chip"].as_str().unwrap_or("").contains('%'),
        "the header chip: {last}"
    );
    assert_eq!(app.sim.stats().expect("stats")["pulls"]["active"], 1);
    shot(&app, "pull-progress");

    // The pull is the tray's: a reloaded page (as a reopened window) picks it up where it is.
    let before = last["completed"].as_u64().unwrap_or(0);
    app.js("window.__beforeReload = true; setTimeout(() => location.reload(), 0); return true;")
        .expect("reload");
    let resumed = wait_for(
        "the reloaded page to show the running pull",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            // While the page reloads a script may fail: such probes count as "not yet".
            let v = app
                .js(
                    "if (window.__beforeReload || document.readyState !== 'complete') return null;\
                     const p = document.getElementById('pull-progress');\
                     const c = document.getElementById('pull-chip');\
                     return p && c && {running: !p.hidden, completed: Number(p.dataset.completed || 0),\
                                       chip: c.hidden ? null : c.textContent};",
                )
                .unwrap_or(Value::Null);
            Ok((v["running"] == true && v["completed"].as_u64() > Some(before)).then_some(v))
        },
    )
    .expect("resumed");
    assert!(
        resumed["chip"].as_str().unwrap_or("").contains('%'),
        "the header chip shows the running pull: {resumed}"
    );
    let toggle = app.wd.find("#models-toggle").expect("Models");
    app.wd.click(&toggle).expect("open Models");
    // The rows arrive after the list opens and push the section down: click once they are in.
    wait_for(
        "the model list after the reload",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            let busy = app.js(
                "const l = document.getElementById('models-list');\
                 return l.getAttribute('aria-busy') !== 'false' || !l.querySelector('li.model-row');",
            )?;
            Ok((busy == false).then_some(()))
        },
    )
    .expect("rows");

    app.js(
        "document.getElementById('pull-cancel').scrollIntoView({block: 'center'}); return true;",
    )
    .expect("scroll");
    app.wd
        .click(&app.wd.find("#pull-cancel").expect("Cancel"))
        .expect("cancel");
    let clicked = wait_for(
        "the Cancel click to register",
        Duration::from_secs(3),
        Duration::from_millis(20),
        || {
            let v = app.js(
                "const b = document.getElementById('pull-cancel'), r = document.getElementById('pull-result');\
                 return (b.disabled && b.textContent === 'Cancelling…') || !r.hidden;",
            )?;
            Ok((v == true).then_some(()))
        },
    );
    if clicked.is_err() {
        shot(&app, "pull-cancel-missed");
        panic!(
            "the click on Cancel did not register: {}",
            pull_view(&app).unwrap_or_default()
        );
    }
    let v = wait_result(&app, "the cancelled pull", Duration::from_secs(10));
    assert_eq!(v["tone"], "info", "{v}");
    assert!(
        v["result"].as_str().unwrap_or("").contains("cancelled"),
        "the UI says cancelled: {v}"
    );
    // The simulator sees the download's connection close.
    let pulls = wait_for(
        "the simulator to see the pull end",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let p = app.sim.stats()?["pulls"].clone();
            Ok((p["active"] == 0).then_some(p))
        },
    )
    .expect("pull ended on the server");
    assert_eq!(pulls["abandoned"], 1, "{pulls}");
    assert_eq!(pulls["completed"], 0, "{pulls}");
    let models = app.sim.stats().expect("stats");
    eprintln!("sim after cancel: {}", models["pulls"]);
    // Nothing was added: reopen the list to reload it.
    for _ in 0..2 {
        app.wd
            .click(&app.wd.find("#models-toggle").expect("Models"))
            .expect("toggle");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !listed_models(&app).contains(&PULLABLE.to_owned()),
        "no model from a cancelled pull"
    );
    shot(&app, "pull-cancelled");

    // A name the registry does not have: Ollama's words, as they are.
    pull(&app, "nope:1b");
    let v = wait_result(&app, "the failed pull", Duration::from_secs(10));
    assert_eq!(v["tone"], "error", "{v}");
    assert!(
        v["result"]
            .as_str()
            .unwrap_or("")
            .ends_with("pull model manifest: file does not exist"),
        "{v}"
    );

    // A download that breaks part-way.
    app.sim
        .fault(json!({"kind": "broken_pull", "after_percent": 3}))
        .expect("fault");
    pull(&app, PULLABLE);
    let v = wait_result(&app, "the broken pull", Duration::from_secs(30));
    assert_eq!(v["tone"], "error", "{v}");
    assert!(
        v["result"]
            .as_str()
            .unwrap_or("")
            .ends_with("max retries exceeded: unexpected EOF"),
        "{v}"
    );
    let pulls = app.sim.stats().expect("stats")["pulls"].clone();
    assert_eq!(pulls["failed"], 2, "{pulls}");
    shot(&app, "pull-error");
}

#[test]
fn a_complete_pull_adds_the_model_with_its_fit_prediction() {
    let Some((_lock, bins)) = start("a_complete_pull_adds_the_model_with_its_fit_prediction")
    else {
        return;
    };
    // ~523 MB at 100 MB/s: about 5 s.
    let app = launch_for_pull(&bins, 100e6);
    let before = listed_models(&app);
    assert!(!before.contains(&PULLABLE.to_owned()), "{before:?}");
    pull(&app, PULLABLE);
    let v = wait_result(&app, "the pull to complete", Duration::from_secs(60));
    assert_eq!(v["tone"], "good", "{v}");
    assert!(
        v["result"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("Pulled {PULLABLE}")),
        "{v}"
    );
    let row = wait_for(
        "the new model in the list",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            let r = app.js(&format!(
                "const li = document.querySelector('#models-list li.model-row[data-model=\"{PULLABLE}\"]');\
                 return li && {{fit: li.querySelector('.model-fit').textContent,\
                               fresh: li.dataset.fresh ?? null,\
                               tone: li.querySelector('.model-fit').dataset.tone,\
                               facts: li.querySelector('.model-facts').textContent}};"
            ))?;
            Ok((!r.is_null()).then_some(r))
        },
    )
    .expect("listed");
    assert_eq!(
        listed_models(&app).len(),
        before.len() + 1,
        "one model more"
    );
    assert!(
        !row["fit"].as_str().unwrap_or("").is_empty()
            && !row["fit"]
                .as_str()
                .unwrap_or("")
                .starts_with("no prediction"),
        "with its fit prediction: {row}"
    );
    assert_eq!(row["fresh"], "true", "the new model is marked: {row}");
    assert_eq!(
        app.sim.stats().expect("stats")["pulls"]["completed"],
        1,
        "the simulator finished it"
    );
    shot(&app, "pull-done");
}

/// The root cause of the lost-Warm-click flake, pinned in the real webview. WebKit forgets a
/// click when the node pressed leaves the document before the release
/// (`EventHandler::nodeWillBeRemoved`), and on a button that node is its text. The strip used
/// to set `textContent` on every snapshot (every tick), which replaces that text node even
/// when the text is the same. Here a snapshot is made to land exactly between press and
/// release: replacing the text node loses the click; changing it in place (what `ui/dom.js`
/// does) keeps it. Then the real strip is checked to leave its nodes alone across ticks.
#[test]
fn a_tick_between_press_and_release_does_not_lose_the_click() {
    let Some((_lock, bins)) = start("a_tick_between_press_and_release_does_not_lose_the_click")
    else {
        return;
    };
    let app = launch(&bins, 200.0, &Launch::default());
    // A stand-in button (clicking the real Warm would load the model), rewritten at mousedown
    // the way a tick rewrites the strip.
    let probe = |mode: &str| -> u64 {
        app.js(&format!(
            "document.getElementById('probe')?.remove();\
             const b = document.createElement('button'); b.id = 'probe'; b.type = 'button';\
             b.textContent = 'Warm'; b.dataset.clicks = '0';\
             document.querySelector('.strip-row').append(b);\
             b.addEventListener('mousedown', () => {{\
               if ('{mode}' === 'replace') b.textContent = 'Warm'; else b.firstChild.data = 'Warm';\
             }});\
             b.addEventListener('click', () => {{ b.dataset.clicks = String(Number(b.dataset.clicks) + 1); }});\
             return true;"
        ))
        .expect("probe button");
        let b = app.wd.find("#probe").expect("probe");
        app.wd.click(&b).expect("click probe");
        // The click (if any) is dispatched before WebDriver answers; allow a frame anyway.
        let clicks = wait_for(
            "the probe's click count",
            Duration::from_secs(2),
            Duration::from_millis(50),
            || {
                let n =
                    app.js("return Number(document.getElementById('probe').dataset.clicks);")?;
                Ok(n.as_u64().filter(|n| *n > 0))
            },
        );
        clicks.unwrap_or(0)
    };
    assert_eq!(
        probe("replace"),
        0,
        "WebKit drops the click when the pressed text node is replaced"
    );
    assert_eq!(
        probe("in_place"),
        1,
        "an in-place text change keeps the click"
    );
    app.js("document.getElementById('probe').remove(); return true;")
        .expect("remove probe");

    // The real strip: ten snapshots later, the nodes under the pointer are the same nodes.
    app.js(
        "window.__snaps = 0;\
         window.__TAURI__.event.listen('yollayah://snapshot', () => { window.__snaps += 1; });\
         const ids = ['warm', 'badge-text', 'model', 'vram'];\
         window.__nodes = ids.map((id) => document.getElementById(id).firstChild);\
         window.__check = () => ids.every((id, i) => document.getElementById(id).firstChild === window.__nodes[i]);\
         return true;",
    )
    .expect("record nodes");
    wait_for(
        "ten snapshots",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let n = app.js("return window.__snaps;")?;
            Ok(n.as_u64().filter(|n| *n >= 10))
        },
    )
    .expect("snapshots arrive");
    assert_eq!(
        app.js("return window.__check();").expect("check"),
        Value::Bool(true),
        "a snapshot that changes nothing replaces no node of the strip"
    );
}

#[test]
fn ollama_down_says_how_to_start_it_and_retry_checks_now() {
    let Some((_lock, bins)) = start("ollama_down_says_how_to_start_it_and_retry_checks_now") else {
        return;
    };
    let port = yollayah_webview_e2e::http::free_port().expect("free port");
    let listen = format!("127.0.0.1:{port}");
    // Nothing listens there yet, and the next tick is a minute away: only Retry can notice
    // Ollama coming back within this test.
    let app = launch(
        &bins,
        200.0,
        &Launch {
            ollama_url: Some(format!("http://{listen}")),
            tick_ms: Some(60_000),
            ..Launch::default()
        },
    );
    let read = || {
        app.js(
            "const d = document.getElementById('down');\
             return {hidden: d.hidden, title: document.getElementById('down-title').textContent,\
                     text: d.textContent, status: document.getElementById('down-status').textContent,\
                     retry: document.getElementById('down-retry').disabled,\
                     page: document.body.innerText, vram: document.getElementById('vram').textContent,\
                     badge: document.getElementById('badge-text').textContent,\
                     send: document.getElementById('send').disabled};",
        )
    };
    let down = wait_for(
        "the Ollama-down panel",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let d = read()?;
            Ok((d["hidden"] == false).then_some(d))
        },
    )
    .expect("down panel");
    assert_eq!(down["title"], "Ollama is not running", "{down}");
    assert_eq!(down["badge"], "down");
    let text = collapse_ws(down["text"].as_str().unwrap_or(""));
    for needle in [
        "ollama serve",
        "sudo systemctl start ollama",
        listen.as_str(),
        "Retry",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text:?}");
    }
    // No raw error chain and no "no GPU" anywhere on the page.
    let page = down["page"].as_str().unwrap_or("");
    for raw in [
        "error sending request",
        "tcp connect",
        "os error",
        "Connection refused",
        "no GPU",
    ] {
        assert!(!page.contains(raw), "{raw:?} on the page: {page:?}");
    }
    assert_eq!(down["vram"], "");
    assert_eq!(down["send"], true, "sending is off while down");

    // Retry while it is still down: checked now, and said so.
    let retry = app.wd.find("#down-retry").expect("Retry");
    app.wd.click(&retry).expect("click Retry");
    let still = wait_for(
        "the still-down answer",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            let d = read()?;
            Ok((d["status"]
                .as_str()
                .unwrap_or("")
                .starts_with("Still not answering")
                && d["retry"] == false)
                .then_some(d))
        },
    )
    .expect("Retry answered");
    assert_eq!(still["hidden"], false);
    shot(&app, "ollama-down");

    // Ollama starts; Retry finds it at once.
    let toml = sim::scenario(DEFAULT_SCENARIO, &[("tokens_per_second", "200.0")]);
    let _ollama = Sim::start_at(&bins.sim, &toml, &listen).expect("start ollama-sim on the port");
    let retry = app.wd.find("#down-retry").expect("Retry");
    let t0 = Instant::now();
    app.wd.click(&retry).expect("click Retry");
    let up = wait_for(
        "the panel to go",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let d = read()?;
            Ok((d["hidden"] == true && d["badge"] != "down").then_some(d))
        },
    )
    .expect("back up after Retry");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "well before the next tick"
    );
    assert_ne!(up["vram"], "no GPU", "{up}");
}

#[test]
fn status_strip_gives_the_model_name_and_sparkline_room() {
    let Some((_lock, bins)) = start("status_strip_gives_the_model_name_and_sparkline_room") else {
        return;
    };
    let app = launch(&bins, 200.0, &Launch::default());
    warm_to_gpu(&app);
    let m = app
        .js(
            "const m = document.getElementById('model'); const s = document.getElementById('spark');\
             const w = document.getElementById('warm');\
             return {name: m.textContent, cut: m.scrollWidth > m.clientWidth, spark: s.getBoundingClientRect().width,\
                     warmRight: w.getBoundingClientRect().right, width: document.documentElement.clientWidth};",
        )
        .expect("strip layout");
    assert_eq!(m["name"], MODEL);
    assert_eq!(m["cut"], false, "the model name is shown whole: {m}");
    assert!(
        m["spark"].as_f64().unwrap_or(0.0) >= 120.0,
        "the sparkline has room: {m}"
    );
    assert!(
        m["warmRight"].as_f64().unwrap_or(f64::MAX) <= m["width"].as_f64().unwrap_or(0.0),
        "Warm stays inside the window: {m}"
    );
    shot(&app, "status-strip");
    // The narrowest the window may be made (min_inner_size 320): still whole, still room.
    let narrow = app
        .js(
            "document.body.style.width = '320px';\
             const m = document.getElementById('model'); const s = document.getElementById('spark');\
             const w = document.getElementById('warm');\
             const r = {cut: m.scrollWidth > m.clientWidth, spark: s.getBoundingClientRect().width,\
                        warmRight: w.getBoundingClientRect().right};\
             document.body.style.width = ''; return r;",
        )
        .expect("narrow layout");
    assert_eq!(narrow["cut"], false, "{narrow}");
    assert!(narrow["spark"].as_f64().unwrap_or(0.0) >= 120.0, "{narrow}");
    assert!(
        narrow["warmRight"].as_f64().unwrap_or(f64::MAX) <= 320.0,
        "{narrow}"
    );
}

/// About `tokens` simulator tokens of a plain reasoning trace (no Markdown: a trace is shown
/// as text).
fn long_trace(tokens: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while sim_tokens(&s) < tokens {
        s.push_str(&format!(
            "Step {i}: the user wants the long answer, so I check the {} and the {} before I go on. ",
            words(3),
            words(2)
        ));
        i += 1;
    }
    s
}

#[test]
fn streaming_cost_of_thinking_then_a_4000_token_answer_in_the_real_webview() {
    let Some((_lock, bins)) =
        start("streaming_cost_of_thinking_then_a_4000_token_answer_in_the_real_webview")
    else {
        return;
    };
    let trace = long_trace(1500);
    let toml = sim::scenario(
        DEFAULT_SCENARIO,
        &[
            ("tokens_per_second", "200.0"),
            ("thinking", &format!("{trace:?}")),
        ],
    );
    let sim = Sim::start(&bins.sim, &toml).expect("start ollama-sim");
    let app = App::launch(
        &bins,
        sim,
        &Launch {
            model: Some("qwen3:8b".into()),
            ..Launch::default()
        },
    )
    .expect("launch");
    app.wait_ready().expect("the chat window boots");
    let reply = long_reply(4000);
    app.sim.set_reply(&reply).expect("set reply");
    warm_to_gpu(&app);
    app.js("window.__yollayahPerf.reset(); return true;")
        .expect("reset counters");
    let t0 = Instant::now();
    send(&app, "Think it through, then write the long one");
    // A live trace taller than its box follows its end, as the log follows the reply.
    let live = wait_for(
        "the live trace to overflow its box",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let t = app.js(
                "const m = [...document.querySelectorAll('#log .msg.assistant')].pop();\
                 const b = m && m.querySelector('.thinking.live .thinking-text');\
                 return b && !b.hidden && b.scrollHeight > b.clientHeight + 100\
                   ? {top: b.scrollTop, height: b.clientHeight, total: b.scrollHeight} : null;",
            )?;
            Ok((!t.is_null()).then_some(t))
        },
    )
    .expect("a long live trace");
    let (top, height, total) = (
        live["top"].as_f64().unwrap_or(0.0),
        live["height"].as_f64().unwrap_or(0.0),
        live["total"].as_f64().unwrap_or(0.0),
    );
    assert!(
        top + height >= total - 24.0 - 40.0,
        "the live trace does not follow its end: {live}"
    );
    wait_done(&app, Duration::from_secs(120));
    let wall = t0.elapsed();
    let perf = app
        .js("const p = window.__yollayahPerf;\
             return {deltas: p.deltas, deltaChars: p.deltaChars, thinkings: p.thinkings,\
                     thinkingChars: p.thinkingChars, handlerMs: p.handlerMs, flushMs: p.flushMs,\
                     frames: p.frames, lastDone: p.lastDone, handler: p.samples('handler'),\
                     thinking: p.samples('thinking'), flush: p.samples('flush'),\
                     thinkingFlush: p.samples('thinking-flush')};")
        .expect("perf counters");
    let samples = |k: &str| -> Vec<f64> {
        perf[k]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let n = |k: &str| perf[k].as_u64().unwrap_or(0);
    let f = |k: &str| perf[k].as_f64().unwrap_or(f64::NAN);
    let answer = summarize(&samples("handler"));
    let thinking = summarize(&samples("thinking"));
    let both = summarize(&[samples("handler"), samples("thinking")].concat());
    let flush = summarize(&samples("flush"));
    let thinking_flush = summarize(&samples("thinkingFlush"));
    let events = n("deltas") + n("thinkings");
    let total = f("handlerMs") + f("flushMs");
    let trace_chars = trace.encode_utf16().count() as u64;
    let reply_chars = reply.encode_utf16().count() as u64;
    let row = |name: &str, s: &Summary| {
        format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            s.n,
            ms(s.p50),
            ms(s.p95),
            ms(s.max),
            ms(s.sum)
        )
    };
    let report = format!(
        "A thinking model (qwen3:8b in the simulator) streams a {tc}-character trace, then a \
         {rc}-character answer ({sent} tokens in all by `eval_count`), at 200 tok/s; wall time from Enter to the \
         rendered final message {wall:.1} s.\n\n\
         | main thread, per event | count | p50 ms | p95 ms | max ms | total ms |\n|---|---:|---:|---:|---:|---:|\n\
         {a}{t}{b}{fl}{tf}\n\
         - main-thread time in Yollayah's code per delta (handlers + flushes over all {events} thinking and \
         answer deltas): **{per:.3} ms** on average; target ≤ 4 ms\n\
         - dropped: thinking {tg} of {tc} characters received, answer {ag} of {rc} (nothing dropped: {ok})\n\
         - flushes: {frames}, {dpf:.1} deltas per flush\n",
        tc = trace_chars,
        rc = reply_chars,
        sent = perf["lastDone"]["eval_count"],
        wall = wall.as_secs_f64(),
        a = row("answer delta handler", &answer),
        t = row("thinking delta handler", &thinking),
        b = row("any delta handler", &both),
        fl = row("rAF flush, per frame (all)", &flush),
        tf = row(
            "rAF flush, per frame, frames that wrote thinking text",
            &thinking_flush
        ),
        per = total / events.max(1) as f64,
        tg = n("thinkingChars"),
        ag = n("deltaChars"),
        ok = n("thinkingChars") == trace_chars && n("deltaChars") == reply_chars,
        frames = n("frames"),
        dpf = events as f64 / f("frames").max(1.0),
    );
    eprintln!("{report}");
    let dir = out_dir("");
    std::fs::create_dir_all(&dir).expect("out dir");
    let path = if dir.ends_with("docs/") || dir.ends_with("docs") {
        dir.join("benchmarks-webview.md")
    } else {
        dir.join("benchmarks-webview-figures.md")
    };
    write_figures_named(&path, "thinking-figures", &report);

    assert_eq!(
        n("thinkingChars"),
        trace_chars,
        "every thinking delta reached the page"
    );
    assert_eq!(
        n("deltaChars"),
        reply_chars,
        "every answer delta reached the page"
    );
    assert!(n("thinkings") > 0 && n("deltas") > 0, "{perf}");
    assert!(
        f("frames") < events as f64,
        "batched: frames {} vs deltas {events}",
        f("frames")
    );
}

/// Makes a 1600 × 1200 JPEG in the page (a canvas) and delivers it as the user would: a paste
/// into the message box (a `paste` event carrying a `File`), or with `drop`, dropped on the
/// window (a `drop` event carrying it). Where the engine does not carry a synthetic event's
/// data, the next way is tried, the file picker's input last: the handlers are the same
/// (`ui/images.js`). Returns which way was taken.
fn paste_image(app: &App, drop: bool) -> String {
    let r = app
        .wd
        .execute(
            "const dropFirst = arguments[0];\
             const c = document.createElement('canvas'); c.width = 1600; c.height = 1200;\
             const g = c.getContext('2d');\
             const grad = g.createLinearGradient(0, 0, 1600, 1200);\
             grad.addColorStop(0, '#2f6fd0'); grad.addColorStop(1, '#f0a33a');\
             g.fillStyle = grad; g.fillRect(0, 0, 1600, 1200);\
             g.fillStyle = '#ffffff'; g.beginPath(); g.arc(800, 600, 300, 0, 7); g.fill();\
             const b = atob(c.toDataURL('image/jpeg', 0.9).split(',')[1]);\
             const u = new Uint8Array(b.length); for (let i = 0; i < b.length; i++) u[i] = b.charCodeAt(i);\
             const file = new File([u], 'photo.jpg', {type: 'image/jpeg'});\
             const dt = new DataTransfer(); dt.items.add(file);\
             const input = document.getElementById('input'); input.focus();\
             if (!dropFirst) {\
               const paste = new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true});\
               if (!input.dispatchEvent(paste)) return 'paste';\
             }\
             const drop = new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true});\
             if (!document.getElementById('log').dispatchEvent(drop)) return 'drop';\
             const picker = document.getElementById('attach-file');\
             picker.files = dt.files; picker.dispatchEvent(new Event('change'));\
             return 'file input';",
            &[json!(drop)],
        )
        .expect("deliver an image");
    let way = r.as_str().unwrap_or("").to_owned();
    eprintln!("image delivered by: {way}");
    way
}

/// The composer's attachments: thumbnail sources, still-busy count, and the note.
fn attachments(app: &App) -> Result<Value> {
    app.js(
        "return {chips: [...document.querySelectorAll('#attachments .attach-chip')].map(c => ({\
                   busy: c.classList.contains('busy'), src: c.querySelector('img').getAttribute('src') || '',\
                   title: c.title})),\
                 note: document.getElementById('attach-note').hidden ? '' : document.getElementById('attach-note').textContent,\
                 send_disabled: document.getElementById('send').disabled};",
    )
}

#[test]
fn an_image_pasted_is_sent_to_a_vision_model_and_shown_again_from_history() {
    let Some((_lock, bins)) =
        start("an_image_pasted_is_sent_to_a_vision_model_and_shown_again_from_history")
    else {
        return;
    };
    let app = launch(
        &bins,
        200.0,
        &Launch {
            model: Some("gemma3:4b".into()),
            ..Launch::default()
        },
    );
    let way = paste_image(&app, false);
    assert_eq!(way, "paste", "the paste handler took the image");
    let ready = wait_for(
        "the thumbnail",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let a = attachments(&app)?;
            Ok((a["chips"].as_array().is_some_and(|c| c.len() == 1)
                && a["chips"][0]["busy"] == false)
                .then_some(a))
        },
    )
    .expect("attached");
    let chip = &ready["chips"][0];
    let src = chip["src"].as_str().unwrap_or("");
    assert!(src.starts_with("data:image/jpeg;base64,"), "{chip}");
    // A thumbnail, not the image: the full-size bytes stay in the app.
    assert!(src.len() < 30_000, "thumbnail of {} chars", src.len());
    assert_eq!(
        chip["title"], "photo.jpg (1600 × 1200, sent as 1120 × 840)",
        "{chip}"
    );
    assert_eq!(ready["note"], "", "{ready}");
    // An image alone may be sent: Send is on with an empty message box.
    assert_eq!(ready["send_disabled"], false, "{ready}");

    // A second one dropped on the window, then removed: it is not sent.
    let way = paste_image(&app, true);
    assert_eq!(way, "drop", "the drop handler took the image");
    wait_for(
        "the second thumbnail",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let a = attachments(&app)?;
            Ok((a["chips"].as_array().is_some_and(|c| c.len() == 2)
                && a["chips"][1]["busy"] == false)
                .then_some(a))
        },
    )
    .expect("two attached");
    shot(&app, "image-attached");
    app.wd
        .click(
            &app.wd
                .find("#attachments .attach-chip:last-child .attach-remove")
                .expect("the second image's remove button"),
        )
        .expect("remove it");
    let left = attachments(&app).expect("attachments");
    assert_eq!(
        left["chips"].as_array().map(Vec::len),
        Some(1),
        "removed: {left}"
    );
    send(&app, "What is in this picture?");
    assert!(
        app.js("return document.querySelectorAll('#attachments .attach-chip').length;")
            .expect("chips")
            == 0,
        "the composer is emptied"
    );
    let done = wait_done(&app, Duration::from_secs(60));
    let reply = last_reply(&app).expect("reply");
    assert!(
        reply["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("I see 1 image."),
        "the simulator got one image: {reply} {done}"
    );
    let sent = app
        .js(
            "const m = [...document.querySelectorAll('#log .msg.user')].pop();\
             return {thumbs: [...m.querySelectorAll('img.msg-thumb')].map(i => i.getAttribute('src').slice(0, 23)),\
                     text: m.querySelector('.body').textContent};",
        )
        .expect("sent message");
    assert_eq!(sent["thumbs"], json!(["data:image/jpeg;base64,"]), "{sent}");
    assert_eq!(sent["text"], "What is in this picture?");
    shot(&app, "image-sent");

    // The request on the wire: the user message carries the image, base64 of a JPEG
    // downscaled to 1120 px.
    let chats: Vec<Value> = app
        .sim
        .requests()
        .expect("recorded requests")
        .into_iter()
        .filter(|r| r["path"] == "/api/chat")
        .collect();
    let last = chats.last().expect("a chat request");
    let user = last["body"]["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .expect("the user message");
    assert_eq!(user["content"], "What is in this picture?");
    let images = user["images"].as_array().expect("images on the wire");
    assert_eq!(images.len(), 1, "{user}");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(images[0].as_str().expect("a string"))
        .expect("base64");
    assert_eq!(&bytes[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    assert!(
        bytes.len() > 2_000 && bytes.len() < 400_000,
        "{} bytes",
        bytes.len()
    );

    // Reload the page and open the conversation from history: the thumbnail is back.
    app.js("window.__beforeReload = true; setTimeout(() => location.reload(), 0); return true;")
        .expect("reload");
    wait_for(
        "the window to boot again",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let r = app
                .js(
                    "return !window.__beforeReload && document.readyState === 'complete' \
                     && !!document.getElementById('chats-toggle') \
                     && document.getElementById('badge')?.textContent !== '…';",
                )
                .unwrap_or(Value::Bool(false));
            Ok((r == true).then_some(()))
        },
    )
    .expect("reloaded");
    app.wd
        .click(&app.wd.find("#chats-toggle").expect("Chats"))
        .expect("open Chats");
    wait_for(
        "the conversation in the list",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let r = app.js("return !!document.querySelector('#chats-list button[data-id]');")?;
            Ok((r == true).then_some(()))
        },
    )
    .expect("a conversation");
    app.wd
        .click(
            &app.wd
                .find("#chats-list button[data-id]")
                .expect("the item"),
        )
        .expect("open it");
    let loaded = wait_for(
        "the stored image",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let r = app.js(
                "const i = document.querySelector('#log .msg.user img.msg-thumb');\
                 return i && {src: i.getAttribute('src').slice(0, 23), title: i.title,\
                              loaded: i.complete && i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight};",
            )?;
            Ok((!r.is_null() && r["loaded"] == true).then_some(r))
        },
    )
    .expect("the image is shown again");
    assert_eq!(loaded["src"], "data:image/jpeg;base64,", "{loaded}");
    assert_eq!(loaded["title"], "1120 × 840", "{loaded}");
    assert_eq!(
        (loaded["w"].clone(), loaded["h"].clone()),
        (json!(192), json!(144))
    );
}

#[test]
fn attaching_on_a_model_without_vision_is_refused_naming_a_vision_model() {
    let Some((_lock, bins)) =
        start("attaching_on_a_model_without_vision_is_refused_naming_a_vision_model")
    else {
        return;
    };
    let app = launch(&bins, 200.0, &Launch::default());
    paste_image(&app, false);
    let refused = wait_for(
        "the refusal",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let a = attachments(&app)?;
            Ok((a["note"] != "").then_some(a))
        },
    )
    .expect("refused");
    assert_eq!(
        refused["note"],
        format!("{MODEL} cannot see images; gemma3:4b can: switch to it to send images"),
        "{refused}"
    );
    assert_eq!(refused["chips"], json!([]), "nothing attached: {refused}");
    // The attach button says so too, without opening a file dialog.
    app.js("document.getElementById('attach-note').hidden = true; return true;")
        .expect("hide the note");
    app.wd
        .click(&app.wd.find("#attach").expect("the attach button"))
        .expect("click attach");
    let again = wait_for(
        "the refusal again",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let a = attachments(&app)?;
            Ok((a["note"] != "").then_some(a))
        },
    )
    .expect("refused again");
    assert!(
        again["note"].as_str().unwrap_or("").contains("gemma3:4b"),
        "{again}"
    );
    shot(&app, "image-refused");
    let with_images = app
        .sim
        .requests()
        .expect("recorded requests")
        .into_iter()
        .filter(|r| r["path"] == "/api/chat" && r["body"].to_string().contains("\"images\""))
        .count();
    assert_eq!(with_images, 0, "no image was sent");
}
