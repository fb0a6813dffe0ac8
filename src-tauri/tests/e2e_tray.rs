//! End to end, on a real (virtual) desktop, with the real binary in demo mode (its in-process
//! `ollama-sim` stands in for Ollama and the GPU): the tray registers with the
//! StatusNotifierWatcher; its dbusmenu shows the model at "100% GPU" after the start-up warm;
//! "Unload model" and "Warm model", clicked over dbusmenu exactly as a tray host would, unload
//! and load the model in the simulator; a staged CPU fallback produces exactly one desktop
//! notification naming the cause (read back from dunst) and its fix the resolution; no WebKit
//! process runs before the chat first opens; "Open chat" starts the chat window's process (and
//! its web processes), Esc in the window ends it, and 2 s later no WebKit process is left;
//! a second "Open chat" starts a new one; the global shortcut (Super+Y, an X11 key grab here)
//! and `yollayah-tray --toggle-chat` each open the chat and, pressed again, close it; the menu
//! opening (AboutToShow, Event "opened") starts the chat hidden and "Open chat" shows that
//! process, while a menu closed unused leaves no chat or WebKit process a few seconds later;
//! "Quit" exits. A second test puts a fake xdg-desktop-portal on the session bus and checks that the
//! tray binds its shortcut there and toggles the chat on the portal's `Activated`. Needs the
//! session from
//! `scripts/e2e/run.sh` (Xvfb, a session bus, the watcher, dunst); skipped unless
//! `YOLLAYAH_E2E=1`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use zbus::wire::{ObjectPath, OwnedObjectPath, OwnedVariant, Variant};

const WATCHER: &str = "org.kde.StatusNotifierWatcher";
const DEADLINE: Duration = Duration::from_secs(60);
const MODEL: &str = "llama3.2:3b";

/// dbusmenu's `(ia{sv}av)`: id, properties, children.
type LayoutNode = (i32, HashMap<String, OwnedVariant>, Vec<OwnedVariant>);

/// One dbusmenu item: id, label (mnemonic underscores removed), enabled.
#[derive(Debug, Clone)]
struct Item {
    id: i32,
    label: String,
    enabled: bool,
}

fn collect(v: &Variant<'_>, out: &mut Vec<Item>) {
    match v {
        Variant::Variant(inner) => collect(inner, out),
        Variant::Structure(s) => {
            let f = s.fields();
            if let (Some(Variant::I32(id)), Some(Variant::Dict(props)), Some(children)) =
                (f.first(), f.get(1), f.get(2))
            {
                let mut item = Item {
                    id: *id,
                    label: String::new(),
                    enabled: true,
                };
                for (k, val) in props.iter() {
                    let val = match val {
                        Variant::Variant(inner) => inner.as_ref(),
                        other => other,
                    };
                    match (k, val) {
                        (Variant::Str(k), Variant::Str(s)) if k.as_str() == "label" => {
                            // GTK mnemonics: `_x` marks a key, `__` is a literal underscore.
                            item.label = s
                                .as_str()
                                .replace("__", "\u{0}")
                                .replace('_', "")
                                .replace('\u{0}', "_");
                        }
                        (Variant::Str(k), Variant::Bool(b)) if k.as_str() == "enabled" => {
                            item.enabled = *b;
                        }
                        _ => {}
                    }
                }
                out.push(item);
                collect(children, out);
            }
        }
        Variant::Array(a) => a.inner().iter().for_each(|c| collect(c, out)),
        _ => {}
    }
}

/// Pids of every descendant of `root` whose command name starts with `prefix`.
fn descendants_named(root: u32, prefix: &str) -> Vec<u32> {
    let mut parent = HashMap::new();
    let mut names = HashMap::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may contain spaces: parse after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        parent.insert(pid, ppid);
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        names.insert(pid, comm.trim().to_owned());
    }
    let is_descendant = |mut pid: u32| {
        while let Some(&pp) = parent.get(&pid) {
            if pp == root {
                return true;
            }
            if pp <= 1 {
                return false;
            }
            pid = pp;
        }
        false
    };
    names
        .iter()
        .filter(|(pid, name)| name.starts_with(prefix) && is_descendant(**pid))
        .map(|(pid, _)| *pid)
        .collect()
}

