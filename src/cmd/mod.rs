//! One module per subcommand: each turns parsed arguments into work and
//! output, and returns how it ended ([`Outcome`]); `main` turns that (or an
//! error) into the exit code, in one place ([`exit_code`]).

pub mod bench;
pub mod broker;
pub mod capacity;
pub mod class;
pub mod compare;
pub mod demo;
pub mod doctor;
pub mod knobs;
pub mod lab;
pub mod pods;
pub mod rehearse;
pub mod run;
pub mod tune;
pub mod tune_bench;
pub mod ui;

pub use crate::app::{Outcome, interrupted_or, start_ui};
use crate::usage;
use anyhow::Result;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The process exit code of a command's result: 0 done, 1 failed or
/// incomplete, 2 bad input (a [`crate::error::UsageError`]), 130
/// interrupted. The message of an error goes to stderr.
pub fn exit_code(result: Result<Outcome>) -> u8 {
    match result {
        Ok(o) => {
            if o == Outcome::Interrupted {
                crate::errln!("klab: interrupted; what was measured so far is saved");
            }
            o.code()
        }
        Err(e) => {
            let code = error_code(&e);
            match code {
                2 => crate::errln!("klab: {e}"),
                130 => crate::errln!("klab: interrupted"),
                _ => crate::errln!("klab: error: {e:#}"),
            }
            code
        }
    }
}

/// An error's exit code: 2 bad input, 130 interrupted, else 1.
fn error_code(e: &anyhow::Error) -> u8 {
    if crate::error::is_usage(e) {
        2
    } else if crate::error::is_interrupted(e) || crate::cancel::interrupted() {
        130
    } else {
        1
    }
}

/// How a run ended, as its `bundle.json` records it: the exit code
/// [`exit_code`] will return for it, and a word.
pub fn ending(result: &Result<Outcome>) -> crate::lab::bundle::Ending {
    let (exit_code, verdict, error) = match result {
        Ok(o) => (
            o.code(),
            match o {
                Outcome::Done => "as expected",
                Outcome::NotAsExpected => "not as expected",
                Outcome::Incomplete => "incomplete",
                Outcome::Interrupted => "interrupted",
            },
            None,
        ),
        Err(e) => {
            let code = error_code(e);
            let word = match code {
                2 => "bad input",
                130 => "interrupted",
                _ => "error",
            };
            (code, word, Some(format!("{e:#}")))
        }
    };
    crate::lab::bundle::Ending {
        exit_code,
        verdict,
        error,
    }
}

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

/// Checks that Java is there, makes a new run folder under `out.results`
/// and starts the local broker in its `broker/`, showing progress unless
/// `out.quiet`.
pub fn start_in_run_dir(
    kafka: crate::broker::kafka_home::KafkaHome,
    out: &crate::cli::OutputArgs,
    cfg: crate::model::BrokerConfig,
    brokers: u32,
    network: bool,
) -> anyhow::Result<(std::path::PathBuf, crate::broker::local::LocalBroker)> {
    crate::broker::kafka_home::java()?;
    let run_dir = crate::stats::report::new_run_dir(&out.results)?;
    let show = crate::stats::progress::Progress::detect(out.quiet);
    let broker = start_local_broker(show, kafka, run_dir.join("broker"), cfg, brokers, network)?;
    Ok((run_dir, broker))
}

/// Starts the local broker for `klab run` and `klab bench`, with a spinner;
/// Ctrl-C during the start is an interruption, not a failure.
pub fn start_local_broker(
    show: crate::stats::progress::Progress,
    kafka: crate::broker::kafka_home::KafkaHome,
    dir: std::path::PathBuf,
    cfg: crate::model::BrokerConfig,
    brokers: u32,
    network: bool,
) -> anyhow::Result<crate::broker::local::LocalBroker> {
    let mut nodes = if brokers > 1 {
        format!(", {brokers} brokers")
    } else {
        String::new()
    };
    if network {
        nodes.push_str(", behind proxies");
    }
    let what = if cfg.is_empty() {
        format!("starting Kafka {}{nodes}", kafka.version)
    } else {
        format!("starting Kafka {}{nodes} ({cfg})", kafka.version)
    };
    let started = crate::stats::progress::with_spinner(show, &what, || {
        crate::broker::local::LocalBroker::start(
            crate::broker::local::LocalOptions::new(kafka, dir, cfg)
                .brokers(brokers)
                .network(network),
        )
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
    fn one_exit_code_per_outcome() {
        assert_eq!(exit_code(Ok(Outcome::Done)), 0);
        assert_eq!(exit_code(Ok(Outcome::Incomplete)), 1);
        assert_eq!(exit_code(Ok(Outcome::Interrupted)), 130);
        assert_eq!(exit_code(Err(usage!("--rate: no"))), 2);
        let wrapped = anyhow::Error::new(crate::error::Interrupted).context("starting");
        assert_eq!(exit_code(Err(wrapped)), 130);
        assert_eq!(exit_code(Err(anyhow::anyhow!("disk full"))), 1);
        let e = anyhow::Error::new(crate::error::Interrupted).context("x");
        assert_eq!(interrupted_or(e).unwrap(), Outcome::Interrupted);
        assert!(interrupted_or(anyhow::anyhow!("other")).is_err());
    }

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
