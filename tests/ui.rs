//! The live view as a class meets it: a real run with `--ui`, the page in
//! a real browser (headless Chromium over WebDriver) at a projector's
//! 1280×720 and at 1024×768 (no text overlaps another or is cut off; the
//! screenshots stay in target/tmp/ui/), the replay of the finished run
//! folder with `klab ui`, and `/metrics` read back with an OpenMetrics
//! parser. The browser tests need Debian's `chromium` and
//! `chromium-driver` (scripts/test installs them); without them they fail
//! and say so, they never skip.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request (Connection: close): status and body.
fn http(
    method: &str,
    addr: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    // Read until the headers are complete and then Content-Length bytes
    // (chromedriver keeps the connection open), or to the end.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if len.is_some_and(|len| rest.len() >= len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        unchunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// Reads `/events` on a thread into a string, until the server goes.
fn follow_events(addr: &str) -> Arc<Mutex<String>> {
    let got = Arc::new(Mutex::new(String::new()));
    let mut s = TcpStream::connect(addr).expect("connecting to /events");
    write!(
        s,
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let sink = Arc::clone(&got);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut g) = sink.lock() {
                g.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    got
}

/// A klab child with its stderr lines.
fn spawn(args: &[&str], secret: &str) -> (Child, std::sync::mpsc::Receiver<String>) {
    spawn_locking(args, secret, None)
}

/// [`spawn`], taking the machine's lock in `lock_dir` when given (else in
/// a folder of its own).
fn spawn_locking(
    args: &[&str],
    secret: &str,
    lock_dir: Option<&Path>,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = klab();
    if let Some(d) = lock_dir {
        cmd.env("KLAB_LOCK_DIR", d);
    }
    let mut child = cmd
        .args(args)
        .env("KLAB_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stderr.take().unwrap());
    (child, lines)
}

/// Kills a klab child a failing test leaves behind (a live view kept
/// after its run would wait for Ctrl-C for ever); forgotten once the child
/// has exited.
struct Reap(Option<u32>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill(2) on a child this test started and has not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Waits for the child to exit, up to `timeout`.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    wait_for("klab to exit", timeout, || child.try_wait().unwrap()).code()
}

/// Chromium driven over WebDriver (chromedriver), headless at 1280×720.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

fn tool(env: &str, candidates: &[&str]) -> String {
    if let Ok(p) = std::env::var(env) {
        return p;
    }
    for c in candidates {
        if Path::new(c).is_file() {
            return c.to_string();
        }
    }
    panic!(
        "the browser tests need Debian's chromium and chromium-driver (looked for {candidates:?}; ${env} overrides): run ./scripts/test, which installs them, or apt-get install chromium chromium-driver"
    );
}

impl Browser {
    fn start() -> Browser {
        let driver_bin = tool(
            "KLAB_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let chromium = tool(
            "KLAB_CHROMIUM",
            &["/usr/bin/chromium", "/usr/lib/chromium/chromium"],
        );
        let port = free_port();
        let driver = std::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {driver_bin}: {e}"));
        let base = format!("127.0.0.1:{port}");
        wait_for("chromedriver to answer", Duration::from_secs(60), || {
            http("GET", &base, "/status", None)
                .ok()
                .filter(|(s, b)| *s == 200 && b.contains("\"ready\":true"))
        });
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,720",
                         "--hide-scrollbars"]
            }
        }}});
        let (status, body) = http("POST", &base, "/session", Some(&caps.to_string())).unwrap();
        assert_eq!(status, 200, "a WebDriver session: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {body}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
        }
    }

    fn call(&self, method: &str, what: &str, body: serde_json::Value) -> serde_json::Value {
        let path = format!("/session/{}/{what}", self.session);
        let body = (method == "POST").then(|| body.to_string());
        let (status, text) = http(method, &self.base, &path, body.as_deref()).unwrap();
        assert_eq!(status, 200, "{what}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "url", serde_json::json!({ "url": url }));
        // A projector's 1280×720 for the page itself.
        self.resize(1280, 720);
    }

    /// Makes the page itself (not the window, a little larger) `w`×`h`,
    /// and waits until the charts are drawn at that size.
    fn resize(&self, w: i64, h: i64) {
        let inner = self.eval("return [window.innerWidth, window.innerHeight];");
        let (iw, ih) = (
            inner[0].as_i64().unwrap_or(w),
            inner[1].as_i64().unwrap_or(h),
        );
        if (iw, ih) != (w, h) {
            let rect = self.call("GET", "window/rect", serde_json::Value::Null);
            let (ow, oh) = (
                rect["width"].as_i64().unwrap_or(w),
                rect["height"].as_i64().unwrap_or(h),
            );
            self.call(
                "POST",
                "window/rect",
                serde_json::json!({"width": ow + w - iw, "height": oh + h - ih}),
            );
        }
        self.wait_until(
            &format!("the page drawn at {w}×{h}"),
            Duration::from_secs(20),
            &format!("if (window.innerWidth !== {w} || window.innerHeight !== {h}) return false; const p = document.querySelector('#chart-rate .plot'); return p.querySelector('svg').getAttribute('viewBox') === `0 0 ${{p.clientWidth}} ${{p.clientHeight}}`;"),
        );
    }

    /// At 1280×720 and 1024×768: no text of the page overlaps another or
    /// is cut off; a screenshot of each as `name`-WxH.png.
    fn check_layout(&self, name: &str) {
        for (w, h) in [(1024, 768), (1280, 720)] {
            self.resize(w, h);
            self.screenshot(&output_dir().join(format!("{name}-{w}x{h}.png")));
            let got = self.eval(LAYOUT);
            let texts = got["texts"].as_u64().unwrap_or(0);
            assert!(texts >= 40, "{name} at {w}×{h}: only {texts} texts: {got}");
            assert_eq!(
                got["overlaps"],
                serde_json::json!([]),
                "{name} at {w}×{h}: {got}"
            );
            assert_eq!(
                got["cut"],
                serde_json::json!([]),
                "{name} at {w}×{h}: {got}"
            );
        }
    }

    /// Runs `script` (a function body that returns a value) in the page.
    fn eval(&self, script: &str) -> serde_json::Value {
        self.call(
            "POST",
            "execute/sync",
            serde_json::json!({"script": script, "args": []}),
        )
    }

    /// Polls the page until `script` returns true.
    fn wait_until(&self, what: &str, timeout: Duration, script: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(script) == serde_json::Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page did not show {what} within {timeout:?}; it has {}",
                self.eval(STATE)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, to: &Path) {
        use base64::Engine;
        let v = self.call("GET", "screenshot", serde_json::Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            "DELETE",
            &self.base,
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Every text the page shows as boxes (SVG texts by their bounding box,
/// HTML text by the boxes of its text nodes' lines): the pairs of two
/// that overlap, and those cut off by the window or a box that clips.
const LAYOUT: &str = r##"
const seen = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const s = getComputedStyle(e);
    if (s.display === "none" || s.visibility === "hidden" || e.hidden) return false;
  }
  return true;
};
const boxes = [];
let node = 0;
for (const t of document.querySelectorAll("svg text")) {
  node++;
  if (!t.textContent.trim() || !seen(t)) continue;
  boxes.push({ what: "svg " + t.closest(".chart").id + " '" + t.textContent + "'", r: t.getBoundingClientRect(), node, el: t });
}
const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n; (n = walk.nextNode());) {
  const p = n.parentElement;
  if (!n.textContent.trim() || p.closest("svg, script, style") || !seen(p)) continue;
  node++;
  const range = document.createRange();
  range.selectNodeContents(n);
  for (const r of range.getClientRects()) {
    if (r.width > 0 && r.height > 0) boxes.push({ what: p.tagName.toLowerCase() + (p.id ? "#" + p.id : "") + " '" + n.textContent.trim().slice(0, 40) + "'", r, node, el: p });
  }
}
const overlaps = [];
for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
  const a = boxes[i], b = boxes[j];
  if (a.node === b.node) continue;
  const w = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
  const h = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
  if (w > 1 && h > 1) overlaps.push(a.what + " / " + b.what);
}
const cut = [];
for (const b of boxes) {
  let clip = { left: 0, top: 0, right: innerWidth, bottom: innerHeight };
  for (let e = b.el.parentElement; e; e = e.parentElement) {
    const s = getComputedStyle(e);
    if (s.overflowX !== "visible" || s.overflowY !== "visible" || e.tagName === "svg") {
      const r = e.getBoundingClientRect();
      clip = { left: Math.max(clip.left, r.left), top: Math.max(clip.top, r.top),
        right: Math.min(clip.right, r.right), bottom: Math.min(clip.bottom, r.bottom) };
    }
  }
  if (b.r.left < clip.left - 1 || b.r.top < clip.top - 1 || b.r.right > clip.right + 1 || b.r.bottom > clip.bottom + 1)
    cut.push(b.what);
}
return { texts: boxes.length, overlaps, cut };
"##;

