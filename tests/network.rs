//! klab's Toxiproxy driver (`klab::net`) against the real `toxiproxy-server`
//! and plain TCP echo servers: no Kafka. The binary comes from
//! `$KLAB_TOXIPROXY` (scripts/test sets it with scripts/toxiproxy) or PATH;
//! without one each test says so and passes.

use klab::net::{Stream, Toxic, ToxicKind, Toxiproxy};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The binary, or `None` (with the reason printed) when there is none. A
/// `$KLAB_TOXIPROXY` that names no binary fails the test instead.
fn binary(test: &str) -> Option<PathBuf> {
    match Toxiproxy::binary() {
        Ok(p) => Some(p),
        Err(e) if std::env::var_os("KLAB_TOXIPROXY").is_some() => panic!("{e:#}"),
        Err(e) => {
            eprintln!("{test}: skipped: {e:#}");
            None
        }
    }
}

/// A running server in a temporary folder (kept while the test runs), or
/// `None` when there is no binary.
fn server(test: &str) -> Option<(tempfile::TempDir, Toxiproxy)> {
    let bin = binary(test)?;
    let dir = tempfile::tempdir().unwrap();
    let tp = Toxiproxy::start(&bin, dir.path()).unwrap();
    Some((dir, tp))
}

/// A TCP server on 127.0.0.1 that sends back what it receives.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                if let Ok(mut r) = c.try_clone() {
                    let _ = std::io::copy(&mut r, &mut c);
                }
            });
        }
    });
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

fn round_trip(c: &mut TcpStream, msg: &[u8]) {
    c.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// The connection was closed by the other side: a read gives end of file
/// or an error (a reset), never data, and does not time out.
fn assert_closed(c: &mut TcpStream) {
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("read {n} bytes from a connection that should be closed"),
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the connection is still open: {e}"
        ),
    }
}

fn hold(name: &str) -> Toxic {
    Toxic::new(name, Stream::Upstream, ToxicKind::Timeout { ms: 0 })
}

#[test]
fn latency_delays_a_round_trip() {
    let Some((_dir, tp)) = server("latency_delays_a_round_trip") else {
        return;
    };
    let listen = tp.create_proxy("echo", echo_server()).unwrap();
    assert!(listen.ip().is_loopback() && listen.port() != 0, "{listen}");
    tp.add_toxic(
        "echo",
        &Toxic::new(
            "lag",
            Stream::Downstream,
            ToxicKind::Latency {
                latency_ms: 50,
                jitter_ms: 0,
            },
        ),
    )
    .unwrap();
    let mut c = connect(listen);
    for _ in 0..3 {
        let t = Instant::now();
        round_trip(&mut c, b"ping");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(50),
            "round trip took {took:?}"
        );
    }
    // A change applies to the open connection.
    tp.update_toxic(
        "echo",
        &Toxic::new(
            "lag",
            Stream::Downstream,
            ToxicKind::Latency {
                latency_ms: 120,
                jitter_ms: 0,
            },
        ),
    )
    .unwrap();
    let t = Instant::now();
    round_trip(&mut c, b"slower");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(120),
        "round trip took {took:?}"
    );
    // Without the toxic the data still passes.
    tp.remove_toxic("echo", "lag").unwrap();
    round_trip(&mut c, b"pong");
}

#[test]
fn bandwidth_limits_and_reset_peer_resets() {
    let Some((_dir, tp)) = server("bandwidth_limits_and_reset_peer_resets") else {
        return;
    };
    let listen = tp.create_proxy("echo", echo_server()).unwrap();
    tp.add_toxic(
        "echo",
        &Toxic::new(
            "narrow",
            Stream::Upstream,
            ToxicKind::Bandwidth { kbytes_per_s: 10 },
        ),
    )
    .unwrap();
    // 20 kB at 10 kB/s: about 2 s; at least 1 s however the rate's unit is
    // counted.
    let mut c = connect(listen);
    let data = vec![b'x'; 20_000];
    let t = Instant::now();
    round_trip(&mut c, &data);
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(1), "20 kB took {took:?}");
    tp.remove_toxic("echo", "narrow").unwrap();

    tp.add_toxic(
        "echo",
        &Toxic::new("rst", Stream::Downstream, ToxicKind::ResetPeer { ms: 0 }),
    )
    .unwrap();
    let mut d = connect(listen);
    d.write_all(b"reset me").unwrap();
    assert_closed(&mut d);
}

