//! The shortcut through the desktop portal's `org.freedesktop.portal.GlobalShortcuts`, spoken
//! with zbus directly (the tray already links zbus 6 for notifications and the tray host
//! check; `ashpd` would add a second zbus major version and its own runtime glue to a process
//! that runs all day).
//!
//! The portal's calls answer through `org.freedesktop.portal.Request::Response` signals on a
//! request object whose path we choose with `handle_token`, so the signal is subscribed before
//! the call. `BindShortcuts` may show the desktop's dialog, where the user confirms or picks
//! another trigger: the configured shortcut is only the `preferred_trigger`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use yollayah_core::shortcut::Accelerator;
use zbus::{DynamicType, ObjectPath, OwnedObjectPath, OwnedVariant, Variant};

use crate::error::{Error, Result};

/// The portal's bus name.
pub const DESTINATION: &str = "org.freedesktop.portal.Desktop";
/// The portal's object.
pub const PATH: &str = "/org/freedesktop/portal/desktop";
/// The interface.
pub const INTERFACE: &str = "org.freedesktop.portal.GlobalShortcuts";
/// Our one shortcut's id in the session.
pub const SHORTCUT_ID: &str = "toggle-chat";
const REQUEST: &str = "org.freedesktop.portal.Request";

/// How long the user may take in the desktop's "bind this shortcut?" dialog.
const DIALOG_TIMEOUT: Duration = Duration::from_secs(600);

type Results = HashMap<String, OwnedVariant>;

fn portal_err(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Shortcut(format!("desktop portal: {what}: {err}"))
}

/// Whether `err` means there is no portal, or one without GlobalShortcuts (the frontend
/// exports an interface only where a backend implements it).
fn absent(err: &zbus::Error) -> bool {
    use zbus::fdo::Error as Fdo;
    match err {
        zbus::Error::MethodError(name, _, _) => [
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
            "org.freedesktop.DBus.Error.UnknownMethod",
            "org.freedesktop.DBus.Error.UnknownObject",
            "org.freedesktop.DBus.Error.UnknownInterface",
        ]
        .contains(&name.as_str()),
        zbus::Error::FDO(e) => matches!(
            **e,
            Fdo::ServiceUnknown(_)
                | Fdo::NameHasNoOwner(_)
                | Fdo::UnknownMethod(_)
                | Fdo::UnknownObject(_)
                | Fdo::UnknownInterface(_)
        ),
        _ => false,
    }
}

fn call_err(method: &str, err: zbus::Error) -> Error {
    if absent(&err) {
        tracing::debug!(%err, "{method}");
        Error::Shortcut("the desktop offers no global shortcuts portal".into())
    } else {
        portal_err(method, err)
    }
}

/// A fresh token for a request or session path element.
fn token(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "yollayah_{kind}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Calls `method` (whose last argument is `options`, carrying `handle_token`) and waits up to
/// `wait` for its Response.
async fn request<B: Serialize + DynamicType>(
    conn: &zbus::Connection,
    portal: &zbus::Proxy<'_>,
    method: &str,
    handle_token: &str,
    body: &B,
    wait: Duration,
) -> Result<Results> {
    let sender = conn
        .unique_name()
        .map(|n| n.trim_start_matches(':').replace('.', "_"))
        .ok_or_else(|| portal_err(method, "no unique name on the bus"))?;
    let path = format!("{PATH}/request/{sender}/{handle_token}");
    let responses = |path: String| async move {
        let proxy = zbus::Proxy::new(conn, DESTINATION, path, REQUEST).await?;
        proxy.receive_signal("Response").await
    };
    let mut stream = responses(path.clone())
        .await
        .map_err(|e| call_err(method, e))?;
    let handle: OwnedObjectPath = portal
        .call(method, body)
        .await
        .map_err(|e| call_err(method, e))?;
    if handle.as_str() != path {
        // A portal older than `handle_token` (before 0.9) picks its own path.
        stream = responses(handle.to_string())
            .await
            .map_err(|e| portal_err(method, e))?;
    }
    let msg = tokio::time::timeout(wait, stream.next())
        .await
        .map_err(|_| portal_err(method, format!("no answer within {wait:?}")))?
        .ok_or_else(|| portal_err(method, "the portal went away"))?;
    let (code, results): (u32, Results) = msg
        .body()
        .deserialize()
        .map_err(|e| portal_err(method, e))?;
    match code {
        0 => Ok(results),
        1 => Err(portal_err(method, "the user declined")),
        _ => Err(portal_err(method, "the desktop refused")),
    }
}

fn text(v: &Variant<'_>) -> Option<String> {
    match v {
        Variant::Str(s) => Some(s.as_str().to_owned()),
        Variant::ObjectPath(p) => Some(p.as_str().to_owned()),
        Variant::Variant(inner) => text(inner),
        _ => None,
    }
}

/// The trigger the desktop reports for our shortcut in `BindShortcuts`' results
/// (`shortcuts`: `a(sa{sv})`, each with a `trigger_description`).
fn trigger_description(results: &Results) -> Option<String> {
    let Variant::Array(list) = &**results.get("shortcuts")? else {
        return None;
    };
    list.iter().find_map(|entry| {
        let Variant::Structure(s) = entry else {
            return None;
        };
        let fields = s.fields();
        if fields.first().and_then(text).as_deref() != Some(SHORTCUT_ID) {
            return None;
        }
        let Some(Variant::Dict(props)) = fields.get(1) else {
            return None;
        };
        props
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some("trigger_description"))
            .and_then(|(_, v)| text(v))
    })
}

