//! End to end, on a real (virtual) desktop: the built `yollayah-tray` binary registers its tray
//! icon with the StatusNotifierWatcher, exports its menu over `com.canonical.dbusmenu` with the
//! status line in it, starts no webview until "Open chat" is clicked through the menu exactly
//! as a tray host would click it, then opens the chat window (a WebKitWebProcess appears), and
//! exits on "Quit". Needs the session from `scripts/e2e/run.sh` (Xvfb, a session bus, the
//! watcher, dunst); skipped unless `YOLLAYAH_E2E=1`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use zbus::wire::{OwnedObjectPath, OwnedVariant, Variant};

const WATCHER: &str = "org.kde.StatusNotifierWatcher";
const DEADLINE: Duration = Duration::from_secs(60);

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
                            item.label = s.as_str().replace('_', "");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tray_menu_drives_the_real_app() {
    if std::env::var("YOLLAYAH_E2E").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED e2e_tray: needs a desktop session; run it as \
             `scripts/e2e/run.sh cargo test -p yollayah-tray --test e2e_tray` (sets YOLLAYAH_E2E=1)"
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_dir = tmp.path().join("run");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_yollayah-tray"))
        .env("XDG_CONFIG_HOME", tmp.path().join("config"))
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env("RUST_LOG", "info")
        .kill_on_drop(true)
        .spawn()
        .expect("start yollayah-tray");
    let pid = child.id().expect("child pid");

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

    // 2. Its menu carries the status line (disabled) and the actions.
    let sni = uncached(&conn, &service, &item_path, "org.kde.StatusNotifierItem").await;
    let menu_path: OwnedObjectPath = sni.get_property("Menu").await.expect("Menu property");
    let menu = zbus::Proxy::new(&conn, service.as_str(), menu_path, "com.canonical.dbusmenu")
        .await
        .expect("menu proxy");
    let items = poll("the menu to list the status line", || async {
        let (_rev, root): (u32, LayoutNode) = menu
            .call("GetLayout", &(0i32, -1i32, Vec::<String>::new()))
            .await
            .ok()?;
        let mut items = Vec::new();
        for child in &root.2 {
            collect(child, &mut items);
        }
        items
            .iter()
            .any(|i| i.label.starts_with("Waiting for the first reading"))
            .then_some(items)
    })
    .await;
    let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
    let status = items
        .iter()
        .find(|i| i.label.starts_with("Waiting"))
        .expect("status item");
    assert!(
        !status.enabled,
        "the status line must be informational (disabled)"
    );
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

    // 3. Idle: no webview process at all.
    assert!(
        descendants_named(pid, "WebKitWebProces").is_empty(),
        "the idle app already runs a web process"
    );

    // 4. Clicking "Open chat" through dbusmenu opens the chat window.
    let click = |label: &'static str| {
        let id = items.iter().find(|i| i.label == label).map(|i| i.id);
        let menu = &menu;
        async move {
            let id = id.unwrap_or_else(|| panic!("no {label:?} item"));
            let () = menu
                .call("Event", &(id, "clicked", Variant::from(0i32), 0u32))
                .await
                .unwrap_or_else(|e| panic!("clicking {label:?}: {e}"));
        }
    };
    click("Open chat").await;
    let web = poll("a WebKitWebProcess after Open chat", || async {
        let found = descendants_named(pid, "WebKitWebProces");
        (!found.is_empty()).then_some(found)
    })
    .await;
    eprintln!("web processes: {web:?}");
    // Give the page a moment to paint; this only affects the picture, no assertion depends on it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    screenshot("chat-window.png");

    // 5. "Quit" ends the app cleanly.
    click("Quit").await;
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("app did not exit after Quit")
        .expect("wait for app");
    assert!(exit.success(), "app exited with {exit}");
}
