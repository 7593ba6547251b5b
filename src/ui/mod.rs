//! The live view: a small HTTP server that shows a run as it happens (one
//! page, Server-Sent Events, `/metrics`), or replays a finished run folder
//! in the same page.
//!
//! It follows the run through the event bus ([`crate::events`]): a
//! collector thread drains a bounded subscription into the [`hub::Hub`],
//! which keeps every event serialized once; each browser reads that
//! history at its own pace from its own task. Nothing a browser does can
//! reach the run: the run only ever appends to a queue that drops (and
//! counts) what does not fit.
//!
//! The server runs on a tokio runtime of its own with one worker thread,
//! so it never competes with the load for more than a sliver of a core.
//!
//! [`serve_metrics`] serves the same server with `/metrics` alone, for `klab
//! produce` and `klab consume` (the pods on Kubernetes).

pub mod http;
pub mod hub;
pub mod metrics;
pub mod replay;

use crate::events::Stamped;
use crate::usage;
use anyhow::{Context, Result};
use hub::{Hub, Mode};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The live view's port unless `--ui` names another.
pub const DEFAULT_PORT: u16 = 8484;

/// `--metrics`' port unless it names another (also the pods' `metrics`
/// port on Kubernetes; the OpenTelemetry Prometheus exporter's usual one).
pub const METRICS_PORT: u16 = 9464;

/// What the bus may hold for the collector before it drops events.
const BUS_QUEUE: usize = 4096;

/// `--ui [ADDR]`: `HOST:PORT`, `HOST` (port 8484), `:PORT` or `PORT`
/// (127.0.0.1), `[v6]:PORT`; empty: 127.0.0.1:8484.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    parse_addr_or(s, DEFAULT_PORT)
}

/// `--metrics ADDR`: as [`parse_addr`], with port 9464 when none is given.
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    parse_addr_or(s, METRICS_PORT)
}

fn parse_addr_or(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let s = s.trim();
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if s.is_empty() {
        return Ok(SocketAddr::new(local, default_port));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let port = s.strip_prefix(':').unwrap_or(s);
    if let Ok(p) = port.parse::<u16>() {
        return Ok(SocketAddr::new(local, p));
    }
    if s == "localhost" {
        return Ok(SocketAddr::new(local, default_port));
    }
    if let Some(p) = s.strip_prefix("localhost:")
        && let Ok(p) = p.parse::<u16>()
    {
        return Ok(SocketAddr::new(local, p));
    }
    Err(format!(
        "'{s}' is not an address to listen on; expected HOST:PORT, an IP address, or a port (default 127.0.0.1:{default_port})"
    ))
}

/// A running live view; dropping it stops the server.
pub struct Ui {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    stop: tokio::sync::watch::Sender<bool>,
    collector_stop: Arc<AtomicBool>,
    collector: Option<std::thread::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    pub streams: Arc<AtomicUsize>,
    /// Keep serving after the run until Ctrl-C (see [`linger`]).
    linger: bool,
}

/// A live view whose run is over, served until Ctrl-C ([`linger`]).
static LINGERING: std::sync::Mutex<Option<Ui>> = std::sync::Mutex::new(None);

/// Serves the live view of a run that is over (one started with
/// `linger`, i.e. without `--ui-exit`) until Ctrl-C, so a class can still
/// read the page; returns at once when there is none. `main` calls it
/// after the run's outcome is printed; the exit code stays the run's.
pub fn linger() {
    let Some(ui) = LINGERING.lock().ok().and_then(|mut l| l.take()) else {
        return;
    };
    crate::errln!(
        "live view: the run is over; the page stays up at {} until Ctrl-C (--ui-exit ends it with the run)",
        ui.url()
    );
    while !crate::cancel::interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(ui);
}

impl Ui {
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Tells the browsers the run is over.
    pub fn finish(&self, how: &str) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.finish_at(how, at_ms);
    }

    /// Tells the browsers the run (or the replay) ended at `at_ms`.
    fn finish_at(&self, how: &str, at_ms: u64) {
        self.hub.push_json(
            &serde_json::json!({"kind": "run_end", "at_ms": at_ms, "how": how}).to_string(),
        );
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        self.collector_stop.store(true, Ordering::Relaxed);
        if let Some(c) = self.collector.take() {
            let _ = c.join();
        }
        if self.hub.mode == Mode::Live {
            self.finish("ended");
        }
        if self.linger && !crate::cancel::interrupted() && !std::thread::panicking() {
            // The run is over, not the page: hand the server to `linger`.
            if let Ok(mut slot) = LINGERING.lock()
                && slot.is_none()
            {
                *slot = Some(Ui {
                    addr: self.addr,
                    hub: Arc::clone(&self.hub),
                    stop: std::mem::replace(&mut self.stop, tokio::sync::watch::channel(false).0),
                    collector_stop: Arc::clone(&self.collector_stop),
                    collector: None,
                    runtime: self.runtime.take(),
                    streams: Arc::clone(&self.streams),
                    linger: false,
                });
                return;
            }
        }
        if self.streams.load(Ordering::Relaxed) > 0 {
            // Let the browsers' tasks hand over the last frames.
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_millis(500));
        }
    }
}