/// What the page knows, for failure messages.
const STATE: &str = "const k = window.klab || {}; return {events: k.events, seconds: (k.seconds||[]).length, rows: (k.rows||[]).length, markers: (k.markers||[]).map(m => m.kind).join(','), step: (document.getElementById('step')||{}).textContent, polylines: document.querySelectorAll('polyline.series').length};";

/// Where a test leaves files for a person to look at.
fn output_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui")
}

/// A labs directory with a fast reference and a lab that changes settings
/// live (num.io.threads and others: a broker line longer than a
/// projector's width), and its fix that changes num.io.threads back live,
/// judged by a loose bound (a verdict for the steps table).
fn tiny_labs(dir: &Path) {
    write_lab(
        dir,
        "01-base",
        "title = \"base\"\n[workload]\nrate = 2000\nduration = \"5s\"\nwarmup = \"1s\"\npartitions = 2\n",
    );
    write_lab(
        dir,
        "02-io",
        "title = \"io\"\nextends = \"01\"\n[broker.properties]\n\"num.io.threads\" = 2\n\"num.network.threads\" = 2\n\"num.replica.fetchers\" = 2\n\"background.threads\" = 5\n\"log.cleaner.threads\" = 2\n[fix.properties]\n\"num.io.threads\" = 8\n[expect.fixed]\nthroughput_at_least = 0.3\n",
    );
}

