//! Stream relay overhead: how much slower is reading a chat stream through Yollayah's
//! `OllamaClient::chat_stream` (every chunk decoded into a `ChatChunk`) than reading the same
//! bytes raw, and how does it compare with the official Ollama Python client?
//!
//! One `ollama-sim` (in this process, on its own runtime thread, pacing disabled with
//! `tokens_per_second = 1e9`) serves the same N-token reply to three clients, interleaved
//! round by round so that load from other processes hits all three alike:
//! - raw: a plain reqwest client, body as a byte stream, newlines counted;
//! - yollayah: `OllamaClient::chat_stream`, every chunk decoded and its content touched;
//! - python: `bench/relay_python.py` (a long-lived child process driven over stdin), which
//!   times `ollama.Client(host).chat(..., stream=True)` itself.
//!
//! Wall time per stream and the client's own CPU time (the client thread's scheduler run
//! time, so the simulator's work is excluded) are reported; ratios are medians of per-round
//! ratios, which cancels most of the noise of a shared machine.
//!
//! `cargo bench -p yollayah-core --bench relay -- [--tokens N] [--rounds R] [--python PATH]
//! [--script PATH]`. Without a usable Python (`--python`, `$RELAY_PYTHON`, default
//! `python3`) with the `ollama` package, the python column is skipped. The last line is
//! machine-readable (`RELAY key=value …`) for `scripts/bench.sh`.

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::ollama::types::{ChatRequest, KeepAlive, Message};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const MODEL: &str = "llama3.2:3b";
/// Bound on one stream; a healthy one takes well under a second.
const STREAM_DEADLINE: Duration = Duration::from_secs(120);

struct Args {
    tokens: usize,
    rounds: usize,
    python: String,
    script: String,
}

fn parse_args() -> BenchResult<Args> {
    let mut args = Args {
        tokens: 20_000,
        rounds: 12,
        python: std::env::var("RELAY_PYTHON").unwrap_or_else(|_| "python3".to_owned()),
        script: concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/relay_python.py").to_owned(),
    };
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and then one small round is enough to prove the three clients still agree.
    if !std::env::args().any(|a| a == "--bench") {
        args.tokens = 500;
        args.rounds = 1;
    }
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tokens" => args.tokens = it.next().ok_or("--tokens needs a value")?.parse()?,
            "--rounds" => args.rounds = it.next().ok_or("--rounds needs a value")?.parse()?,
            "--python" => args.python = it.next().ok_or("--python needs a value")?,
            "--script" => args.script = it.next().ok_or("--script needs a value")?,
            // `cargo bench` passes `--bench`; other harness flags mean nothing here.
            _ => {}
        }
    }
    if args.tokens == 0 || args.rounds == 0 {
        return Err("--tokens and --rounds must be > 0".into());
    }
    Ok(args)
}

/// Nanoseconds this thread has run on a CPU (first field of `/proc/thread-self/schedstat`).
/// `None` where the kernel does not expose it; the CPU columns are then left out.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Option<Duration>,
    chunks: usize,
}

fn measure<F: std::future::Future<Output = BenchResult<usize>>>(
    rt: &tokio::runtime::Runtime,
    f: F,
) -> BenchResult<Sample> {
    let cpu0 = thread_cpu_ns();
    let t0 = Instant::now();
    // One deadline around the whole stream, the same for every client, instead of reqwest's
    // per-request timeout, which would add a timer poll to every body read of the raw client.
    let chunks = rt.block_on(async { tokio::time::timeout(STREAM_DEADLINE, f).await })??;
    let wall = t0.elapsed();
    let cpu = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) => Some(Duration::from_nanos(b.saturating_sub(a))),
        _ => None,
    };
    Ok(Sample { wall, cpu, chunks })
}

