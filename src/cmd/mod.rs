//! One module per subcommand: each turns parsed arguments into work and
//! output, and returns the process exit code.

pub mod bench;
pub mod broker;
pub mod demo;
pub mod knobs;
pub mod lab;
pub mod pods;
pub mod run;
pub mod tune;

use crate::usage;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Exit codes: 0 done, 1 failed or incomplete, 2 bad input, 130 interrupted.
pub const EXIT_OK: i32 = 0;
pub const EXIT_INCOMPLETE: i32 = 1;
pub const EXIT_INTERRUPTED: i32 = 130;

/// Resolves and connects to `host:port` within seconds, so a wrong
/// `--bootstrap` fails fast with a clear message.
pub fn check_bootstrap(bootstrap: &str) -> anyhow::Result<()> {
    let first = bootstrap.split(',').next().unwrap_or("").trim();
    let Some((host, port)) = first.rsplit_once(':') else {
        return Err(usage!("--bootstrap {bootstrap}: expected HOST:PORT"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(usage!(
            "--bootstrap {bootstrap}: expected HOST:PORT with a port number"
        ));
    }
    let addrs: Vec<_> = match first.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            return Err(usage!(
                "--bootstrap {bootstrap}: cannot resolve {host}: {e}"
            ));
        }
    };
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(usage!(
        "--bootstrap {bootstrap}: nothing answers there ({})",
        last.map(|e| e.to_string())
            .unwrap_or_else(|| "no address".into())
    ))
}

/// Starts the local broker for `klab run` and `klab bench`, with a spinner;
/// Ctrl-C during the start is an interruption, not a failure.
pub fn start_local_broker(
    show: crate::stats::progress::Progress,
    kafka: crate::broker::kafka_home::KafkaHome,
    dir: std::path::PathBuf,
    cfg: crate::model::BrokerConfig,
) -> anyhow::Result<crate::broker::local::LocalBroker> {
    let what = if cfg.is_empty() {
        format!("starting Kafka {}", kafka.version)
    } else {
        format!("starting Kafka {} ({cfg})", kafka.version)
    };
    let started = crate::stats::progress::with_spinner(show, &what, || {
        crate::broker::local::LocalBroker::start(crate::broker::local::LocalOptions::new(
            kafka, dir, cfg,
        ))
    });
    match started {
        Err(e) if crate::cancel::interrupted() => {
            tracing::debug!("start interrupted: {e:#}");
            Err(crate::error::Interrupted.into())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_checks() {
        assert!(check_bootstrap("nohostport").is_err());
        assert!(check_bootstrap("host:notaport").is_err());
        assert!(check_bootstrap("no-such-host.invalid:9092").is_err());
        // A port nobody listens on: bind, note, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = check_bootstrap(&format!("127.0.0.1:{port}")).unwrap_err();
        assert!(e.to_string().contains("nothing answers"), "{e}");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(check_bootstrap(&format!("127.0.0.1:{port}")).is_ok());
    }
}
