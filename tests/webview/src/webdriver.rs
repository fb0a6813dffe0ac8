//! A small W3C WebDriver client: just the commands the tests use, over [`crate::http`].

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::http;

/// `http::request`'s detail for a connection closed without a byte of answer.
const EMPTY: &str = "empty answer";
/// The W3C key of an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The W3C code point of the Enter key.
pub const ENTER: &str = "\u{E007}";
/// Ordinary commands answer in milliseconds; this only bounds a hung driver.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Starting the app (a debug build plus its web process) can take a while on a busy machine.
const SESSION_TIMEOUT: Duration = Duration::from_secs(90);

/// One WebDriver session on a tauri-driver.
#[derive(Debug)]
pub struct WebDriver {
    base: String,
    session: String,
}

/// An element reference.
#[derive(Debug, Clone)]
pub struct Element(String);

impl WebDriver {
    /// Starts `application` with `args` through tauri-driver at `base` (`http://127.0.0.1:4444`).
    pub fn new_session(base: &str, application: &Path, args: &[&str]) -> Result<Self> {
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "wry",
                    "tauri:options": { "application": application, "args": args }
                }
            }
        });
        let url = format!("{base}/session");
        let v = call("POST", &url, Some(&caps), SESSION_TIMEOUT, "new session")?;
        let session = v["sessionId"]
            .as_str()
            .ok_or_else(|| Error::Http {
                url,
                detail: format!("no sessionId in {v}"),
            })?
            .to_owned();
        Ok(Self {
            base: base.to_owned(),
            session,
        })
    }

    fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        // tauri-driver now and then closes a connection without answering (seen on this
        // machine under load). Reads are safe to repeat; actions (click, keys) are not.
        let repeatable = method == "GET" || path == "/execute/sync";
        let mut tries = 0;
        loop {
            match call(method, &url, body, COMMAND_TIMEOUT, path) {
                Err(Error::Http { detail, .. }) if repeatable && tries < 3 && detail == EMPTY => {
                    tries += 1;
                    eprintln!("webdriver: empty answer to {method} {path}, retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// The first element matching `css`.
    pub fn find(&self, css: &str) -> Result<Element> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        )?;
        element_id(&v).map(Element)
    }

    /// Clicks `el` like a user.
    pub fn click(&self, el: &Element) -> Result<()> {
        self.cmd(
            "POST",
            &format!("/element/{}/click", el.0),
            Some(&json!({})),
        )
        .map(drop)
    }

    /// Types `text` into `el` (use [`ENTER`] for the Enter key).
    pub fn send_keys(&self, el: &Element, text: &str) -> Result<()> {
        self.cmd(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(&json!({ "text": text })),
        )
        .map(drop)
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page; its return value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// A PNG of the window's viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.cmd("GET", "/screenshot", None)?;
        let b64 = v.as_str().ok_or_else(|| Error::Http {
            url: "screenshot".into(),
            detail: "value is not a string".into(),
        })?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| Error::Http {
                url: "screenshot".into(),
                detail: format!("bad base64: {e}"),
            })
    }

    /// The text of an open alert/confirm/prompt, or `None` when there is none.
    pub fn alert_text(&self) -> Result<Option<String>> {
        match self.cmd("GET", "/alert/text", None) {
            Ok(v) => Ok(Some(v.as_str().unwrap_or_default().to_owned())),
            Err(Error::WebDriver { error, .. }) if error == "no such alert" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Ends the session (the driver closes the app).
    pub fn delete(&self) -> Result<()> {
        self.cmd("DELETE", "", None).map(drop)
    }
}

fn call(
    method: &str,
    url: &str,
    body: Option<&Value>,
    timeout: Duration,
    what: &str,
) -> Result<Value> {
    let resp = http::request(method, url, body, timeout)?;
    let v = resp.json(url)?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if resp.status >= 400 || value.get("error").is_some_and(Value::is_string) {
        return Err(Error::WebDriver {
            command: what.to_owned(),
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok(value)
}

fn element_id(v: &Value) -> Result<String> {
    v[ELEMENT_KEY]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Http {
            url: "element".into(),
            detail: format!("no element reference in {v}"),
        })
}