async fn poll<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A proxy that reads properties afresh on every get: zbus caches them by default and relies on
/// PropertiesChanged signals, which the watcher does not send for its entry list.
async fn uncached(
    conn: &zbus::Connection,
    dest: &str,
    path: &str,
    iface: &str,
) -> zbus::Proxy<'static> {
    zbus::proxy::Builder::new(conn)
        .destination(dest.to_owned())
        .path(path.to_owned())
        .interface(iface.to_owned())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .expect("proxy")
}

fn screenshot(name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let path = dir.join(name);
    let status = std::process::Command::new("import")
        .args(["-window", "root"])
        .arg(&path)
        .status()
        .expect("run import (imagemagick)");
    assert!(status.success(), "screenshot failed");
    eprintln!("screenshot: {}", path.display());
}

/// Reads the menu's items.
async fn menu_items(menu: &zbus::Proxy<'_>) -> Option<Vec<Item>> {
    let (_rev, root): (u32, LayoutNode) = menu
        .call("GetLayout", &(0i32, -1i32, Vec::<String>::new()))
        .await
        .ok()?;
    let mut items = Vec::new();
    for child in &root.2 {
        collect(child, &mut items);
    }
    Some(items)
}

/// Polls the menu until its first item (the status line) satisfies `pred`.
async fn status_line(menu: &zbus::Proxy<'_>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    poll(what, || async {
        let items = menu_items(menu).await?;
        let first = items.first()?.label.clone();
        pred(&first).then_some(first)
    })
    .await
}

async fn click(menu: &zbus::Proxy<'_>, label: &str) {
    let items = menu_items(menu).await.expect("menu layout");
    let id = items
        .iter()
        .find(|i| i.label == label)
        .map(|i| i.id)
        .unwrap_or_else(|| panic!("no {label:?} item in {items:?}"));
    let () = menu
        .call("Event", &(id, "clicked", Variant::from(0i32), 0u32))
        .await
        .unwrap_or_else(|e| panic!("clicking {label:?}: {e}"));
}

/// The menu opening or closing (`kind`: "opened", "closed"), told as tray hosts tell it: on
/// opening `AboutToShow(0)` then `Event(0, "opened")`, on closing `Event(0, "closed")`.
async fn menu_moves(menu: &zbus::Proxy<'_>, kind: &str) {
    if kind == "opened" {
        let _needs_update: bool = menu
            .call("AboutToShow", &(0i32,))
            .await
            .unwrap_or_else(|e| panic!("AboutToShow: {e}"));
    }
    let () = menu
        .call("Event", &(0i32, kind, Variant::from(0i32), 0u32))
        .await
        .unwrap_or_else(|e| panic!("the menu {kind}: {e}"));
}

async fn sim_get(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .expect("json")
}

async fn sim_post(http: &reqwest::Client, url: &str, body: &str) {
    http.post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
}