const SECRET: &str = "klab-ui-test-secret-6f1c0a";

#[test]
fn a_lab_run_live_in_a_browser_then_its_replay() {
    let d = tempfile::tempdir().unwrap();
    tiny_labs(d.path());
    let results = d.path().join("results");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let ui = format!("--ui={addr}");
    let labs = d.path().to_string_lossy().to_string();
    let res = results.to_string_lossy().to_string();
    let lock_dir = d.path().join("lock");
    std::fs::create_dir(&lock_dir).unwrap();
    let (mut child, lines) = spawn_locking(
        &[
            "lab",
            "run",
            "02",
            "--fix-with",
            "lab",
            "--quick",
            "--labs",
            &labs,
            "--results",
            &res,
            &ui,
        ],
        SECRET,
        Some(&lock_dir),
    );
    let mut reap = Reap(Some(child.id()));
    let line = wait_line(&lines, "live view: http://", Duration::from_secs(30));
    assert!(line.contains(&addr), "{line}");
    let browser = Browser::start();
    browser.open(&format!("http://{addr}/"));
    // The reference step: charts get points, the step's name shows.
    browser.wait_until(
        "points on the charts",
        Duration::from_secs(120),
        "return (window.klab.seconds.length >= 3) && document.querySelectorAll('#chart-rate polyline.series').length >= 1 && document.querySelectorAll('#chart-latency polyline.series').length >= 1;",
    );
    browser.wait_until(
        "the step's name",
        Duration::from_secs(120),
        "return document.getElementById('step').textContent.includes('01-base');",
    );
    // The JIT warm-up before it is no step: folded on the charts, no row.
    browser.wait_until(
        "the JIT warm-up folded",
        Duration::from_secs(60),
        "return window.klab.folds.length >= 1 && window.klab.folds.every(f => f.to !== null) && document.querySelectorAll('#chart-rate rect.fold').length >= 1 && !window.klab.markers.some(m => m.kind === 'step' && m.text.includes('warm-up'));",
    );
    // The degraded step changes settings live: a marker appears.
    browser.wait_until(
        "a marker for the live setting change",
        Duration::from_secs(180),
        "return Array.from(document.querySelectorAll('#chart-rate line.marker[data-kind=setting]')).length >= 1 && window.klab.markers.some(m => m.kind === 'setting' && m.text.startsWith('live:') && m.text.includes('num.io.threads'));",
    );
    browser.wait_until(
        "points after the change and a finished step in the table",
        Duration::from_secs(180),
        "const s = window.klab.markers.find(m => m.kind === 'setting'); return window.klab.seconds.filter(p => p.at > s.at).length >= 3 && document.querySelectorAll('#rows tr.nums').length >= 1;",
    );
    browser.check_layout("live");
    let html = browser.eval("return document.documentElement.outerHTML;");
    assert!(
        !html.to_string().contains(SECRET),
        "the secret is on the page"
    );
    // The run ends; its live view stays up until Ctrl-C.
    wait_line(&lines, "page stays up", Duration::from_secs(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "klab ended with its run"
    );
    // ... and the machine is free for the next measurement meanwhile (this
    // one stops at once: nothing answers at its bootstrap).
    let next = klab()
        .env("KLAB_LOCK_DIR", &lock_dir)
        .args(["run", "--duration", "1s", "--bootstrap"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&next.stderr);
    assert!(!err.contains("measuring already"), "{err}");
    assert!(err.contains("nothing answers"), "{err}");
    browser.wait_until(
        "the end of the run",
        Duration::from_secs(30),
        "return window.klab.ended === true && window.klab.rows.length >= 3 && document.getElementById('status').textContent.includes('Ctrl-C');",
    );
    // Reference, degraded, fixed (and any step measured again as noisy),
    // with the lab's verdict on the fixed one and no warm-up among them.
    let rows = browser.eval("return window.klab.rows.map(r => [r.label, r.verdict, r.failed]);");
    let rows = rows.as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r[0].as_str().is_some_and(|l| l.starts_with("fixed")) && r[1] == "yes"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r[2].is_u64() && !r[0].to_string().contains("warm-up")),
        "{rows:?}"
    );
    let verdicts = browser.eval(
        "return Array.from(document.querySelectorAll('#rows td.v')).map(td => td.textContent);",
    );
    assert!(verdicts.to_string().contains("yes"), "{verdicts}");
    let steps = rows.len() as u64;
    browser.check_layout("live-end");
    browser.screenshot(&output_dir().join("live-view.png"));
    // Idle sockets lock out neither a scraper nor a new browser.
    let idle: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let (status, metrics) = http("GET", &addr, "/metrics", None).unwrap();
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("klab_steps_total "), "{metrics}");
    browser.open(&format!("http://{addr}/"));
    browser.wait_until(
        "the page again, with idle sockets open",
        Duration::from_secs(30),
        &format!("return window.klab.ended && window.klab.rows.length === {steps};"),
    );
    drop(idle);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let code = wait_exit(&mut child, Duration::from_secs(30));
    reap.0 = None;
    assert_eq!(code, Some(0));

    // The replay of the same folder, in the same page. One broker has no
    // ISR to change: the fixed step is given two readings' changes as a
    // replicated step records them, to be drawn as the cluster's markers.
    let run_dir = only_run_dir(&results);
    add_cluster_changes(&run_dir);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (mut replay, lines) = spawn(&["ui", &run_dir.to_string_lossy(), "--addr", &addr], SECRET);
    let mut reap = Reap(Some(replay.id()));
    let line = wait_line(&lines, "replay of", Duration::from_secs(30));
    assert!(
        line.contains(&format!("({steps} steps)")) && line.contains(&addr),
        "{line}"
    );
    browser.open(&format!("http://{addr}/"));
    browser.wait_until(
        "the replayed run",
        Duration::from_secs(60),
        &format!("return window.klab.mode === 'replay' && window.klab.ended && window.klab.rows.length === {steps} && window.klab.seconds.length >= 10 && window.klab.markers.some(m => m.kind === 'setting') && window.klab.markers.filter(m => m.kind === 'cluster').map(m => m.text).join('|') === 'isr shrank p0|isr grew p0' && window.klab.log.some(l => l.kind === 'cluster' && l.text === 'partition 0: isr shrank, leader 1, isr [1]') && document.querySelectorAll('#chart-rate line.marker[data-kind=cluster]').length === 2 && window.klab.rows.some(r => r.verdict === 'yes') && document.querySelectorAll('#chart-latency polyline.series').length >= 2;"),
    );
    // Between steps the charts leave the gap empty: each step's line is
    // its own.
    let lines_drawn = browser.eval(
        "return document.querySelectorAll('#chart-rate polyline[data-series=consumed]').length;",
    );
    assert!(lines_drawn.as_u64().unwrap_or(0) >= steps, "{lines_drawn}");
    browser.check_layout("replay");
    let (status, metrics) = http("GET", &addr, "/metrics", None).unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains(&format!("klab_steps_total {steps}")),
        "{metrics}"
    );
    unsafe { libc::kill(replay.id() as i32, libc::SIGINT) };
    let code = wait_exit(&mut replay, Duration::from_secs(30));
    reap.0 = None;
    assert_eq!(code, Some(0));
    crafted_replays_are_refused(&run_dir);
}

