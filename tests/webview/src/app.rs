//! One launch of the real app: a private `tauri-driver` on free ports, the app started by it
//! (through WebKitWebDriver) with its chat window open, isolated config/data/runtime dirs, and
//! pointed at a [`Sim`]. Dropping it ends the session, the driver and the simulator.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result, io};
use crate::sim::Sim;
use crate::webdriver::WebDriver;
use crate::{http, wait_for};

/// How to launch.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Ask GTK (hence WebKitGTK's `prefers-color-scheme`) for the dark variant.
    pub dark: bool,
    /// Extra `config.toml` text appended after the harness's own.
    pub extra_config: String,
    /// The chat model (`[model] name`); `llama3.2:3b` when `None`.
    pub model: Option<String>,
    /// Where the app looks for Ollama instead of the simulator's URL (e.g. a port where nothing
    /// listens yet, to see the app with Ollama down).
    pub ollama_url: Option<String>,
    /// The watchdog tick in ms (250 when `None`): a long one shows what only a "check now" does.
    pub tick_ms: Option<u64>,
}

/// Paths of the programs under test.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `yollayah-chat` (run `--standalone`: the chat window with the core in its own process,
    /// reached through the same socket as from the tray).
    pub chat: PathBuf,
    /// `ollama-sim`.
    pub sim: PathBuf,
    /// `tauri-driver`.
    pub driver: PathBuf,
    /// The repository root.
    pub repo: PathBuf,
}

impl Bins {
    /// Finds the binaries: `YOLLAYAH_CHAT_BIN`, `OLLAMA_SIM_BIN`, `TAURI_DRIVER` when set, else
    /// the target dir this test binary lives in (`target/debug`), and `tauri-driver` on PATH or
    /// in `~/.cargo/bin`.
    pub fn locate() -> Result<Bins> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let repo = repo.canonicalize().unwrap_or(repo);
        // target/debug/deps/<test binary> → target/debug
        let profile_dir = std::env::current_exe()
            .map_err(io("current_exe"))?
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .ok_or_else(|| Error::Setup("cannot find the target dir".into()))?;
        let pick = |var: &str, name: &str| -> Result<PathBuf> {
            let p = std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| profile_dir.join(name));
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::Setup(format!(
                    "{} not found: build it first (`cargo build -p {}`) or set {var}",
                    p.display(),
                    if name == "ollama-sim" {
                        "ollama-sim"
                    } else {
                        "yollayah-chat"
                    }
                )))
            }
        };
        let driver = match std::env::var_os("TAURI_DRIVER") {
            Some(p) => PathBuf::from(p),
            None => find_on_path("tauri-driver")
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| PathBuf::from(h).join(".cargo/bin/tauri-driver"))
                        .filter(|p| p.is_file())
                })
                .ok_or_else(|| {
                    Error::Setup(
                        "tauri-driver not found: `cargo install tauri-driver --locked`".into(),
                    )
                })?,
        };
        Ok(Bins {
            chat: pick("YOLLAYAH_CHAT_BIN", "yollayah-chat")?,
            sim: pick("OLLAMA_SIM_BIN", "ollama-sim")?,
            driver,
            repo,
        })
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The app under test with its chat window open.
#[derive(Debug)]
pub struct App {
    /// The WebDriver session on the chat window.
    pub wd: WebDriver,
    /// The simulator the app talks to.
    pub sim: Sim,
    driver: Child,
    _home: tempfile::TempDir,
}