/// What a server serves: the whole live view, or `/metrics` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serves {
    LiveView,
    MetricsOnly,
}

impl Serves {
    fn name(self) -> &'static str {
        match self {
            Serves::LiveView => "the live view",
            Serves::MetricsOnly => "/metrics",
        }
    }
}

/// Binds `addr` (a clear usage error, exit 2, when it is taken) and serves
/// `hub` there. `flag` names the option in messages.
fn serve(addr: SocketAddr, hub: Arc<Hub>, flag: &str, serves: Serves) -> Result<Ui> {
    serve_with(addr, hub, flag, serves, http::HEADER_TIMEOUT)
}

fn serve_with(
    addr: SocketAddr,
    hub: Arc<Hub>,
    flag: &str,
    serves: Serves,
    header_timeout: Duration,
) -> Result<Ui> {
    let std_listener = std::net::TcpListener::bind(addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            usage!(
                "{flag} {addr}: the port is in use (another klab serving {}?); pick another, e.g. {flag} 127.0.0.1:{}",
                serves.name(),
                addr.port().wrapping_add(1).max(1024)
            )
        } else {
            usage!("{flag} {addr}: cannot listen there: {e}")
        }
    })?;
    let addr = std_listener.local_addr().unwrap_or(addr);
    std_listener
        .set_nonblocking(true)
        .context("live view: a non-blocking listener")?;
    if !addr.ip().is_loopback() {
        crate::errln!(
            "warning: {} listens on {addr}, not only on this machine: anyone who reaches it sees the run (read-only)",
            serves.name()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("klab-ui")
        .enable_all()
        .build()
        .context("starting the live view's runtime")?;
    let listener = {
        let _g = runtime.enter();
        tokio::net::TcpListener::from_std(std_listener).context("live view: the listener")?
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let streams = Arc::new(AtomicUsize::new(0));
    let server = Arc::new(http::Server {
        hub: Arc::clone(&hub),
        connections: http::Connections::default(),
        streams: Arc::clone(&streams),
        metrics_only: serves == Serves::MetricsOnly,
        header_timeout,
    });
    runtime.spawn(http::serve(server, listener, stop_rx));
    Ok(Ui {
        addr,
        hub,
        stop,
        collector_stop: Arc::new(AtomicBool::new(false)),
        collector: None,
        runtime: Some(runtime),
        streams,
        linger: false,
    })
}

/// Starts the thread that hands every event the process emits from now on
/// to `ui`'s hub.
fn follow(ui: &mut Ui) -> Result<()> {
    let hub = Arc::clone(&ui.hub);
    let sub = crate::events::subscribe(BUS_QUEUE);
    let stop = Arc::clone(&ui.collector_stop);
    let collector = std::thread::Builder::new()
        .name("klab-ui-collector".into())
        .spawn(move || {
            let mut dropped = 0;
            loop {
                // Drain what is there, then wait a little for more.
                while let Some(e) = sub.try_next() {
                    hub.push(&e);
                }
                let d = sub.dropped();
                if d > dropped {
                    hub.add_dropped(d - dropped);
                    dropped = d;
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(e) = sub.next(Duration::from_millis(100)) {
                    hub.push(&e);
                }
            }
        })
        .context("starting the live view's collector")?;
    ui.collector = Some(collector);
    Ok(())
}

/// Starts the live view of a run at `addr` and prints its URL. From now
/// on every event the run emits reaches the page. With `linger`, the page
/// stays up after the run until Ctrl-C ([`linger`]).
pub fn live(addr: SocketAddr, flag: &str, linger: bool) -> Result<Ui> {
    let hub = Arc::new(Hub::new(Mode::Live));
    let mut ui = serve(addr, hub, flag, Serves::LiveView)?;
    ui.linger = linger;
    follow(&mut ui)?;
    crate::errln!("live view: {} (also /metrics)", ui.url());
    Ok(ui)
}

/// Serves `/metrics` alone at `addr` (`klab produce/consume --metrics`):
/// the metrics of `role`, from the events the process emits from now on.
/// Prints the URL.
pub fn serve_metrics(addr: SocketAddr, flag: &str, role: metrics::Role) -> Result<Ui> {
    let hub = Arc::new(Hub::for_metrics(role));
    let mut ui = serve(addr, hub, flag, Serves::MetricsOnly)?;
    follow(&mut ui)?;
    crate::errln!("metrics: http://{}/metrics", ui.addr);
    Ok(ui)
}

/// Serves `events` (a finished run, see [`replay::events_of`]) at `addr`.
pub fn replay(addr: SocketAddr, dir: &std::path::Path, events: &[Stamped]) -> Result<Ui> {
    let hub = Arc::new(Hub::new(Mode::Replay(dir.display().to_string())));
    for e in events {
        hub.push(e);
    }
    let ui = serve(addr, hub, "--addr", Serves::LiveView)?;
    // At the run's end, not now: the replay's clock is the run's.
    ui.finish_at("replayed", events.last().map_or(0, |e| e.at_ms + 1));
    Ok(ui)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let d = |s| parse_addr(s).unwrap().to_string();
        assert_eq!(d(""), "127.0.0.1:8484");
        assert_eq!(d("9000"), "127.0.0.1:9000");
        assert_eq!(d(":9000"), "127.0.0.1:9000");
        assert_eq!(d("0.0.0.0"), "0.0.0.0:8484");
        assert_eq!(d("0.0.0.0:1234"), "0.0.0.0:1234");
        assert_eq!(d("[::1]:7000"), "[::1]:7000");
        assert_eq!(d("::1"), "[::1]:8484");
        assert_eq!(d("localhost:81"), "127.0.0.1:81");
        assert!(parse_addr("nowhere:port").is_err());
        assert!(parse_addr("1.2.3.4:99999").is_err());
        let m = |s| parse_metrics_addr(s).unwrap().to_string();
        assert_eq!(m("0.0.0.0"), "0.0.0.0:9464");
        assert_eq!(m("127.0.0.1:0"), "127.0.0.1:0");
    }

    /// A GET on a fresh socket: the response up to `until` (or its end).
    fn get(addr: SocketAddr, path: &str, until: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&got).contains(until) {
                break;
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Sockets that never send a request (more of them than the server
    /// keeps open) lock out neither a scraper nor a new browser, and each
    /// is closed after the header timeout.
    #[test]
    fn idle_sockets_lock_out_nobody() {
        use std::io::Read;
        let hub = Arc::new(Hub::new(Mode::Live));
        hub.push_json(r#"{"kind":"hello-test"}"#);
        let ui = serve_with(
            "127.0.0.1:0".parse().unwrap(),
            hub,
            "--ui",
            Serves::LiveView,
            Duration::from_secs(2),
        )
        .unwrap();
        let idle: Vec<std::net::TcpStream> = (0..http::MAX_CONNECTIONS + 40)
            .map(|_| std::net::TcpStream::connect(ui.addr).unwrap())
            .collect();
        let metrics = get(ui.addr, "/metrics", "# EOF");
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(metrics.contains("klab_steps_total"), "{metrics}");
        let page = get(ui.addr, "/", "</html>");
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        let events = get(ui.addr, "/events", "hello-test");
        assert!(events.starts_with("HTTP/1.1 200"), "{events}");
        assert!(events.contains("event: hello"), "{events}");
        // The last idle socket is still open (the oldest went for the new
        // ones); the header timeout closes it.
        let mut last = idle.last().unwrap();
        last.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 64];
        match last.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("the idle socket is still open: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "closed only after {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_taken_port_is_a_usage_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let e = match live(addr, "--ui", false) {
            Err(e) => e,
            Ok(_) => panic!("bound a taken port"),
        };
        assert!(crate::error::is_usage(&e), "{e}");
        assert!(e.to_string().contains("in use"), "{e}");
    }
}