#[test]
fn a_hold_stops_data_until_removed() {
    let Some((_dir, tp)) = server("a_hold_stops_data_until_removed") else {
        return;
    };
    let listen = tp.create_proxy("echo", echo_server()).unwrap();
    let mut c = connect(listen);
    round_trip(&mut c, b"before");

    tp.add_toxic("echo", &hold("cut")).unwrap();
    c.write_all(b"held").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("data passed (or the connection ended) under the hold: {other:?}"),
    }
    // A connection opened under the hold passes nothing either.
    let mut during = connect(listen);
    during.write_all(b"new").unwrap();
    during
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    match during.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("data passed on a new connection under the hold: {other:?}"),
    }

    // Removing the toxic closes the connections it held (Toxiproxy's
    // timeout toxic closes its stream on removal); new ones pass.
    tp.remove_toxic("echo", "cut").unwrap();
    assert_closed(&mut c);
    assert_closed(&mut during);
    let mut after = connect(listen);
    round_trip(&mut after, b"after");
}

#[test]
fn disabling_closes_connections_and_enabling_listens_again() {
    let Some((_dir, tp)) = server("disabling_closes_connections_and_enabling_listens_again") else {
        return;
    };
    let listen = tp.create_proxy("echo", echo_server()).unwrap();
    let mut c = connect(listen);
    round_trip(&mut c, b"hello");

    tp.set_enabled("echo", false).unwrap();
    assert_closed(&mut c);
    assert!(
        TcpStream::connect(listen).is_err(),
        "a disabled proxy accepted a connection"
    );

    tp.set_enabled("echo", true).unwrap();
    let mut again = connect(listen);
    round_trip(&mut again, b"again");
}

#[test]
fn reset_closes_connections_and_new_ones_work() {
    let Some((_dir, tp)) = server("reset_closes_connections_and_new_ones_work") else {
        return;
    };
    let listen = tp.create_proxy("echo", echo_server()).unwrap();
    let mut a = connect(listen);
    let mut b = connect(listen);
    round_trip(&mut a, b"a");
    round_trip(&mut b, b"b");

    tp.reset("echo").unwrap();
    assert_closed(&mut a);
    assert_closed(&mut b);
    let mut c = connect(listen);
    round_trip(&mut c, b"c");
}

#[test]
fn api_errors_name_the_proxy_and_the_answer() {
    let Some((_dir, tp)) = server("api_errors_name_the_proxy_and_the_answer") else {
        return;
    };
    let e = tp.add_toxic("missing", &hold("cut")).unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("missing") && text.contains("proxy not found"),
        "{text}"
    );

    let up = echo_server();
    tp.create_proxy("echo", up).unwrap();
    let text = format!("{:#}", tp.create_proxy("echo", up).unwrap_err());
    assert!(text.contains("already exists"), "{text}");
    tp.add_toxic("echo", &hold("cut")).unwrap();
    let text = format!("{:#}", tp.add_toxic("echo", &hold("cut")).unwrap_err());
    assert!(
        text.contains("cut") && text.contains("already exists"),
        "{text}"
    );
    let text = format!("{:#}", tp.remove_toxic("echo", "nothing").unwrap_err());
    assert!(text.contains("toxic not found"), "{text}");
    tp.remove_proxy("echo").unwrap();
}

#[test]
fn drop_ends_the_process_and_check_reports_a_death() {
    let Some(bin) = binary("drop_ends_the_process_and_check_reports_a_death") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let gone = |pid: u32| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "toxiproxy {pid} still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let tp = Toxiproxy::start(&bin, dir.path()).unwrap();
    let pid = tp.pid();
    assert!(tp.alive());
    tp.check().unwrap();
    drop(tp);
    gone(pid);

    // Killed from outside: alive() turns false and check() names the log.
    let tp = Toxiproxy::start(&bin, dir.path()).unwrap();
    let pid = tp.pid();
    // SAFETY: kill(2) on the test's own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while tp.alive() {
        assert!(
            Instant::now() < deadline,
            "toxiproxy {pid} survived SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = format!("{:#}", tp.check().unwrap_err());
    assert!(text.contains("toxiproxy.log"), "{text}");
    let text = format!("{:#}", tp.create_proxy("late", echo_server()).unwrap_err());
    assert!(text.contains("no longer running"), "{text}");
    drop(tp);
    gone(pid);
}

#[test]
fn a_missing_binary_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Toxiproxy::start(
        std::path::Path::new("/nonexistent/toxiproxy-server"),
        dir.path(),
    )
    .unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("/nonexistent/toxiproxy-server")
            && text.contains("does not exist")
            && text.contains("scripts/toxiproxy"),
        "{text}"
    );
}
