//! One Toxiproxy server process and its HTTP API, for plain threads.
//!
//! [`Toxiproxy::start`] runs `toxiproxy-server` with its API on a free port
//! of 127.0.0.1, in its own process group (a terminal's Ctrl-C reaches
//! klab, not the proxy) and tied to the thread that started it: the kernel
//! kills it when that thread goes away (PR_SET_PDEATHSIG), a second Ctrl-C
//! kills it with klab's other processes, and dropping the [`Toxiproxy`]
//! kills and reaps it. Start it from a thread that lives as long as the
//! proxies are needed.
//!
//! Each proxy listens on 127.0.0.1 at a port the kernel picks (Toxiproxy
//! binds `127.0.0.1:0` and reports the real address in its answer) and
//! forwards to one upstream address. Toxics act on one direction of it:
//! upstream is what the client sends, downstream what it receives.
//!
//! The field names of the JSON are those of Toxiproxy v2.5.0's sources
//! (`toxics/toxic.go`, `toxics/latency.go`, `bandwidth.go`, `timeout.go`,
//! `reset_peer.go`, `proxy.go`).

use crate::process::{spawn_tied, tail};
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable naming the `toxiproxy-server` binary.
pub const BINARY_ENV: &str = "KLAB_TOXIPROXY";

/// The binary's name on PATH.
const BINARY_NAME: &str = "toxiproxy-server";

/// The log file [`Toxiproxy::start`] writes in its folder.
pub const LOG_FILE: &str = "toxiproxy.log";

/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server may take to answer its first GET /version.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How often [`Toxiproxy::start`] picks another API port when the one it
/// chose was taken before the server bound it.
const START_ATTEMPTS: usize = 3;

/// The direction of a proxied connection a toxic acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// From the client to the upstream server (requests).
    Upstream,
    /// From the upstream server to the client (responses).
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// What a toxic does to the data of its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToxicKind {
    /// Delays each chunk by `latency_ms`, plus or minus up to `jitter_ms`
    /// (uniformly drawn per chunk).
    Latency { latency_ms: u64, jitter_ms: u64 },
    /// Passes at most `kbytes_per_s` kilobytes (1000 bytes) per second.
    /// Toxiproxy treats 0 as no limit.
    Bandwidth { kbytes_per_s: u64 },
    /// Drops all data; with `ms` > 0 closes the connection after that long,
    /// with 0 holds it open until the toxic is removed. Removing it closes
    /// the connections it held (new ones then pass).
    Timeout { ms: u64 },
    /// Resets the connection (TCP RST) `ms` after data arrives.
    ResetPeer { ms: u64 },
}

impl ToxicKind {
    /// Toxiproxy's name of the toxic type.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
        }
    }

    /// The `attributes` object of the toxic.
    fn attributes(&self) -> Value {
        match *self {
            ToxicKind::Latency {
                latency_ms,
                jitter_ms,
            } => json!({ "latency": latency_ms, "jitter": jitter_ms }),
            ToxicKind::Bandwidth { kbytes_per_s } => json!({ "rate": kbytes_per_s }),
            ToxicKind::Timeout { ms } | ToxicKind::ResetPeer { ms } => json!({ "timeout": ms }),
        }
    }
}

/// A named toxic on one direction of a proxy; it acts on every connection
/// of the proxy, open or new, until it is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toxic {
    /// Unique per proxy; [`Toxiproxy::remove_toxic`] takes it.
    pub name: String,
    pub stream: Stream,
    pub kind: ToxicKind,
}

impl Toxic {
    pub fn new(name: impl Into<String>, stream: Stream, kind: ToxicKind) -> Toxic {
        Toxic {
            name: name.into(),
            stream,
            kind,
        }
    }

    /// The body of `POST /proxies/{proxy}/toxics`. The toxicity (the share
    /// of connections the toxic applies to) is always 1: all of them.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": 1.0,
            "attributes": self.kind.attributes(),
        })
    }
}

impl Toxic {
    /// The body of `POST /proxies/{proxy}/toxics/{name}`.
    fn update_json(&self) -> Value {
        json!({ "toxicity": 1.0, "attributes": self.kind.attributes() })
    }
}

/// The body of `POST /proxies` for a proxy listening on a port of
/// 127.0.0.1 the kernel picks.
fn proxy_json(name: &str, upstream: SocketAddr) -> Value {
    json!({
        "name": name,
        "listen": "127.0.0.1:0",
        "upstream": upstream.to_string(),
        "enabled": true,
    })
}

/// The address a proxy listens on, from Toxiproxy's answer to its creation.
fn listen_of(answer: &str) -> Result<SocketAddr> {
    let v: Value = serde_json::from_str(answer)
        .with_context(|| format!("the answer is not JSON: {answer}"))?;
    let listen = v
        .get("listen")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the answer has no \"listen\": {answer}"))?;
    listen
        .parse()
        .with_context(|| format!("\"listen\" is not an address: {listen}"))
}