/// Binds `accel` through the portal on the session bus and calls `on_activated` whenever the
/// desktop reports the shortcut. Returns the trigger the desktop describes, if it says. Fails
/// fast (within `timeout`) where the portal or its GlobalShortcuts interface is missing.
pub async fn bind(
    accel: Accelerator,
    on_activated: Arc<dyn Fn() + Send + Sync>,
    timeout: Duration,
) -> Result<Option<String>> {
    let conn = tokio::time::timeout(timeout, async {
        zbus::connection::Builder::session()
            .method_timeout(timeout)
            .build()
            .await
    })
    .await
    .map_err(|_| portal_err("session bus", "no answer"))?
    .map_err(|e| portal_err("session bus", e))?;
    bind_on(conn, accel, on_activated, timeout).await
}

/// [`bind`] on a given connection (tests bring their own bus). The connection is kept for as
/// long as the process runs: the portal ends the session when it closes.
pub async fn bind_on(
    conn: zbus::Connection,
    accel: Accelerator,
    on_activated: Arc<dyn Fn() + Send + Sync>,
    timeout: Duration,
) -> Result<Option<String>> {
    let portal = zbus::Proxy::new(&conn, DESTINATION, PATH, INTERFACE)
        .await
        .map_err(|e| portal_err("proxy", e))?;

    let handle = token("session");
    let session_token = token("session");
    let options: HashMap<&str, Variant<'_>> = HashMap::from([
        ("handle_token", Variant::from(handle.as_str())),
        (
            "session_handle_token",
            Variant::from(session_token.as_str()),
        ),
    ]);
    let created = request(
        &conn,
        &portal,
        "CreateSession",
        &handle,
        &(options,),
        timeout,
    )
    .await?;
    let session = created
        .get("session_handle")
        .and_then(|v| text(v))
        .ok_or_else(|| portal_err("CreateSession", "no session_handle in the answer"))?;
    let session_path =
        ObjectPath::try_from(session.as_str()).map_err(|e| portal_err("CreateSession", e))?;

    // Subscribed before binding: the user may press the shortcut as soon as it is bound.
    let mut activated = portal
        .receive_signal("Activated")
        .await
        .map_err(|e| portal_err("Activated", e))?;

    let handle = token("bind");
    let trigger = accel.xdg_trigger();
    let shortcut: HashMap<&str, Variant<'_>> = HashMap::from([
        (
            "description",
            Variant::from("Open or close the Yollayah chat"),
        ),
        ("preferred_trigger", Variant::from(trigger.as_str())),
    ]);
    let options: HashMap<&str, Variant<'_>> =
        HashMap::from([("handle_token", Variant::from(handle.as_str()))]);
    let bound = request(
        &conn,
        &portal,
        "BindShortcuts",
        &handle,
        &(&session_path, vec![(SHORTCUT_ID, shortcut)], "", options),
        DIALOG_TIMEOUT,
    )
    .await?;
    let described = trigger_description(&bound);

    tokio::spawn(async move {
        // Holding the connection keeps the portal session.
        let _conn = conn;
        while let Some(msg) = activated.next().await {
            let body = msg.body();
            let Ok((on, id, _time, _options)) =
                body.deserialize::<(OwnedObjectPath, String, u64, Results)>()
            else {
                continue;
            };
            if id == SHORTCUT_ID && on.as_str() == session {
                on_activated();
            }
        }
        tracing::warn!("the desktop portal went away; the global shortcut stops working");
    });
    Ok(described)
}
