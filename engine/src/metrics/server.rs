//! The control thread that serves the metrics endpoint.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use ringwire_shard::{Rank, ReportRequest};
use tiny_http::{Header, Method, Request, Response, Server};

use super::snapshot::Snapshot;
use super::{DEFAULT_TOP, json, prom};
use crate::EngineObserver;

/// How long a request waits for the shards' report replies.
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);
/// Most sessions `/sessions.json` returns.
const MAX_TOP: usize = 1000;
/// Most report pages per shard one `/sessions.json` reads (each [`ReportRequest::RANK_SCAN`]
/// sessions): about a million sessions per shard.
const MAX_PAGES: usize = 256;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("cannot serve metrics on {addr}: {message}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// The thread could not be spawned.
    #[error("cannot spawn the metrics thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// A running metrics endpoint. Stop it with [`MetricsServer::stop`] (dropping it stops it too).
pub struct MetricsServer {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Serves `observer`'s engine on `addr` from a thread named `rw-metrics`: `GET /metrics`
    /// (Prometheus text), `GET /stats.json`, `GET /sessions.json?top=N&by=drops|queue|rtt|age`.
    pub fn start(addr: SocketAddr, observer: EngineObserver) -> Result<Self, MetricsError> {
        let server = Server::http(addr).map_err(|e| MetricsError::Bind {
            addr,
            message: e.to_string(),
        })?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("rw-metrics".to_string())
            .spawn(move || serve(&serving, observer))
            .map_err(MetricsError::Spawn)?;
        Ok(Self {
            server,
            thread: Some(thread),
            addr: bound,
        })
    }

    /// The address it serves on (with the real port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and joins the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn serve(server: &Server, mut observer: EngineObserver) {
    for request in server.incoming_requests() {
        let response = answer(&request, &mut observer);
        // The client may be gone; nothing to do about it.
        let _ = request.respond(response);
    }
}

type Reply = Response<std::io::Cursor<Vec<u8>>>;

fn answer(request: &Request, observer: &mut EngineObserver) -> Reply {
    if request.method() != &Method::Get {
        return text(405, "only GET\n");
    }
    let (path, query) = request.url().split_once('?').unwrap_or((request.url(), ""));
    match path {
        "/metrics" => {
            let snapshot = Snapshot::gather(observer, REPORT_TIMEOUT);
            with_type(
                Response::from_string(prom::prometheus_text(&snapshot)),
                CONTENT_TYPE,
            )
        }
        "/stats.json" => {
            let snapshot = Snapshot::gather(observer, REPORT_TIMEOUT);
            json_response(&json::stats_json(&snapshot))
        }
        "/sessions.json" => match sessions_query(query) {
            Ok((top, by)) => {
                let worst = observer.worst(by, top, MAX_PAGES, REPORT_TIMEOUT);
                json_response(&json::sessions_json(by, top, &worst))
            }
            Err(message) => text(400, &format!("{message}\n")),
        },
        "/" => text(
            200,
            "ringwire: /metrics (Prometheus text), /stats.json, \
             /sessions.json?top=20&by=drops|queue|rtt|age\n",
        ),
        _ => text(
            404,
            "not found: try /metrics, /stats.json or /sessions.json\n",
        ),
    }
}

/// `top=N&by=RANK`, both optional; anything else is refused.
fn sessions_query(query: &str) -> Result<(usize, Rank), String> {
    let (mut top, mut by) = (DEFAULT_TOP, Rank::Drops);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("top", n)) => {
                top = n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_TOP).contains(n))
                    .ok_or_else(|| format!("top={n}: allowed 1 to {MAX_TOP}"))?;
            }
            Some(("by", rank)) => by = rank.parse()?,
            _ => return Err(format!("unknown parameter {pair:?}: allowed top and by")),
        }
    }
    // Ranked pages hold at most the request's limit.
    Ok((top.min(ReportRequest::MAX_LIMIT), by))
}

fn json_response(value: &serde_json::Value) -> Reply {
    with_type(Response::from_string(value.to_string()), "application/json")
}

fn text(code: u16, body: &str) -> Reply {
    with_type(Response::from_string(body), "text/plain; charset=utf-8").with_status_code(code)
}

fn with_type(response: Reply, content_type: &str) -> Reply {
    match Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes()) {
        Ok(h) => response.with_header(h),
        Err(()) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sessions_query_is_checked() {
        assert_eq!(sessions_query(""), Ok((DEFAULT_TOP, Rank::Drops)));
        assert_eq!(sessions_query("top=5&by=rtt"), Ok((5, Rank::Rtt)));
        assert!(sessions_query("top=0").is_err());
        assert!(sessions_query("by=size").is_err());
        assert!(sessions_query("limit=3").is_err());
    }
}