async fn raw_stream(http: &reqwest::Client, url: &str, body: &[u8]) -> BenchResult<usize> {
    let resp = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await?
        .error_for_status()?;
    let mut lines = 0;
    let mut body = std::pin::pin!(resp.bytes_stream());
    while let Some(bytes) = body.next().await {
        lines += memchr::memchr_iter(b'\n', &bytes?).count();
    }
    Ok(lines)
}

async fn yollayah_stream(client: &OllamaClient, req: &ChatRequest) -> BenchResult<usize> {
    let mut stream = client.chat_stream(req).await?;
    let mut chunks = 0;
    let mut content_bytes = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        chunks += 1;
        // Touch the decoded content so the work cannot be optimised away.
        content_bytes += chunk.message.map_or(0, |m| m.content.len());
    }
    std::hint::black_box(content_bytes);
    Ok(chunks)
}

/// The Python client, kept running between rounds so that interpreter start-up and imports
/// are not timed; it reports its own wall and CPU time per stream.
struct PythonClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PythonClient {
    fn start(python: &str, script: &str, url: &str) -> BenchResult<Self> {
        let mut child = Command::new(python)
            .arg(script)
            .arg(url)
            .arg(MODEL)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
        let mut me = PythonClient {
            child,
            stdin,
            stdout,
        };
        let line = me.read_line()?;
        if line.trim() != "ready" {
            return Err(format!("relay_python.py did not start: {line:?}").into());
        }
        Ok(me)
    }

    fn read_line(&mut self) -> BenchResult<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("relay_python.py exited".into());
        }
        Ok(line)
    }

    fn run(&mut self) -> BenchResult<Sample> {
        writeln!(self.stdin, "run")?;
        self.stdin.flush()?;
        let line = self.read_line()?;
        let mut f = line.split_whitespace();
        let mut next = || -> BenchResult<u64> {
            Ok(f.next()
                .ok_or_else(|| format!("bad line {line:?}"))?
                .parse()?)
        };
        let wall = Duration::from_nanos(next()?);
        let cpu = Duration::from_nanos(next()?);
        let chunks = usize::try_from(next()?)?;
        Ok(Sample {
            wall,
            cpu: Some(cpu),
            chunks,
        })
    }
}

impl Drop for PythonClient {
    fn drop(&mut self) {
        // Closing stdin ends its loop; kill in case it is stuck in a request.
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn column(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().map(f).collect::<Option<_>>()?;
    Some(median(&mut v))
}

fn paired_ratio(num: &[Sample], den: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    let mut v: Vec<f64> = num
        .iter()
        .zip(den)
        .map(|(a, b)| Some(f(a)? / f(b)?))
        .collect::<Option<_>>()?;
    Some(median(&mut v))
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "na".to_owned(), |x| format!("{x:.digits$}"))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> BenchResult<()> {
    let args = parse_args()?;

    // The simulator gets its own runtime and thread so the client thread's CPU time is the
    // client's alone.
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let scenario = ollama_sim::Scenario::from_toml_str("tokens_per_second = 1e9\nload_ms = 0\n")?;
    let sim = sim_rt.block_on(ollama_sim::start(scenario))?;
    let reply: Vec<String> = (0..args.tokens).map(|i| format!("w{}", i % 997)).collect();
    sim.set_reply(reply.join(" "));
    let url = sim.url();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = OllamaClient::new(ClientConfig::new(url.clone()))?;
    let req = ChatRequest {
        model: MODEL.to_owned(),
        messages: vec![Message::new("user", "Write a long story.")],
        stream: Some(true),
        keep_alive: Some(KeepAlive::FOREVER),
        options: None,
        think: None,
    };
    let body = serde_json::to_vec(&req)?;
    let chat_url = format!("{url}/api/chat");
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .no_proxy()
        .build()?;

    let mut python = match PythonClient::start(&args.python, &args.script, &url) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!(
                "relay bench: python column skipped ({e}); pass --python PATH to a Python with `pip install ollama`"
            );
            None
        }
    };

