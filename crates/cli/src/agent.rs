//! `yollayah agent`: the same watchdog as `watch` (ticks, diagnosis, keep-warm, alerts), served
//! over HTTP by `yollayah-agent` until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use yollayah_agent::{AgentConfig, Limits};

use crate::context::{Context, Globals};
use crate::doctor::GpuSource;
use crate::error::Result;
use crate::exit;

/// Arguments of `agent`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on. Anything but loopback needs both token files.
    #[arg(long, default_value = "127.0.0.1:9811", env = "YOLLAYAH_AGENT_LISTEN")]
    listen: SocketAddr,
    /// File holding the read token (metrics, state, events); mode 0600.
    #[arg(long, value_name = "PATH", env = "YOLLAYAH_AGENT_READ_TOKEN_FILE")]
    read_token_file: Option<PathBuf>,
    /// File holding the write token (warm, unload; it also reads); mode 0600.
    #[arg(long, value_name = "PATH", env = "YOLLAYAH_AGENT_WRITE_TOKEN_FILE")]
    write_token_file: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert; mode 0600.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Only observe: do not load the model at start or re-warm it after eviction.
    #[arg(long)]
    no_warm: bool,
    #[command(flatten)]
    gpu: GpuSource,
}

/// Runs the agent until SIGTERM or Ctrl-C; exits 0 then.
pub async fn run(globals: &Globals, args: Args) -> Result<u8> {
    let ctx = Context::load(globals)?;
    let config = AgentConfig {
        listen: args.listen,
        read_token_file: args.read_token_file,
        write_token_file: args.write_token_file,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        limits: Limits::default(),
    };
    let cancel = CancellationToken::new();
    let handle = crate::watch::spawn_watchdog(&ctx, &args.gpu, args.no_warm, cancel.clone())?;
    let agent = match yollayah_agent::start(config, handle.clone(), cancel.clone()).await {
        Ok(a) => a,
        Err(e) => {
            cancel.cancel();
            return Err(e.into());
        }
    };
    let stop = crate::watch::stop_signal();
    // One line for the journal; never the tokens.
    eprintln!(
        "yollayah agent: watching {} at {}, serving {}",
        handle.profile().model,
        ctx.client.base_url(),
        agent.url()
    );
    stop.await;
    cancel.cancel();
    agent.join().await;
    Ok(exit::OK)
}
