//! HTTP plumbing: the accept loop (own, so `stop` can drop open connections, which
//! `axum::serve`'s graceful shutdown cannot), the router, and the middleware that records
//! requests and applies staged status faults.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{Result, SimError};
use crate::fault::{Fault, RecordedRequest};
use crate::handle::Shared;
use crate::json::{error_response, text_response};

/// Largest request body accepted (chat histories with images can be big).
const MAX_BODY: usize = 64 << 20;

/// A listening server: cancel drops the listener and every connection.
pub(crate) struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "accept loop ended abnormally");
        }
    }
}

pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })
}

/// Spawns the accept loop. Each connection task races its cancellation token, so `stop`
/// tears connections down mid-response (clients see a reset / unexpected EOF).
pub(crate) fn serve(shared: Arc<Shared>, listener: TcpListener) -> Running {
    let cancel = CancellationToken::new();
    let router = router(shared);
    let token = cancel.clone();
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = token.cancelled() => break,
                a = listener.accept() => a,
            };
            let (stream, _) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let svc = TowerToHyperService::new(router.clone());
            let conn_token = token.clone();
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    r = conn => if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    },
                    _ = conn_token.cancelled() => {}
                }
            });
        }
        // Dropping the listener here closes the port before `stop` returns.
        drop(listener);
    });
    Running { cancel, task }
}

fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/api/version", get(crate::api::version))
        .route("/api/tags", get(crate::api::tags))
        .route("/api/ps", get(crate::api::ps))
        .route("/api/show", post(crate::api::show))
        .route("/api/generate", post(crate::api::generate))
        .route("/api/chat", post(crate::api::chat))
        .route("/api/pull", post(crate::pull::pull))
        .route("/api/embed", post(crate::api::embed))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            api_middleware,
        ));
    Router::new()
        .route("/", get(root))
        .merge(api)
        .merge(crate::control::routes())
        .fallback(|| async { text_response(StatusCode::NOT_FOUND, "404 page not found") })
        .method_not_allowed_fallback(|| async {
            text_response(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed")
        })
        .with_state(shared)
}

async fn root() -> Response {
    text_response(StatusCode::OK, "Ollama is running")
}

/// Records the request and answers staged `Status` faults before the handler runs.
async fn api_middleware(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error_response(400, &format!("reading request body: {e}")),
    };
    let parsed = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let staged = {
        let mut st = shared.lock();
        st.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            body: parsed,
        });
        take_status_fault(&mut st.faults)
    };
    if let Some((status, message)) = staged {
        return error_response(status, &message);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn take_status_fault(faults: &mut Vec<Fault>) -> Option<(u16, String)> {
    let i = faults
        .iter()
        .position(|f| matches!(f, Fault::Status { .. }))?;
    let Fault::Status {
        status,
        message,
        count,
    } = &mut faults[i]
    else {
        return None;
    };
    let out = (*status, message.clone());
    match count {
        Some(n) if *n <= 1 => {
            faults.remove(i);
        }
        Some(n) => *n -= 1,
        None => {}
    }
    Some(out)
}