    // Warm-up: loads the model and opens every client's connection.
    let expected = args.tokens + 1;
    for _ in 0..2 {
        let r = measure(&rt, raw_stream(&http, &chat_url, &body))?;
        let y = measure(&rt, yollayah_stream(&client, &req))?;
        if r.chunks != expected || y.chunks != expected {
            return Err(format!(
                "expected {expected} chunks, raw read {} and yollayah {}",
                r.chunks, y.chunks
            )
            .into());
        }
        if let Some(p) = python.as_mut() {
            let s = p.run()?;
            if s.chunks != expected {
                return Err(format!("expected {expected} chunks, python read {}", s.chunks).into());
            }
        }
    }

    let (mut raw, mut yol, mut py) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // Alternate the order so neither Rust client always runs right after Python.
        if round % 2 == 0 {
            raw.push(measure(&rt, raw_stream(&http, &chat_url, &body))?);
            yol.push(measure(&rt, yollayah_stream(&client, &req))?);
        } else {
            yol.push(measure(&rt, yollayah_stream(&client, &req))?);
            raw.push(measure(&rt, raw_stream(&http, &chat_url, &body))?);
        }
        if let Some(p) = python.as_mut() {
            py.push(p.run()?);
        }
    }
    drop(python);
    if sim.reload_count() != 0 {
        eprintln!("relay bench: warning: the simulator reloaded the model mid-run");
    }
    sim_rt.block_on(sim.shutdown());

    let wall = |s: &Sample| Some(ms(s.wall));
    let cpu = |s: &Sample| s.cpu.map(ms);
    println!(
        "relay: {} tokens per stream ({} chunks), {} interleaved rounds, medians",
        args.tokens, expected, args.rounds
    );
    println!(
        "{:<10} {:>12} {:>14} {:>12}",
        "client", "wall ms", "client CPU ms", "chunks/s"
    );
    for (name, s) in [("raw", &raw), ("yollayah", &yol), ("python", &py)] {
        if s.is_empty() {
            continue;
        }
        let w = column(s, wall);
        println!(
            "{:<10} {:>12} {:>14} {:>12}",
            name,
            fmt_opt(w, 2),
            fmt_opt(column(s, cpu), 2),
            fmt_opt(w.map(|w| expected as f64 / w * 1e3), 0)
        );
    }
    let y_raw_wall = paired_ratio(&yol, &raw, wall);
    let y_raw_cpu = paired_ratio(&yol, &raw, cpu);
    let py_y_wall = paired_ratio(&py, &yol, wall);
    let py_y_cpu = paired_ratio(&py, &yol, cpu);
    println!(
        "yollayah/raw: wall {} cpu {}; python/yollayah: wall {} cpu {}",
        fmt_opt(y_raw_wall, 3),
        fmt_opt(y_raw_cpu, 3),
        fmt_opt(py_y_wall, 2),
        fmt_opt(py_y_cpu, 2)
    );
    let opt_py = |v: Option<f64>| if py.is_empty() { None } else { v };
    println!(
        "RELAY tokens={} rounds={} raw_ms={} yollayah_ms={} python_ms={} raw_cpu_ms={} yollayah_cpu_ms={} python_cpu_ms={} y_raw_wall={} y_raw_cpu={} py_y_wall={} py_y_cpu={}",
        args.tokens,
        args.rounds,
        fmt_opt(column(&raw, wall), 2),
        fmt_opt(column(&yol, wall), 2),
        fmt_opt(opt_py(column(&py, wall)), 2),
        fmt_opt(column(&raw, cpu), 2),
        fmt_opt(column(&yol, cpu), 2),
        fmt_opt(opt_py(column(&py, cpu)), 2),
        fmt_opt(y_raw_wall, 4),
        fmt_opt(y_raw_cpu, 4),
        fmt_opt(opt_py(py_y_wall), 3),
        fmt_opt(opt_py(py_y_cpu), 3),
    );
    Ok(())
}