/// The JSON of a run folder's fixed step.
fn fixed_step_json(run_dir: &Path) -> PathBuf {
    std::fs::read_dir(run_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".fixed.json"))
        .expect("the fixed step's JSON")
}

/// Gives the fixed step of a run folder an ISR that shrinks a second into
/// its window and grows back a second later.
fn add_cluster_changes(run_dir: &Path) {
    let json = fixed_step_json(run_dir);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    v["cluster"] = serde_json::json!([
        {"at_s": 1.0, "partition": 0, "leader": 1, "isr": [1], "what": "isr shrank"},
        {"at_s": 2.0, "partition": 0, "leader": 1, "isr": [1, 2], "what": "isr grew"},
    ]);
    std::fs::write(&json, v.to_string()).unwrap();
}

/// Copies of a real run folder, each with one thing a crafted folder
/// could hold: `klab ui` refuses each with exit 2, naming the file and
/// what is wrong, and never hangs or reads outside the folder.
fn crafted_replays_are_refused(run_dir: &Path) {
    let json = fixed_step_json(run_dir);
    let stem = json.file_stem().unwrap().to_string_lossy().to_string();
    let d = tempfile::tempdir().unwrap();
    let case = |name: &str, edit: &dyn Fn(&Path, &mut serde_json::Value), want: &[&str]| {
        let dir = d.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for suffix in [".json", ".e2e.hlog", ".publish.hlog"] {
            let f = format!("{stem}{suffix}");
            std::fs::copy(run_dir.join(&f), dir.join(&f)).unwrap();
        }
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{stem}.json"))).unwrap())
                .unwrap();
        edit(&dir, &mut v);
        std::fs::write(dir.join(format!("{stem}.json")), v.to_string()).unwrap();
        let started = Instant::now();
        let out = klab()
            .args(["ui", &dir.to_string_lossy(), "--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        for w in want {
            assert!(err.contains(w), "{name}: no {w:?} in {err}");
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{name}: slow");
    };
    case(
        "window-start",
        &|_, v| v["window_start_s"] = serde_json::json!(1e300),
        &[".fixed.json", "window_start_s", "out of range"],
    );
    case(
        "duration",
        &|_, v| v["workload"]["duration"] = serde_json::json!(1e300),
        &[".fixed.json", "workload.duration", "out of range"],
    );
    case(
        "outside",
        &|_, v| v["histograms"]["e2e"] = serde_json::json!("/dev/zero"),
        &[".fixed.json", "histograms.e2e", "not a file name"],
    );
    case(
        "fifo",
        &|dir, _| {
            let log = dir.join(format!("{stem}.e2e.hlog"));
            std::fs::remove_file(&log).unwrap();
            let c = std::ffi::CString::new(log.to_string_lossy().as_bytes()).unwrap();
            // SAFETY: mkfifo(3) on a path in a fresh temporary folder.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        },
        &[".e2e.hlog", "not a regular file"],
    );
}

/// `klab run --ui --ui-exit` on a free port with `extra` arguments, its
/// results in a fresh folder, once its live view answers: (the folder,
/// the live view's address, the child, its stderr lines: keep them, the
/// pipe is read while they are).
fn spawn_run(extra: &[&str]) -> (tempfile::TempDir, String, Child, Receiver<String>) {
    let d = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let ui = format!("--ui={addr}");
    let res = d.path().join("r").to_string_lossy().to_string();
    let mut args = vec!["run", "--warmup", "1s", "--results", &res, &ui, "--ui-exit"];
    args.extend_from_slice(extra);
    let (child, lines) = spawn(&args, SECRET);
    wait_line(&lines, "live view: http://", Duration::from_secs(30));
    (d, addr, child, lines)
}

/// Fault labels close together, with a lab-less run: none overlaps
/// another at either size; `--ui-exit` ends klab with its run.
#[test]
fn fault_markers_stay_apart_and_ui_exit_ends_with_the_run() {
    let (_d, addr, mut child, _lines) = spawn_run(&[
        "--rate",
        "2000",
        "--duration",
        "8s",
        "--fault",
        "at=1s,action=pause,broker=1,for=1s",
        "--fault",
        "at=2.5s,action=pause,broker=1,for=1s",
        "--fault",
        "at=4s,action=pause,broker=1,for=1s",
    ]);
    let browser = Browser::start();
    browser.open(&format!("http://{addr}/"));
    browser.wait_until(
        "three fault markers and the step's end",
        Duration::from_secs(180),
        "return window.klab.markers.filter(m => m.kind === 'fault').length === 3 && window.klab.rows.length === 1;",
    );
    browser.check_layout("faults");
    let labels = browser.eval(
        "return Array.from(document.querySelectorAll('#chart-rate text.marker-label')).map(t => t.textContent);",
    );
    assert!(labels.to_string().contains("pause 1"), "{labels}");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(120)), Some(0));
}

#[test]
fn metrics_parse_and_counters_only_grow_and_the_secret_stays_out() {
    use openmetrics_parser::OpenMetricsType as T;
    let (_d, addr, mut child, _lines) = spawn_run(&["--rate", "3000", "--duration", "8s"]);
    let early = follow_events(&addr);
    let (status, page) = http("GET", &addr, "/", None).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("EventSource"), "{page}");
    let (status, _) = http("POST", &addr, "/metrics", Some("{}")).unwrap();
    assert_eq!(status, 405, "the live view is read-only");
    let (status, _) = http("GET", &addr, "/admin", None).unwrap();
    assert_eq!(status, 404);

    let families = [
        ("klab_produced_records", T::Counter),
        ("klab_acknowledged_records", T::Counter),
        ("klab_consumed_records", T::Counter),
        ("klab_lost_records", T::Counter),
        ("klab_duplicated_records", T::Counter),
        ("klab_broker_restarts", T::Counter),
        ("klab_e2e_latency_seconds", T::Histogram),
        ("klab_consumer_lag_records", T::Gauge),
        ("klab_step", T::Info),
    ];
    let counters = [
        "klab_produced_records",
        "klab_acknowledged_records",
        "klab_consumed_records",
        "klab_e2e_latency_seconds",
    ];
    let mut last = vec![0.0; counters.len()];
    let mut scrapes = 0;
    let mut late = None;
    let deadline = Instant::now() + Duration::from_secs(240);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run took too long");
        let Ok((200, text)) = http("GET", &addr, "/metrics", None) else {
            break; // the run ended between the check and the scrape
        };
        assert!(!text.contains(SECRET), "the secret is in /metrics");
        let e = openmetrics_parser::openmetrics::parse_openmetrics(&text)
            .unwrap_or_else(|err| panic!("/metrics does not parse: {err:?}\n{text}"));
        for (name, t) in &families {
            let f = e
                .families
                .get(*name)
                .unwrap_or_else(|| panic!("no {name} in\n{text}"));
            assert_eq!(&f.family_type, t, "{name}");
        }
        for (i, c) in counters.iter().enumerate() {
            let v = value(&e, c);
            assert!(v >= last[i], "{c} went down: {} → {v}", last[i]);
            last[i] = v;
        }
        scrapes += 1;
        // A browser that joins once records flow gets the history too.
        if late.is_none() && last[0] > 0.0 {
            late = Some(follow_events(&addr));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(wait_exit(&mut child, Duration::from_secs(60)), Some(0));
    assert!(scrapes >= 5, "only {scrapes} scrapes during the run");
    assert!(last[0] > 10_000.0, "produced {}", last[0]);
    assert!(last[3] > 0.0, "no latency in the histogram");
    for (who, got) in [("early", early), ("late", late.expect("a late browser"))] {
        let text = wait_for("the stream to end", Duration::from_secs(30), || {
            let g = got.lock().unwrap().clone();
            g.contains("\"kind\":\"run_end\"").then_some(g)
        });
        assert!(!text.contains(SECRET), "the secret is in the {who} stream");
        assert!(text.contains("event: hello"), "{who}");
        assert!(
            text.contains("id: 0\ndata: "),
            "{who} browser missed the start"
        );
        assert!(text.contains("\"kind\":\"step_begin\""), "{who}");
        assert!(text.contains("\"kind\":\"step_end\""), "{who}");
        assert!(text.contains("\"e2e_p99_ms\":"), "{who}");
    }
}

#[test]
fn a_taken_port_is_refused_before_any_broker_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let d = tempfile::tempdir().unwrap();
    let results = d.path().join("r");
    let out = klab()
        .args(["run", &format!("--ui={addr}"), "--results"])
        .arg(&results)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--ui") && err.contains("in use"), "{err}");
    assert!(!results.exists(), "a run folder was created");
    assert!(jvms_mentioning(&d.path().to_string_lossy()).is_empty());
    let out = klab()
        .args(["ui", &d.path().to_string_lossy()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no step results"), "{err}");
}
