//! The HTTP side: hyper's HTTP/1 server on a small tokio runtime of its
//! own. Four read-only routes: the page, the event stream, `/metrics`, and
//! a 404 (or 405 for anything but GET) for the rest. Serving `/metrics`
//! alone (`klab produce/consume --metrics`), the page and the event stream
//! are 404s too.
//!
//! Nobody can lock it by holding sockets: a connection that does not send
//! a complete request head within [`HEADER_TIMEOUT`] (also between the
//! requests of a kept-alive one) is closed; at [`MAX_CONNECTIONS`] open
//! sockets a new one closes the oldest that carries no event stream; at
//! [`MAX_STREAMS`] event streams only `/events` answers 503 (the page and
//! `/metrics` are still served); and a stream whose browser stops reading
//! for [`STALLED`] is ended.

use super::hub::Hub;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The page: one file, its script and styles inline, nothing fetched from
/// elsewhere.
const PAGE: &str = include_str!("page.html");

/// Open sockets at most; one more closes the oldest without an event
/// stream.
pub const MAX_CONNECTIONS: usize = 256;

/// Event streams (browsers following the run) at most; more get a 503.
const MAX_STREAMS: usize = 64;

/// How long a connection may take to send a request's head, and how long
/// a kept-alive one may sit idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A browser that has not taken a frame for this long has stopped
/// reading: its stream ends.
const STALLED: Duration = Duration::from_secs(30);

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
    pub connections: Connections,
    /// Browsers following the stream now.
    pub streams: Arc<AtomicUsize>,
    /// Only `/metrics`: no page, no event stream.
    pub metrics_only: bool,
    /// [`HEADER_TIMEOUT`] (shorter in tests).
    pub header_timeout: Duration,
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

/// One open socket: when it was accepted, the event streams it carries,
/// and how to close it from outside.
struct Slot {
    id: u64,
    since: Instant,
    streams: Arc<AtomicUsize>,
    close: Arc<tokio::sync::Notify>,
}

/// The open sockets, so that a new one can close an old idle one.
#[derive(Default)]
pub struct Connections {
    slots: Mutex<Vec<Slot>>,
    next: AtomicU64,
}

/// A socket's place in [`Connections`]; dropping it gives the place back.
struct Admitted<'a> {
    all: &'a Connections,
    id: u64,
}

impl Connections {
    /// Takes a place for a new socket; at `max`, closes the oldest socket
    /// that carries no event stream first. None when every one does.
    fn admit(&self, max: usize) -> Option<(u64, Arc<AtomicUsize>, Arc<tokio::sync::Notify>)> {
        let mut slots = self.slots.lock().ok()?;
        if slots.len() >= max {
            let idle = slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.streams.load(Ordering::Relaxed) == 0)
                .min_by_key(|(_, s)| s.since)
                .map(|(i, _)| i)?;
            slots.swap_remove(idle).close.notify_one();
        }
        let slot = Slot {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            since: Instant::now(),
            streams: Arc::new(AtomicUsize::new(0)),
            close: Arc::new(tokio::sync::Notify::new()),
        };
        let out = (slot.id, Arc::clone(&slot.streams), Arc::clone(&slot.close));
        slots.push(slot);
        Some(out)
    }

    fn release(&self, id: u64) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|s| s.id != id);
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.all.release(self.id);
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
        let Some((id, conn_streams, close)) = server.connections.admit(MAX_CONNECTIONS) else {
            // Every socket carries a stream, and streams are capped: only
            // reached with a cap below MAX_STREAMS.
            continue;
        };
        let _ = stream.set_nodelay(true);
        let server = Arc::clone(&server);
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = Admitted {
                all: &server.connections,
                id,
            };
            let svc = {
                let server = Arc::clone(&server);
                hyper::service::service_fn(move |req| {
                    let server = Arc::clone(&server);
                    let stop = stop.clone();
                    let conn_streams = Arc::clone(&conn_streams);
                    async move { Ok::<_, Infallible>(route(&server, req, &conn_streams, stop)) }
                })
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(server.header_timeout);
            tokio::select! {
                r = http.serve_connection(io, svc) => if let Err(e) = r {
                    tracing::debug!("live view: connection: {e}");
                },
                _ = close.notified() => tracing::debug!("live view: closed an idle connection for a new one"),
            }
        });
    }
}

fn route(
    server: &Arc<Server>,
    req: Request<Incoming>,
    conn_streams: &Arc<AtomicUsize>,
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
        "/events" if server.streams.load(Ordering::Relaxed) >= MAX_STREAMS => full(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "too many browsers follow the live view; the page and /metrics still answer\n",
        ),
        "/events" => {
            let last = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            events(server, conn_streams, last, stop)
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
    conn_streams: &Arc<AtomicUsize>,
    last: Option<u64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(PER_CLIENT_FRAMES);
    let hub = Arc::clone(&server.hub);
    let counted = (Counted::new(&server.streams), Counted::new(conn_streams));
    tokio::spawn(async move {
        let _counted = counted;
        // A browser that stops reading holds its frames here: after
        // STALLED its stream ends, and its socket with it.
        let send = |b: Bytes| {
            let tx = tx.clone();
            async move { matches!(tokio::time::timeout(STALLED, tx.send(b)).await, Ok(Ok(()))) }
        };
        let mode = match &hub.mode {
            super::hub::Mode::Live => serde_json::json!({"mode": "live"}),
            super::hub::Mode::Replay(dir) => serde_json::json!({"mode": "replay", "dir": dir}),
        };
        let hello = format!("retry: 2000\nevent: hello\ndata: {mode}\n\n");
        if !send(Bytes::from(hello)).await {
            return;
        }
        let mut cursor = last.map(|i| i + 1).unwrap_or(0);
        let mut changed = hub.watch();
        loop {
            while let Some(chunk) = hub.since(&mut cursor, 256) {
                if !send(chunk).await {
                    return;
                }
            }
            tokio::select! {
                c = changed.changed() => if c.is_err() { return },
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(15)) => {
                    // A comment line keeps proxies from closing an idle
                    // stream and finds browsers that went away.
                    if !send(Bytes::from_static(b": still here\n\n")).await {
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