fn dunstctl(args: &[&str]) -> String {
    let out = std::process::Command::new("dunstctl")
        .args(args)
        .output()
        .expect("run dunstctl");
    assert!(out.status.success(), "dunstctl {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (summary, body) of every notification of ours in dunst's history, oldest first. Shown
/// notifications are moved into the history first (`close-all`).
fn our_notifications() -> Vec<(String, String)> {
    dunstctl(&["close-all"]);
    let history: Value = serde_json::from_str(&dunstctl(&["history"])).expect("history json");
    let field = |n: &Value, k: &str| n[k]["data"].as_str().unwrap_or_default().to_owned();
    let mut out: Vec<(i64, String, String)> = history["data"][0]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| field(n, "appname") == "Yollayah")
        .map(|n| {
            (
                n["id"]["data"].as_i64().unwrap_or_default(),
                field(n, "summary"),
                field(n, "body"),
            )
        })
        .collect();
    out.sort_by_key(|n| n.0);
    out.into_iter().map(|(_, s, b)| (s, b)).collect()
}

fn xdotool(args: &[&str]) -> String {
    let out = std::process::Command::new("xdotool")
        .args(args)
        .output()
        .expect("run xdotool (apt install xdotool)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One app at a time: the tests look for the chat window by its title, and the fake portal of
/// one test would serve the other's tray.
static ONE_APP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until the tray `pid` runs a chat window: its web process, and the window mapped.
async fn chat_opened(pid: u32, after: &str) {
    poll(&format!("a chat web process after {after}"), || async {
        (!descendants_named(pid, "WebKitWebProces").is_empty()).then_some(())
    })
    .await;
    poll(&format!("the chat window mapped after {after}"), || async {
        (!xdotool(&["search", "--onlyvisible", "--name", "^Yollayah$"]).is_empty()).then_some(())
    })
    .await;
}

/// Waits until the tray `pid` runs no chat: no chat process, no WebKit process, no window.
async fn chat_closed(pid: u32, after: &str) {
    poll(&format!("the chat to end after {after}"), || async {
        (descendants_named(pid, "WebKit").is_empty()
            && descendants_named(pid, "yollayah-chat").is_empty())
        .then_some(())
    })
    .await;
    assert!(
        xdotool(&["search", "--onlyvisible", "--name", "^Yollayah$"]).is_empty(),
        "the chat window is still mapped after {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tray_menu_drives_the_real_app() {
    if std::env::var("YOLLAYAH_E2E").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED e2e_tray: needs a desktop session; run it as \
             `scripts/e2e/run.sh cargo test -p yollayah-tray --test e2e_tray` (sets YOLLAYAH_E2E=1)"
        );
        return;
    }
    let _one_at_a_time = ONE_APP.lock().await;
    // Other tests of this session may have notified before: count only this test's.
    let earlier = our_notifications().len();
    let our_notifications = || our_notifications().split_off(earlier);
    let chat_bin =
        std::path::Path::new(env!("CARGO_BIN_EXE_yollayah-tray")).with_file_name("yollayah-chat");
    assert!(
        chat_bin.is_file(),
        "{} is missing: the tray starts it on Open chat (cargo build -p yollayah-chat)",
        chat_bin.display()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_dir = tmp.path().join("run");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    // scripts/e2e/run.sh starts a fresh dunst per session, so its history holds only ours.
    let launched = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_yollayah-tray"))
        .arg("--demo")
        .env("XDG_CONFIG_HOME", tmp.path().join("config"))
        .env("XDG_DATA_HOME", tmp.path().join("data"))
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start yollayah-tray");
    let pid = child.id().expect("child pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let sim = tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("yollayah-tray: demo simulator at ") {
                return url.trim().to_owned();
            }
        }
        panic!("the app ended without announcing its simulator");
    })
    .await
    .expect("demo simulator announced");
    yollayah_core::ollama::client::ensure_crypto_provider();
    let http = reqwest::Client::new();

    let conn = zbus::Connection::session().await.expect("session bus");
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus proxy");
    let watcher = uncached(&conn, WATCHER, "/StatusNotifierWatcher", WATCHER).await;

    // 1. The tray registers with the watcher. The KDE spec types RegisteredSNIEntries as `as`
    //    ("busname/path"); status-notifier-watcher answers `a(ss)` (bus name, path): accept both.
    let (service, item_path) = poll("the tray to register with the watcher", || async {
        let entries: Vec<(String, String)> = match watcher
            .get_property::<Vec<(String, String)>>("RegisteredSNIEntries")
            .await
        {
            Ok(pairs) => pairs,
            Err(_) => watcher
                .get_property::<Vec<String>>("RegisteredSNIEntries")
                .await
                .ok()?
                .into_iter()
                .map(|e| match e.find('/') {
                    Some(i) => (e[..i].to_owned(), e[i..].to_owned()),
                    None => (e, "/StatusNotifierItem".to_owned()),
                })
                .collect(),
        };
        for (svc, path) in entries {
            let Ok(name) = zbus::names::BusName::try_from(svc.as_str()) else {
                continue;
            };
            if dbus.get_connection_unix_process_id(name).await.ok() == Some(pid) {
                return Some((svc, path));
            }
        }
        None
    })
    .await;
    eprintln!("launch → tray registered: {:?}", launched.elapsed());

    // 2. Its menu carries the status line (disabled) and the actions; the start-up warm puts
    //    the model on the (simulated) GPU, and the status line says so.
    let sni = uncached(&conn, &service, &item_path, "org.kde.StatusNotifierItem").await;
    let menu_path: OwnedObjectPath = sni.get_property("Menu").await.expect("Menu property");
    let menu = zbus::Proxy::new(&conn, service.as_str(), menu_path, "com.canonical.dbusmenu")
        .await
        .expect("menu proxy");
    let first = status_line(&menu, "a first verdict in the menu", |l| {
        l.starts_with(MODEL) && !l.contains("checking")
    })
    .await;
    eprintln!(
        "launch → first verdict ({first:?}): {:?}",
        launched.elapsed()
    );
    let gpu = status_line(&menu, "the model at 100% GPU", |l| {
        l.starts_with(MODEL) && l.contains("100% GPU")
    })
    .await;
    eprintln!("menu status line: {gpu}");
    let items = menu_items(&menu).await.expect("layout");
    assert!(!items[0].enabled, "the status line must be informational");
    let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
    for wanted in [
        "No problems found",
        "Open chat",
        "Warm model",
        "Unload model",
        "Mute alerts",
        "Start at login",
        "Open config",
        "Quit",
    ] {
        assert!(
            labels.contains(&wanted),
            "menu lacks {wanted:?}: {labels:?}"
        );
    }
    let stats = sim_get(&http, &format!("{sim}/__sim/stats")).await;
    assert_eq!(stats["load_count"], 1, "start-up warm: {stats}");

    // 3. Idle, before the chat first opens: no WebKit process of any kind.
    let webkit = descendants_named(pid, "WebKit");
    assert!(
        webkit.is_empty(),
        "the idle app already runs WebKit processes: {webkit:?}"
    );

    // 4. "Unload model" and "Warm model" act on the simulator.
    click(&menu, "Unload model").await;
    status_line(&menu, "the model unloaded", |l| l.contains("not loaded")).await;
    let ps = sim_get(&http, &format!("{sim}/api/ps")).await;
    assert_eq!(ps["models"], serde_json::json!([]), "{ps}");
    click(&menu, "Warm model").await;
    status_line(&menu, "the model warm again", |l| l.contains("100% GPU")).await;
    let stats = sim_get(&http, &format!("{sim}/__sim/stats")).await;
    assert_eq!(stats["load_count"], 2, "warm from the menu: {stats}");
    assert_eq!(stats["loaded"][0]["name"], MODEL, "{stats}");

    // 5. "Open chat" opens the window (a web process appears).
    let opened = Instant::now();
    click(&menu, "Open chat").await;
    let web = poll("a WebKitWebProcess after Open chat", || async {
        let found = descendants_named(pid, "WebKitWebProces");
        (!found.is_empty()).then_some(found)
    })
    .await;
    let window = poll("the chat window to be mapped", || async {
        let id = xdotool(&["search", "--onlyvisible", "--name", "^Yollayah$"]);
        (!id.is_empty()).then(|| id.lines().next().unwrap_or_default().to_owned())
    })
    .await;
    eprintln!(
        "Open chat → window mapped: {:?} (web processes {web:?}, window {window})",
        opened.elapsed()
    );
    // The picture only: let the page paint and get its first snapshot.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let chat_web = descendants_named(pid, "WebKit");
    screenshot("tray-chat-gpu.png");

    // 6. A CPU fallback: exactly one notification, naming the cause.
    sim_post(
        &http,
        &format!("{sim}/__sim/fault"),
        &format!(r#"{{"kind":"ps_lies_gpu","model":"{MODEL}"}}"#),
    )
    .await;
    let cpu = status_line(&menu, "the CPU verdict", |l| !l.contains("100% GPU")).await;
    eprintln!("menu status line under the fault: {cpu}");
    poll("the alert on screen", || async {
        let n: u32 = dunstctl(&["count", "displayed"]).trim().parse().ok()?;
        (n > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    screenshot("tray-cpu-alert.png");
    let diagnosis = menu_items(&menu).await.expect("layout")[1].label.clone();
    eprintln!("menu diagnosis line: {diagnosis}");
    assert_ne!(diagnosis, "No problems found");
    // Core's short advice for a lost GPU backend (details stay in the window).
    assert!(
        diagnosis.contains("Restart Ollama"),
        "menu text names the fix: {diagnosis}"
    );
    // Let a few more ticks pass (2 s each): a flapping policy would alert again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let alerts = our_notifications();
    eprintln!("notifications: {alerts:?}");
    assert_eq!(
        alerts.len(),
        1,
        "exactly one alert per incident: {alerts:?}"
    );
    let (summary, body) = &alerts[0];
    assert!(summary.contains(MODEL), "{summary}");
    let text = format!("{summary} {body}").to_lowercase();
    assert!(
        text.contains("cpu") && text.contains("lost the gpu"),
        "the alert must name the cause: {summary} / {body}"
    );

    // 7. The fix: one resolution notification, and the menu back on the GPU.
    sim_post(&http, &format!("{sim}/__sim/clear"), "").await;
    status_line(&menu, "back on the GPU", |l| l.contains("100% GPU")).await;
    let all = poll("the resolution notification", || async {
        let all = our_notifications();
        (all.len() >= 2).then_some(all)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = {
        let later = our_notifications();
        if later.len() > all.len() { later } else { all }
    };
    eprintln!("notifications after the fix: {all:?}");
    assert_eq!(all.len(), 2, "one alert and one resolution: {all:?}");
    assert!(
        all.iter().any(|(s, _)| s.contains("back on the GPU")),
        "no resolution notice: {all:?}"
    );

    // 8. Esc in the chat window closes it, and its web processes end.
    xdotool(&["windowfocus", "--sync", &window]);
    xdotool(&["key", "--clearmodifiers", "Escape"]);
    poll("the web processes to end after Esc", || async {
        descendants_named(pid, "WebKitWebProces")
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(
        xdotool(&["search", "--onlyvisible", "--name", "^Yollayah$"]).is_empty(),
        "the chat window is still mapped"
    );
    // 2 s after the close, no WebKit process of any kind is left (the network process too):
    // the chat window's process is gone, and the tray never ran WebKit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = descendants_named(pid, "WebKit");
    assert!(
        left.is_empty(),
        "WebKit processes survive the chat: {left:?}"
    );
    // Nor did any escape by being re-parented away from the tray.
    let escaped: Vec<u32> = chat_web
        .iter()
        .copied()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(
        escaped.is_empty(),
        "the chat's web processes live on: {escaped:?}"
    );

    // 8b. "Open chat" again starts a new chat process, which also ends with its window.
    click(&menu, "Open chat").await;
    poll("a web process for the second chat", || async {
        (!descendants_named(pid, "WebKitWebProces").is_empty()).then_some(())
    })
    .await;
    let window = poll("the second chat window to be mapped", || async {
        let id = xdotool(&["search", "--onlyvisible", "--name", "^Yollayah$"]);
        (!id.is_empty()).then(|| id.lines().next().unwrap_or_default().to_owned())
    })
    .await;
    // Esc is the page's own key handler: let the page load first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    xdotool(&["windowfocus", "--sync", &window]);
    xdotool(&["key", "--clearmodifiers", "Escape"]);
    poll("the second chat's web processes to end", || async {
        descendants_named(pid, "WebKit").is_empty().then_some(())
    })
    .await;

    // 8c. The global shortcut: no portal on this bus, so an X11 grab. Super+Y opens the chat,
    //     and again closes it (its process ends, not reported as a crash).
    let pressed = Instant::now();
    xdotool(&["key", "--clearmodifiers", "super+y"]);
    chat_opened(pid, "Super+Y").await;
    eprintln!("Super+Y → window mapped: {:?}", pressed.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;
    xdotool(&["key", "--clearmodifiers", "super+y"]);
    chat_closed(pid, "Super+Y again").await;

    // 8d. `yollayah-tray --toggle-chat` does the same through the single instance, and exits.
    for (what, closes) in [("--toggle-chat", false), ("--toggle-chat again", true)] {
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_yollayah-tray"))
            .arg("--toggle-chat")
            .env("XDG_CONFIG_HOME", tmp.path().join("config"))
            .env("XDG_DATA_HOME", tmp.path().join("data"))
            .env("XDG_RUNTIME_DIR", &run_dir)
            .status();
        let status = tokio::time::timeout(DEADLINE, status)
            .await
            .expect("--toggle-chat returns")
            .expect("run --toggle-chat");
        assert!(status.success(), "{what}: {status}");
        if closes {
            chat_closed(pid, what).await;
        } else {
            chat_opened(pid, what).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    // 8e. Opening the menu, as a tray host says it (AboutToShow(0), Event(0, "opened")), starts
    //     the chat process hidden; "Open chat" then shows that same process's window, which
    //     outlives the menu's closing and its grace.
    menu_moves(&menu, "opened").await;
    let prestarted = poll("a chat process pre-started by the menu", || async {
        let found = descendants_named(pid, "yollayah-chat");
        (found.len() == 1).then(|| found[0])
    })
    .await;
    poll("the pre-started chat's web process", || async {
        (!descendants_named(pid, "WebKitWebProces").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        xdotool(&["search", "--onlyvisible", "--name", "^Yollayah$"]).is_empty(),
        "the pre-started chat window is on screen before Open chat"
    );
    click(&menu, "Open chat").await;
    menu_moves(&menu, "closed").await;
    chat_opened(pid, "Open chat with the chat pre-started").await;
    assert_eq!(
        descendants_named(pid, "yollayah-chat"),
        vec![prestarted],
        "Open chat must show the pre-started chat, not start another"
    );
    // Past the grace after the menu closed (3 s), the shown chat stays.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let window = xdotool(&["search", "--onlyvisible", "--name", "^Yollayah$"]);
    let window = window.lines().next().unwrap_or_default().to_owned();
    assert!(
        !window.is_empty() && descendants_named(pid, "yollayah-chat") == vec![prestarted],
        "the shown chat ended after the menu closed"
    );
    xdotool(&["windowfocus", "--sync", &window]);
    xdotool(&["key", "--clearmodifiers", "Escape"]);
    chat_closed(pid, "Esc in the pre-started chat").await;

    // 8f. The menu opened and closed without "Open chat": a reopening within the grace keeps
    //     the pre-started chat, and a few seconds after the last close no chat process and no
    //     WebKit process is left; its window never showed.
    menu_moves(&menu, "opened").await;
    let unused = poll("a chat process pre-started by the menu", || async {
        let found = descendants_named(pid, "yollayah-chat");
        (found.len() == 1).then(|| found[0])
    })
    .await;
    menu_moves(&menu, "closed").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    menu_moves(&menu, "opened").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        descendants_named(pid, "yollayah-chat"),
        vec![unused],
        "a menu reopened within the grace must keep the pre-started chat"
    );
    menu_moves(&menu, "closed").await;
    chat_closed(pid, "the menu closed without Open chat").await;

    let notices = our_notifications();
    assert!(
        !notices
            .iter()
            .any(|(s, _)| s.contains("crashed") || s.contains("shortcut")),
        "closing by shortcut is not a crash, and the shortcut was available: {notices:?}"
    );

    // 9. "Quit" ends the app cleanly.
    click(&menu, "Quit").await;
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("app did not exit after Quit")
        .expect("wait for app");
    assert!(exit.success(), "app exited with {exit}");
}

const PORTAL: &str = "org.freedesktop.portal.Desktop";
const PORTAL_PATH: &str = "/org/freedesktop/portal/desktop";
const SHORTCUTS: &str = "org.freedesktop.portal.GlobalShortcuts";

type Vardict = HashMap<String, OwnedVariant>;

fn string_in(options: &Vardict, key: &str) -> String {
    match options.get(key).map(|v| &**v) {
        Some(Variant::Str(s)) => s.as_str().to_owned(),
        other => panic!("{key}: expected a string, got {other:?}"),
    }
}

/// The portal's answer to a call: its Response signal on the request path the caller chose.
async fn respond(conn: &zbus::Connection, caller: &str, request: &str, results: Vardict) {
    conn.emit_signal(
        Some(caller),
        request,
        "org.freedesktop.portal.Request",
        "Response",
        &(0u32, results),
    )
    .await
    .expect("emit Response");
}

/// A stand-in for xdg-desktop-portal's GlobalShortcuts, as the portal frontend speaks it:
/// `CreateSession` and `BindShortcuts` return a request path and answer with a Response
/// signal there. Each bind is reported as (session, shortcuts); every other call is refused.
async fn fake_portal(
    conn: zbus::Connection,
    bound: tokio::sync::mpsc::UnboundedSender<(String, Vec<(String, Vardict)>)>,
) {
    use futures_util::StreamExt;
    let mut calls = zbus::MessageStream::from(&conn);
    while let Some(Ok(msg)) = calls.next().await {
        let header = msg.header();
        if header.message_type() != zbus::message::Type::MethodCall {
            continue;
        }
        let caller = header.sender().map(|s| s.to_string()).unwrap_or_default();
        let path_id = caller.trim_start_matches(':').replace('.', "_");
        let member = header.member().map(|m| m.to_string()).unwrap_or_default();
        let ours = header.path().map(|p| p.as_str()) == Some(PORTAL_PATH)
            && header.interface().map(|i| i.as_str()) == Some(SHORTCUTS);
        match member.as_str() {
            "CreateSession" if ours => {
                let (options,): (Vardict,) = msg.body().deserialize().expect("CreateSession args");
                let request = format!(
                    "{PORTAL_PATH}/request/{path_id}/{}",
                    string_in(&options, "handle_token")
                );
                let session = format!(
                    "{PORTAL_PATH}/session/{path_id}/{}",
                    string_in(&options, "session_handle_token")
                );
                let handle = ObjectPath::try_from(request.as_str()).expect("request path");
                conn.reply(&header, &handle).await.expect("reply");
                let results = HashMap::from([(
                    "session_handle".to_owned(),
                    OwnedVariant::try_from(Variant::from(session.as_str())).expect("variant"),
                )]);
                respond(&conn, &caller, &request, results).await;
            }
            "BindShortcuts" if ours => {
                let (session, shortcuts, _parent, options): (
                    OwnedObjectPath,
                    Vec<(String, Vardict)>,
                    String,
                    Vardict,
                ) = msg.body().deserialize().expect("BindShortcuts args");
                let request = format!(
                    "{PORTAL_PATH}/request/{path_id}/{}",
                    string_in(&options, "handle_token")
                );
                let handle = ObjectPath::try_from(request.as_str()).expect("request path");
                conn.reply(&header, &handle).await.expect("reply");
                // What the desktop reports back: the shortcuts with the trigger it chose.
                let described: Vec<(String, HashMap<String, OwnedVariant>)> = shortcuts
                    .iter()
                    .map(|(id, _)| {
                        let d = OwnedVariant::try_from(Variant::from("Meta+Y")).expect("variant");
                        (
                            id.clone(),
                            HashMap::from([("trigger_description".to_owned(), d)]),
                        )
                    })
                    .collect();
                let results = HashMap::from([(
                    "shortcuts".to_owned(),
                    OwnedVariant::try_from(Variant::from(described)).expect("variant"),
                )]);
                respond(&conn, &caller, &request, results).await;
                let _ = bound.send((session.to_string(), shortcuts));
            }
            _ => {
                let _ = conn
                    .reply_error(
                        &header,
                        "org.freedesktop.DBus.Error.UnknownMethod",
                        &format!("the fake portal has no {member}"),
                    )
                    .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_shortcut_toggles_the_chat() {
    if std::env::var("YOLLAYAH_E2E").as_deref() != Ok("1") {
        eprintln!("SKIPPED e2e_tray portal: needs the session of scripts/e2e/run.sh");
        return;
    }
    let _one_at_a_time = ONE_APP.lock().await;
    let portal = zbus::Connection::session().await.expect("session bus");
    portal
        .request_name(PORTAL)
        .await
        .expect("own the portal's name");
    let (bound_tx, mut bound_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(fake_portal(portal.clone(), bound_tx));

    let tmp = tempfile::tempdir().expect("tempdir");
    let run_dir = tmp.path().join("run");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_yollayah-tray"))
        .arg("--demo")
        .env("XDG_CONFIG_HOME", tmp.path().join("config"))
        .env("XDG_DATA_HOME", tmp.path().join("data"))
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start yollayah-tray");
    let pid = child.id().expect("child pid");

    // The tray binds the configured shortcut (the default, Super+Y) with the portal.
    let (session, shortcuts) = tokio::time::timeout(DEADLINE, bound_rx.recv())
        .await
        .expect("the tray binds a shortcut with the portal")
        .expect("bind reported");
    eprintln!("bound on {session}: {shortcuts:?}");
    assert_eq!(shortcuts.len(), 1, "{shortcuts:?}");
    let (id, props) = &shortcuts[0];
    assert_eq!(id, "toggle-chat");
    assert_eq!(string_in(props, "preferred_trigger"), "LOGO+y");
    assert!(!string_in(props, "description").is_empty());

    let (portal, session) = (&portal, &session);
    let activate = |shortcut: &'static str| async move {
        portal
            .emit_signal(
                None::<&str>,
                PORTAL_PATH,
                SHORTCUTS,
                "Activated",
                &(
                    ObjectPath::try_from(session.as_str()).expect("session path"),
                    shortcut,
                    0u64,
                    HashMap::<String, OwnedVariant>::new(),
                ),
            )
            .await
            .expect("emit Activated");
    };
    // Activated opens the chat; Activated again closes it.
    activate("toggle-chat").await;
    chat_opened(pid, "the portal's Activated").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    activate("toggle-chat").await;
    chat_closed(pid, "the portal's second Activated").await;
    // An activation of a shortcut the tray does not own changes nothing.
    activate("someone-else").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        descendants_named(pid, "yollayah-chat").is_empty(),
        "another shortcut's activation opened the chat"
    );

    // SIGTERM ends the app as Quit does.
    let killed = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("app did not exit after SIGTERM")
        .expect("wait for app");
    assert!(exit.success(), "app exited with {exit}");
    server.abort();
    let _ = portal.release_name(PORTAL).await;
}

/// Starts the tray (not in demo mode, whose files are thrown away at exit; its home is `home`,
/// and Ollama is absent) as if in a Wayland session (no X11 grab) with no portal on the bus,
/// and waits until it says the shortcut is not available. Returns the tray to stop.
async fn start_without_a_shortcut_route(home: &Path) -> tokio::process::Child {
    let run_dir = home.join("run");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_yollayah-tray"))
        .env("YOLLAYAH_OLLAMA_URL", "http://127.0.0.1:9")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env("XDG_SESSION_TYPE", "wayland")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start yollayah-tray");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("the global shortcut is not available") {
                assert!(
                    line.contains("no global shortcuts portal") && line.contains("not an X11"),
                    "says why: {line}"
                );
                return;
            }
        }
        panic!("the tray ended without saying the shortcut is not available");
    })
    .await
    .expect("the tray reports the missing shortcut");
    // Keep draining its log, so the tray never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

async fn stop(mut child: tokio::process::Child) {
    let pid = child.id().expect("pid");
    let killed = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("app did not exit after SIGTERM")
        .expect("wait for app");
    assert!(exit.success(), "app exited with {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_shortcut_route_is_said_once() {
    if std::env::var("YOLLAYAH_E2E").as_deref() != Ok("1") {
        eprintln!("SKIPPED e2e_tray no-route: needs the session of scripts/e2e/run.sh");
        return;
    }
    let _one_at_a_time = ONE_APP.lock().await;
    let shortcut_notices = || {
        our_notifications()
            .into_iter()
            .filter(|(s, _)| s.contains("shortcut"))
            .collect::<Vec<_>>()
    };
    let before = shortcut_notices().len();
    // Two starts of one home: told at the first, not again at the second (the notice is
    // remembered in $XDG_STATE_HOME/yollayah).
    let home = tempfile::tempdir().expect("tempdir");
    let child = start_without_a_shortcut_route(home.path()).await;
    let told = poll("the shortcut notice", || async {
        let all = shortcut_notices();
        (all.len() > before).then_some(all)
    })
    .await;
    stop(child).await;
    let (summary, body) = told.last().cloned().unwrap_or_default();
    eprintln!("shortcut notice: {summary} / {body}");
    assert!(summary.contains("Super+Y"), "{summary}");
    assert!(body.contains("yollayah-tray --toggle-chat"), "{body}");

    let child = start_without_a_shortcut_route(home.path()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(child).await;
    assert!(
        home.path().join("state/yollayah/shortcut-notice").is_file(),
        "the notice is remembered"
    );
    assert_eq!(
        shortcut_notices().len(),
        told.len(),
        "the notice is shown once, not at every start"
    );
}