impl App {
    /// Starts tauri-driver and the chat window (`yollayah-chat --standalone`) against `sim`.
    pub fn launch(bins: &Bins, sim: Sim, opts: &Launch) -> Result<App> {
        let home = tempfile::tempdir().map_err(io("tempdir"))?;
        let config = home.path().join("config");
        let data = home.path().join("data");
        let run = home.path().join("run");
        for d in [&config, &data, &run] {
            std::fs::create_dir_all(d.join("yollayah")).map_err(io("create dirs"))?;
        }
        set_private(&run)?;
        let ollama = opts.ollama_url.as_deref().unwrap_or(sim.url()).to_owned();
        // Alerts off (no desktop noise), no automatic re-warming (the Warm test must see its own
        // load), a fast watchdog tick so placement changes reach the badge quickly.
        let toml = format!(
            "[ollama]\nurl = \"{url}\"\n\n[model]\nname = \"{model}\"\n\n[watchdog]\ntick_ms = {tick}\nrewarm = false\n\n[alerts]\nenabled = false\n\n[history]\npath = \"{hist}\"\n{extra}",
            url = ollama,
            tick = opts.tick_ms.unwrap_or(250),
            model = opts.model.as_deref().unwrap_or("llama3.2:3b"),
            hist = data.join("yollayah/history.sqlite3").display(),
            extra = opts.extra_config,
        );
        std::fs::write(config.join("yollayah/config.toml"), toml).map_err(io("write config"))?;

        let port = http::free_port()?;
        let native = http::free_port()?;
        let mut cmd = Command::new(&bins.driver);
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        // Inherited by WebKitWebDriver and from it by the app.
        .env("XDG_CONFIG_HOME", &config)
        .env("XDG_DATA_HOME", &data)
        .env("XDG_RUNTIME_DIR", &run)
        .env("OLLAMA_HOST", &ollama)
        .env("YOLLAYAH_OLLAMA_URL", &ollama)
        .env("YOLLAYAH_GPU_SOURCE", "sim")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        if opts.dark {
            cmd.env("GTK_THEME", "Adwaita:dark");
        } else {
            cmd.env_remove("GTK_THEME");
        }
        let driver = cmd
            .spawn()
            .map_err(io(format!("start {}", bins.driver.display())))?;
        let base = format!("http://127.0.0.1:{port}");
        let mut guard = DriverGuard(Some(driver));
        wait_for(
            "tauri-driver to listen",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                Ok(http::request(
                    "GET",
                    &format!("{base}/status"),
                    None,
                    Duration::from_secs(2),
                )
                .ok())
            },
        )?;
        // tauri-driver answers /status before WebKitWebDriver behind it listens: a first session
        // request can fail at once. Retry briefly; a real failure repeats and is returned.
        let mut last = None;
        let wd = wait_for(
            "a WebDriver session",
            Duration::from_secs(20),
            Duration::from_millis(250),
            || match WebDriver::new_session(&base, &bins.chat, &["--standalone"]) {
                Ok(wd) => Ok(Some(wd)),
                Err(e) => {
                    last = Some(e.to_string());
                    Ok(None)
                }
            },
        )
        .map_err(|e| Error::Setup(format!("{e}; last error: {}", last.unwrap_or_default())))?;
        let driver = guard
            .0
            .take()
            .ok_or_else(|| Error::Setup("driver gone".into()))?;
        Ok(App {
            wd,
            sim,
            driver,
            _home: home,
        })
    }

    /// Runs `script` in the chat window.
    pub fn js(&self, script: &str) -> Result<Value> {
        self.wd.execute(script, &[])
    }

    /// Waits until the UI has booted and shows a snapshot from the app (the badge left "…").
    pub fn wait_ready(&self) -> Result<Value> {
        wait_for(
            "the chat window to show a status snapshot",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                let v = self.badge()?;
                Ok((v["text"] != "…" && v["text"] != "unknown").then_some(v))
            },
        )
    }

    /// The placement badge: `{text, tone, model}`.
    pub fn badge(&self) -> Result<Value> {
        self.js("const b = document.getElementById('badge');\
             return {text: document.getElementById('badge-text').textContent,\
                     tone: b.dataset.tone, model: document.getElementById('model').textContent,\
                     vram: document.getElementById('vram').textContent,\
                     speed: document.getElementById('speed').textContent};")
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self.wd.screenshot()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("screenshot dir"))?;
        }
        std::fs::write(path, png).map_err(io(format!("write {}", path.display())))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.wd.delete();
        stop(&mut self.driver);
    }
}

/// Stops tauri-driver if launching fails half way.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            stop(c);
        }
    }
}

/// SIGTERM first (tauri-driver then stops WebKitWebDriver), SIGKILL if it lingers.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..50 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn set_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("chmod run dir"))
}