/// Proxy and toxic names go into URL paths: letters, digits, `.`, `_`, `-`.
fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        bail!(
            "Toxiproxy: {what} name {name:?} must be non-empty and use only letters, digits, '.', '_' and '-'"
        );
    }
    Ok(())
}

/// A running `toxiproxy-server`; killed and reaped on drop.
pub struct Toxiproxy {
    /// `None` once stopped.
    child: Mutex<Option<Child>>,
    pid: u32,
    api: SocketAddr,
    log: PathBuf,
    rt: tokio::runtime::Runtime,
    _emergency: crate::cancel::EmergencyGuard,
}

impl std::fmt::Debug for Toxiproxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toxiproxy")
            .field("pid", &self.pid)
            .field("api", &self.api)
            .field("log", &self.log)
            .finish()
    }
}

impl Toxiproxy {
    /// The `toxiproxy-server` to run: `$KLAB_TOXIPROXY`, else the one on
    /// PATH; an error says how to get one.
    pub fn binary() -> Result<PathBuf> {
        if let Some(p) = std::env::var_os(BINARY_ENV).filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            if !is_executable(&p) {
                return Err(crate::usage!(
                    "{BINARY_ENV}={} is not an executable file (scripts/toxiproxy prints the path of a toxiproxy-server)",
                    p.display()
                ));
            }
            return Ok(p);
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let p = dir.join(BINARY_NAME);
                if is_executable(&p) {
                    return Ok(p);
                }
            }
        }
        Err(crate::usage!(
            "no {BINARY_NAME} found: a network needs Toxiproxy. Run `export {BINARY_ENV}=$(scripts/toxiproxy)` (it builds Toxiproxy v2.5.0 with Go once), or use `nix develop`, whose shell has it on PATH"
        ))
    }

    /// Runs `binary` with its API on a free port of 127.0.0.1 and its output
    /// in `dir`/toxiproxy.log, and waits until the API answers.
    pub fn start(binary: &Path, dir: &Path) -> Result<Toxiproxy> {
        if !binary.exists() {
            bail!(
                "the Toxiproxy binary {} does not exist (set {BINARY_ENV} to a toxiproxy-server, run scripts/toxiproxy, or use nix develop)",
                binary.display()
            );
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {} for Toxiproxy's log", dir.display()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime for Toxiproxy's API client")?;
        let log = dir.join(LOG_FILE);
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(binary, &log, &rt)? {
                Ok((child, api)) => {
                    let pid = child.id();
                    return Ok(Toxiproxy {
                        child: Mutex::new(Some(child)),
                        pid,
                        api,
                        log,
                        rt,
                        _emergency: crate::cancel::on_emergency_group(pid),
                    });
                }
                // The port was taken between choosing it and the bind.
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("Toxiproxy did not start")))
    }

    /// One try: `Ok(Err(_))` when the chosen API port was taken (worth
    /// another try), `Err(_)` for any other failure.
    fn start_once(
        binary: &Path,
        log: &Path,
        rt: &tokio::runtime::Runtime,
    ) -> Result<Result<(Child, SocketAddr)>> {
        let api = free_port().context("finding a free port for Toxiproxy's API")?;
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("opening {} twice", log.display()))?;
        let mut cmd = Command::new(binary);
        cmd.arg("-host")
            .arg(api.ip().to_string())
            .arg("-port")
            .arg(api.port().to_string())
            .env("LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut child = spawn_tied(&mut cmd)
            .with_context(|| format!("starting Toxiproxy ({})", binary.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().context("waiting for Toxiproxy")? {
                let text = tail(log, 20);
                let e = anyhow!(
                    "Toxiproxy ({}) exited at start ({status}); the end of {}:\n{text}",
                    binary.display(),
                    log.display()
                );
                if text.contains("address already in use") {
                    return Ok(Err(e));
                }
                return Err(e);
            }
            let probe = rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_millis(500),
                    request(api, Method::GET, "/version", None),
                )
                .await
            });
            if let Ok(Ok((StatusCode::OK, _))) = probe {
                return Ok(Ok((child, api)));
            }
            if Instant::now() >= deadline {
                kill_group(&mut child);
                bail!(
                    "Toxiproxy ({}) did not answer on http://{api}/version within {} s; the end of {}:\n{}",
                    binary.display(),
                    START_TIMEOUT.as_secs(),
                    log.display(),
                    tail(log, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address of the HTTP API.
    pub fn api(&self) -> SocketAddr {
        self.api
    }

    /// The server's process id (it leads its own process group).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The file the server logs to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether the server process is still running.
    pub fn alive(&self) -> bool {
        self.exit_status().is_none()
    }

    /// `Some` once the server has exited (or been stopped).
    fn exit_status(&self) -> Option<String> {
        let Ok(mut guard) = self.child.lock() else {
            return Some("unknown (lock poisoned)".into());
        };
        match guard.as_mut() {
            None => Some("stopped".into()),
            Some(c) => match c.try_wait() {
                Ok(None) => None,
                Ok(Some(s)) => Some(s.to_string()),
                Err(e) => Some(format!("unknown ({e})")),
            },
        }
    }

    /// `Err` naming the log and its last lines when the server is no longer
    /// running.
    pub fn check(&self) -> Result<()> {
        match self.exit_status() {
            None => Ok(()),
            Some(status) => Err(self.died(&status)),
        }
    }

    fn died(&self, status: &str) -> anyhow::Error {
        anyhow!(
            "Toxiproxy (pid {}) is no longer running ({status}); the end of {}:\n{}",
            self.pid,
            self.log.display(),
            tail(&self.log, 20)
        )
    }

    /// Kills the server's process group and reaps it; idempotent.
    pub fn stop(&self) {
        if let Ok(mut guard) = self.child.lock()
            && let Some(mut child) = guard.take()
        {
            kill_group(&mut child);
        }
    }

    /// One API call; `what` names it in errors. Returns the answer's body
    /// when its status is `ok`.
    fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        ok: StatusCode,
    ) -> Result<String> {
        let sent = self.rt.block_on(async {
            tokio::time::timeout(
                REQUEST_TIMEOUT,
                request(self.api, method.clone(), path, body.map(|b| b.to_string())),
            )
            .await
        });
        let (status, answer) = match sent {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                if let Some(s) = self.exit_status() {
                    return Err(self.died(&s).context(format!("Toxiproxy: {what}")));
                }
                return Err(e.context(format!("Toxiproxy: {what}: {method} {path}")));
            }
            Err(_) => bail!(
                "Toxiproxy: {what}: {method} {path} got no answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        };
        if status != ok {
            bail!(
                "Toxiproxy: {what}: {method} {path} answered {status}: {}",
                answer.trim()
            );
        }
        Ok(answer)
    }

    /// Creates proxy `name` forwarding to `upstream`, listening on a free
    /// port of 127.0.0.1; returns that address.
    pub fn create_proxy(&self, name: &str, upstream: SocketAddr) -> Result<SocketAddr> {
        check_name("proxy", name)?;
        let what = format!("creating proxy {name} to {upstream}");
        let answer = self.call(
            &what,
            Method::POST,
            "/proxies",
            Some(proxy_json(name, upstream)),
            StatusCode::CREATED,
        )?;
        listen_of(&answer).with_context(|| format!("Toxiproxy: {what}"))
    }

    /// Deletes proxy `name` (closing its connections).
    pub fn remove_proxy(&self, name: &str) -> Result<()> {
        check_name("proxy", name)?;
        self.call(
            &format!("removing proxy {name}"),
            Method::DELETE,
            &format!("/proxies/{name}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .map(drop)
    }

    /// Adds `toxic` to proxy `proxy`.
    pub fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<()> {
        check_name("proxy", proxy)?;
        check_name("toxic", &toxic.name)?;
        self.call(
            &format!(
                "adding toxic {} ({} {}) to proxy {proxy}",
                toxic.name,
                toxic.kind.type_name(),
                toxic.stream.as_str()
            ),
            Method::POST,
            &format!("/proxies/{proxy}/toxics"),
            Some(toxic.to_json()),
            StatusCode::OK,
        )
        .map(drop)
    }

    /// Changes the attributes of the toxic named `toxic.name` on proxy
    /// `proxy` to those of `toxic.kind`, for open connections too. Its type
    /// and direction stay as they were added (Toxiproxy changes only the
    /// attributes); to change those, remove it and add another.
    pub fn update_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<()> {
        check_name("proxy", proxy)?;
        check_name("toxic", &toxic.name)?;
        self.call(
            &format!(
                "changing toxic {} ({}) of proxy {proxy}",
                toxic.name,
                toxic.kind.type_name()
            ),
            Method::POST,
            &format!("/proxies/{proxy}/toxics/{}", toxic.name),
            Some(toxic.update_json()),
            StatusCode::OK,
        )
        .map(drop)
    }

    /// Removes toxic `name` from proxy `proxy`.
    pub fn remove_toxic(&self, proxy: &str, name: &str) -> Result<()> {
        check_name("proxy", proxy)?;
        check_name("toxic", name)?;
        self.call(
            &format!("removing toxic {name} from proxy {proxy}"),
            Method::DELETE,
            &format!("/proxies/{proxy}/toxics/{name}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .map(drop)
    }

    /// Enables or disables proxy `proxy`. Disabling stops its listener and
    /// closes every connection through it; enabling listens again on the
    /// same address.
    pub fn set_enabled(&self, proxy: &str, enabled: bool) -> Result<()> {
        check_name("proxy", proxy)?;
        self.call(
            &format!(
                "{} proxy {proxy}",
                if enabled { "enabling" } else { "disabling" }
            ),
            Method::POST,
            &format!("/proxies/{proxy}"),
            Some(json!({ "enabled": enabled })),
            StatusCode::OK,
        )
        .map(drop)
    }

    /// Closes every connection through proxy `proxy` (disables it, then
    /// enables it again); its toxics stay.
    pub fn reset(&self, proxy: &str) -> Result<()> {
        self.set_enabled(proxy, false)?;
        self.set_enabled(proxy, true)
    }
}

impl Drop for Toxiproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP/1.1 request on a new connection to `api`: the status and the
/// body of the answer.
async fn request(
    api: SocketAddr,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<(StatusCode, String)> {
    let stream = tokio::net::TcpStream::connect(api)
        .await
        .with_context(|| format!("connecting to the API at {api}"))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP handshake with the API")?;
    tokio::spawn(async move {
        // Ends when the answer is read and the sender dropped.
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, api.to_string());
    if body.is_some() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .context("building the request")?;
    let answer = sender
        .send_request(req)
        .await
        .context("sending the request")?;
    let status = answer.status();
    let bytes = answer
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// SIGKILL to the process group `child` leads, then reap it.
fn kill_group(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) on the process group of a child klab started and
        // has not reaped, so the id is still its own.
        unsafe {
            libc::killpg(child.id() as i32, libc::SIGKILL);
        }
    }
    child.wait().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_toxic_json() {
        let t = Toxic::new(
            "lag",
            Stream::Downstream,
            ToxicKind::Latency {
                latency_ms: 50,
                jitter_ms: 5,
            },
        );
        assert_eq!(
            t.to_json(),
            json!({
                "name": "lag",
                "type": "latency",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": { "latency": 50, "jitter": 5 },
            })
        );
    }

    #[test]
    fn bandwidth_timeout_and_reset_json() {
        let bw = Toxic::new(
            "bw",
            Stream::Upstream,
            ToxicKind::Bandwidth { kbytes_per_s: 1000 },
        );
        assert_eq!(bw.to_json()["type"], "bandwidth");
        assert_eq!(bw.to_json()["stream"], "upstream");
        assert_eq!(bw.to_json()["attributes"], json!({ "rate": 1000 }));
        let hold = Toxic::new("cut", Stream::Upstream, ToxicKind::Timeout { ms: 0 });
        assert_eq!(hold.to_json()["type"], "timeout");
        assert_eq!(hold.to_json()["attributes"], json!({ "timeout": 0 }));
        let rst = Toxic::new("rst", Stream::Downstream, ToxicKind::ResetPeer { ms: 250 });
        assert_eq!(rst.to_json()["type"], "reset_peer");
        assert_eq!(rst.to_json()["attributes"], json!({ "timeout": 250 }));
    }

    #[test]
    fn update_json_has_only_toxicity_and_attributes() {
        let t = Toxic::new(
            "bw",
            Stream::Downstream,
            ToxicKind::Bandwidth { kbytes_per_s: 5 },
        );
        assert_eq!(
            t.update_json(),
            json!({ "toxicity": 1.0, "attributes": { "rate": 5 } })
        );
    }

    #[test]
    fn proxy_json_listens_on_a_free_loopback_port() {
        let up: SocketAddr = "127.0.0.1:9092".parse().unwrap();
        assert_eq!(
            proxy_json("b1", up),
            json!({
                "name": "b1",
                "listen": "127.0.0.1:0",
                "upstream": "127.0.0.1:9092",
                "enabled": true,
            })
        );
    }

    #[test]
    fn listen_address_from_the_answer() {
        let a = r#"{"name":"b1","listen":"127.0.0.1:40123","upstream":"127.0.0.1:9092","enabled":true,"toxics":[]}"#;
        assert_eq!(
            listen_of(a).unwrap(),
            "127.0.0.1:40123".parse::<SocketAddr>().unwrap()
        );
        assert!(listen_of("{}").is_err());
        assert!(listen_of("not json").is_err());
        assert!(listen_of(r#"{"listen":"nowhere"}"#).is_err());
    }

    #[test]
    fn names_must_fit_in_a_url_path() {
        assert!(check_name("proxy", "broker-1.PLAINTEXT_x").is_ok());
        assert!(check_name("proxy", "").is_err());
        assert!(check_name("proxy", "a/b").is_err());
        assert!(check_name("toxic", "a b").is_err());
    }
}
