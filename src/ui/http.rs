//! The HTTP side: hyper's HTTP/1 server on a small tokio runtime of its
//! own. Four read-only routes: the page, the event stream, `/metrics`, and
//! a 404 (or 405 for anything but GET) for the rest. Serving `/metrics`
//! alone (`klab produce/consume --metrics`), the page and the event stream
//! are 404s too.

use super::hub::Hub;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// The page: one file, its script and styles inline, nothing fetched from
/// elsewhere.
pub const PAGE: &str = include_str!("page.html");

/// At most this many browsers (or scrapers) at once; more get a 503.
pub const MAX_CONNECTIONS: usize = 64;

/// Frames a browser's connection buffers before its task waits for it.
const PER_CLIENT_FRAMES: usize = 16;

type Body = BoxBody<Bytes, Infallible>;

/// An event stream: whatever the browser's task hands over.
struct SseBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

pub struct Server {
    pub hub: Arc<Hub>,
    /// Open connections (page loads, streams, scrapes).
    pub connections: Arc<AtomicUsize>,
    /// Browsers following the stream now.
    pub streams: Arc<AtomicUsize>,
    /// Only `/metrics`: no page, no event stream.
    pub metrics_only: bool,
}

/// Counts a stream while it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(c: &Arc<AtomicUsize>) -> Counted {
        c.fetch_add(1, Ordering::Relaxed);
        Counted(Arc::clone(c))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn full(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Serves `listener` until `stop` turns true.
pub async fn serve(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!("live view: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Counted::new(&server.connections);
        let server = Arc::clone(&server);
        let stop = stop.clone();
        tokio::spawn(async move {
            let _conn = conn;
            let crowded = server.connections.load(Ordering::Relaxed) > MAX_CONNECTIONS;
            let svc = hyper::service::service_fn(move |req| {
                let server = Arc::clone(&server);
                let stop = stop.clone();
                async move { Ok::<_, Infallible>(route(&server, req, crowded, stop)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!("live view: connection: {e}");
            }
        });
    }
}

fn route(
    server: &Arc<Server>,
    req: Request<Incoming>,
    crowded: bool,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = full(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "read-only: only GET\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if crowded {
        return full(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "too many connections to the live view\n",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let text = server
                .hub
                .metrics_text(server.streams.load(Ordering::Relaxed));
            full(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            )
        }
        _ if server.metrics_only => full(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: this klab serves only /metrics\n",
        ),
        "/" | "/index.html" => {
            let mut r = full(StatusCode::OK, "text/html; charset=utf-8", PAGE);
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
                ),
            );
            r
        }
        "/events" => {
            let last = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            events(server, last, stop)
        }
        _ => full(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the live view serves /, /events and /metrics\n",
        ),
    }
}

/// The event stream: a hello, then every frame from the browser's last
/// one on (all of them for a new browser), then new ones as they come.
fn events(
    server: &Arc<Server>,
    last: Option<u64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(PER_CLIENT_FRAMES);
    let hub = Arc::clone(&server.hub);
    let counted = Counted::new(&server.streams);
    tokio::spawn(async move {
        let _counted = counted;
        let mode = match &hub.mode {
            super::hub::Mode::Live => serde_json::json!({"mode": "live"}),
            super::hub::Mode::Replay(dir) => serde_json::json!({"mode": "replay", "dir": dir}),
        };
        let hello = format!("retry: 2000\nevent: hello\ndata: {mode}\n\n");
        if tx.send(Bytes::from(hello)).await.is_err() {
            return;
        }
        let mut cursor = last.map(|i| i + 1).unwrap_or(0);
        let mut changed = hub.watch();
        loop {
            while let Some(chunk) = hub.since(&mut cursor, 256) {
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                c = changed.changed() => if c.is_err() { return },
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(15)) => {
                    // A comment line keeps proxies from closing an idle
                    // stream and finds browsers that went away.
                    if tx.send(Bytes::from_static(b": still here\n\n")).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut r = Response::new(SseBody(rx).boxed());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
