//! `klab tune --strategy exec:CMD`: an outside program (a script, an LLM
//! agent) chooses the trials; klab measures them.
//!
//! klab starts `sh -c CMD` in its own process group and speaks JSON lines
//! with it: klab writes one object per line to the program's stdin
//! (`hello`, then a `result` after each trial, and `end`); the program
//! answers each `hello` and `result` with one line on its stdout:
//! `{"set": {"knob": "value", ...}, "why": "..."}` (knobs it leaves out keep
//! the best settings' values) or `{"stop": true}`. Its stderr goes to
//! klab's. klab enforces the space, the floors, the budget, a time limit
//! per answer and per message written, and a limit on an answer's length
//! ([`MAX_LINE`]); when the search ends, however it ends, klab kills the
//! agent's whole process group. `docs/tuner-agents.md` is the protocol for
//! agent authors.

use super::space::{Knob, Point, Space};
use crate::model::StepResult;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// The protocol's version, sent in `hello`.
const PROTOCOL: u32 = 1;

/// The longest answer line klab reads (an answer is a small JSON object;
/// a line that never ends must not fill klab's memory).
const MAX_LINE: usize = 1 << 20;

/// How often a wait for the agent looks at Ctrl-C.
const TICK: Duration = Duration::from_millis(100);

/// Settings an agent may not touch: the lab's durability floor.
const FLOOR_KEYS: &[&str] = &[
    "acks",
    "enable.idempotence",
    "min.insync.replicas",
    "replication.factor",
    "default.replication.factor",
    "unclean.leader.election.enable",
];

/// What the agent answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Measure the best settings with these knobs changed.
    Set {
        set: BTreeMap<String, String>,
        why: Option<String>,
    },
    Stop {
        why: Option<String>,
    },
}

/// Reads one answer line. `Err` is the reason the line is not an answer.
fn parse_answer(line: &str) -> Result<Answer, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    if v.as_str() == Some("stop") {
        return Ok(Answer::Stop { why: None });
    }
    let Some(o) = v.as_object() else {
        return Err("not a JSON object with \"set\" or \"stop\"".into());
    };
    let why = o.get("why").and_then(Value::as_str).map(str::to_string);
    if o.get("stop").and_then(Value::as_bool) == Some(true) {
        return Ok(Answer::Stop { why });
    }
    let Some(set) = o.get("set").and_then(Value::as_object) else {
        return Err("an object without \"set\": {...} or \"stop\": true".into());
    };
    let mut out = BTreeMap::new();
    for (k, v) in set {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(format!("\"set\".{k} is not a string or a number")),
        };
        out.insert(k.clone(), v);
    }
    Ok(Answer::Set { set: out, why })
}

/// The point `set` asks for, starting from `best`; `Err` says why the
/// proposal is outside the space or below a floor.
fn point_for(space: &Space, best: &Point, set: &BTreeMap<String, String>) -> Result<Point, String> {
    if set.is_empty() {
        return Err("an empty \"set\"".into());
    }
    let mut p = best.clone();
    for (k, v) in set {
        if FLOOR_KEYS.contains(&k.as_str()) {
            return Err(format!(
                "{k} is part of the lab's durability floor and stays as the lab sets it"
            ));
        }
        let Some(i) = space.position(k) else {
            return Err(format!(
                "unknown knob '{k}'; the knobs are: {}",
                names(&space.knobs)
            ));
        };
        let knob = &space.knobs[i];
        let Some(j) = knob.values.iter().position(|a| a.eq_ignore_ascii_case(v)) else {
            return Err(format!(
                "{k}={v} is not allowed; allowed: {}",
                knob.values.join(", ")
            ));
        };
        p[i] = j;
    }
    if p == *best {
        return Err("no change from the best settings".into());
    }
    Ok(p)
}

fn names(knobs: &[Knob]) -> String {
    knobs.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// Knob name → value at `p`.
fn settings_at(space: &Space, p: &Point) -> BTreeMap<&'static str, &'static str> {
    space
        .knobs
        .iter()
        .zip(p)
        .map(|(k, i)| (k.name, k.values[*i]))
        .collect()
}

/// The figures of a result an agent needs.
fn result_summary(r: &StepResult) -> Value {
    json!({
        "complete": r.complete,
        "records_per_s": r.throughput.msgs_per_s,
        "e2e_p50_ms": r.e2e_latency_ms.p50,
        "e2e_p99_ms": r.e2e_latency_ms.p99,
        "publish_p99_ms": r.publish_latency_ms.p99,
        "lost": r.lost,
        "failed": r.failed,
        "duplicated": r.duplicated,
    })
}

/// `hello`: what the agent may change, what it is measured by, and the
/// start's measurement.
pub(super) fn hello(s: &super::Search<'_>, timeout: Duration) -> Value {
    let knobs: Vec<Value> = s
        .space
        .knobs
        .iter()
        .zip(&s.best_point)
        .map(|(k, i)| {
            json!({
                "name": k.name,
                "keys": k.place_keys(),
                "values": k.values,
                "healthy": k.values[k.good],
                "current": k.values[*i],
                "restart": k.restart,
            })
        })
        .collect();
    json!({
        "type": "hello",
        "protocol": PROTOCOL,
        "context": s.opts.context,
        "objective": s.opts.objective.describe(),
        "objective_kind": if s.opts.objective.capacity.is_some() { "capacity" } else { "score" },
        "capacity": s.opts.objective.capacity,
        "slo_p99_ms": s.opts.objective.slo_p99_ms,
        "budget": s.opts.budget,
        "answer_timeout_s": timeout.as_secs_f64(),
        "noise": s.noise,
        "floor_keys": FLOOR_KEYS,
        "knobs": knobs,
        "start": result_summary(&s.best_result),
        "start_score": s.best_score,
    })
}

/// A running agent program.
pub struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Result<String, String>>,
    timeout: Duration,
    /// A second Ctrl-C kills the agent's group too.
    _emergency: crate::cancel::EmergencyGuard,
}

impl Agent {
    /// Starts `sh -c command` with piped stdin and stdout, in a process
    /// group of its own (its id is the shell's pid); it dies with klab.
    pub fn start(command: &str, timeout: Duration) -> std::io::Result<Agent> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = crate::broker::node::spawn_tied(&mut cmd)?;
        let emergency = crate::cancel::on_emergency_group(child.id());
        let stdin = child.stdin.take();
        if let Some(w) = &stdin {
            // Writes wait with a deadline (see `send`), never forever.
            // SAFETY: fcntl on a pipe klab owns.
            unsafe {
                let fd = w.as_raw_fd();
                let flags = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        // A few lines ahead at most: an agent that floods its output waits
        // on its own pipe, not in klab's memory.
        let (tx, rx) = sync_channel(4);
        std::thread::Builder::new()
            .name("klab-agent-reader".into())
            .spawn(move || read_lines(stdout, &tx))?;
        Ok(Agent {
            child,
            stdin,
            lines: rx,
            timeout,
            _emergency: emergency,
        })
    }

    /// Writes one message line, within the answer time limit. `Err` when
    /// the agent no longer reads.
    pub fn send(&mut self, msg: &Value) -> Result<(), String> {
        let Some(w) = self.stdin.as_mut() else {
            return Err("its input is closed".into());
        };
        let mut line = msg.to_string();
        line.push('\n');
        let deadline = Instant::now() + self.timeout;
        let mut rest = line.as_bytes();
        while !rest.is_empty() {
            match w.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if crate::cancel::interrupted() {
                        return Err("was not waited for: klab was interrupted".into());
                    }
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "did not read klab's message within {}",
                            crate::units::format_duration(self.timeout)
                        ));
                    }
                    let mut p = libc::pollfd {
                        fd: w.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one pollfd on a pipe klab owns.
                    unsafe { libc::poll(&mut p, 1, TICK.as_millis() as i32) };
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(match self.exit_status() {
                        Some(s) => format!("exited ({s}) instead of reading klab's message"),
                        None => format!("stopped reading its input ({e})"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Waits for the next answer, at most the time limit. Blank lines are
    /// skipped. `Err` says what went wrong, for the user; Ctrl-C is
    /// [`crate::error::Interrupted`].
    pub fn ask(&mut self) -> anyhow::Result<Result<Answer, String>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if crate::cancel::interrupted() {
                return Err(crate::error::Interrupted.into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            return Ok(match self.lines.recv_timeout(left.min(TICK)) {
                Ok(Ok(line)) if line.trim().is_empty() => continue,
                Ok(Ok(line)) => parse_answer(line.trim()).map_err(|e| {
                    format!(
                        "answered with something klab cannot read: {e}: {}",
                        clip(&line)
                    )
                }),
                Ok(Err(e)) => Err(e),
                Err(RecvTimeoutError::Timeout) if !left.is_zero() => continue,
                Err(RecvTimeoutError::Timeout) => Err(format!(
                    "did not answer within {}",
                    crate::units::format_duration(self.timeout)
                )),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_briefly();
                    Err(format!(
                        "closed its output without answering ({})",
                        status.unwrap_or_else(|| "still running".into())
                    ))
                }
            });
        }
    }

    /// How the agent's shell ended, if it has; it is not reaped, so its pid
    /// (the group's id) stays taken until the group is killed.
    fn exit_status(&mut self) -> Option<String> {
        // SAFETY: waitid with WNOWAIT only looks at klab's own child.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: the fields waitid filled in for an exited child.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if r != 0 || pid == 0 {
            return None;
        }
        Some(match info.si_code {
            libc::CLD_EXITED => format!("exit status: {status}"),
            _ => format!("signal: {status}"),
        })
    }

    /// The exit status, once the process has ended (within a second).
    fn wait_briefly(&mut self) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(s) = self.exit_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `end`, closes the agent's input and gives it a moment to exit
    /// on its own; then its process group is killed.
    pub fn finish(mut self, reason: &str) {
        let _ = self.send(&json!({ "type": "end", "reason": reason }));
        self.stdin = None;
        let _ = self.wait_briefly();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // The whole group, whether or not the shell is still there: what
        // it started in the background goes too. The shell is reaped only
        // afterwards, so the group's id cannot have been reused.
        // SAFETY: killpg only sends a signal.
        unsafe {
            libc::killpg(self.child.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The agent's output as lines of at most [`MAX_LINE`] bytes, until it
/// ends, a line is too long or not UTF-8, or nobody listens.
fn read_lines(stdout: impl Read, tx: &SyncSender<Result<String, String>>) {
    let mut r = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        let got = (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line);
        let item = match got {
            Ok(0) => return,
            Ok(_) if line.len() > MAX_LINE && line.last() != Some(&b'\n') => Err(format!(
                "wrote a line longer than {} MiB without an end; an answer is one short JSON line",
                MAX_LINE >> 20
            )),
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                String::from_utf8(std::mem::take(&mut line))
                    .map_err(|_| "answered with a line that is not UTF-8".to_string())
            }
            Err(e) => Err(format!("its output could not be read ({e})")),
        };
        let last = item.is_err();
        if tx.send(item).is_err() || last {
            return;
        }
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 80 {
        format!("'{}…'", s.chars().take(80).collect::<String>())
    } else {
        format!("'{s}'")
    }
}

impl super::Search<'_> {
    /// Trials chosen by an outside program (see `exec`). Measurement
    /// errors (other than a refused setting) end the search as an error;
    /// whatever the agent does ends it with an [`AgentEnd`].
    pub(super) fn exec(
        &mut self,
        command: &str,
        timeout: std::time::Duration,
    ) -> anyhow::Result<super::AgentEnd> {
        let end = |ended: String, failed: bool| super::AgentEnd {
            command: command.to_string(),
            ended,
            failed,
        };
        let mut agent = match Agent::start(command, timeout) {
            Ok(a) => a,
            Err(e) => return Ok(end(format!("the agent could not be started: {e}"), true)),
        };
        let hello = hello(self, timeout);
        if let Err(e) = agent.send(&hello) {
            return Ok(end(format!("the agent {e}"), true));
        }
        let outcome = loop {
            if self.budget_left() == 0 {
                break end("budget".into(), false);
            }
            let (set, why) = match agent.ask()? {
                Ok(Answer::Stop { why }) => {
                    break end(
                        match why {
                            Some(w) => format!("stop: {w}"),
                            None => "stop".into(),
                        },
                        false,
                    );
                }
                Ok(Answer::Set { set, why }) => (set, why),
                Err(e) => break end(format!("the agent {e}"), true),
            };
            let n = self.trials.len() + 1;
            let asked = set
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let trial = match point_for(self.space, &self.best_point, &set) {
                Err(reason) => super::Trial {
                    n,
                    change: asked,
                    config: self.space.candidate(&self.base, &self.best_point),
                    result: None,
                    score: 0.0,
                    accepted: false,
                    reason: format!("rejected: {reason}"),
                    why,
                    capacity: None,
                },
                Ok(p) => self.measure_against_best(&p, why)?,
            };
            let msg = serde_json::json!({
                "type": "result",
                "trial": trial.n,
                "change": trial.change,
                "measured": trial.result.is_some(),
                "result": trial.result.as_ref().map(result_summary),
                "score": trial.score,
                "accepted": trial.accepted,
                "reason": trial.reason,
                "best": settings_at(self.space, &self.best_point),
                "best_score": self.best_score,
                "budget_left": self.budget_left().saturating_sub(1),
            });
            self.record(trial);
            if let Err(e) = agent.send(&msg) {
                break end(format!("the agent {e}"), true);
            }
        };
        agent.finish(&outcome.ended);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::Simulated;
    use super::super::space::Candidate;
    use super::super::{Strategy, TuneOptions, TuneReport, tune};
    use super::*;

    fn space() -> Space {
        Space::only(&["linger.ms".into(), "num.io.threads".into()], false).unwrap()
    }

    /// Tunes a simulated surface with `script` (a shell script) as the agent.
    fn run(script: &str, budget: usize, timeout: Duration) -> TuneReport {
        let space = space();
        let optimum = vec![3, 3];
        let start = space.candidate(&Candidate::default(), &vec![0, 0]);
        let mut sim = Simulated::new(space.clone(), optimum, 1);
        let opts = TuneOptions {
            budget,
            strategy: Strategy::Exec {
                command: script.to_string(),
                answer_timeout_ms: timeout.as_millis() as u64,
            },
            context: json!({ "lab": "test" }),
            ..Default::default()
        };
        tune(&mut sim, &space, &start, &opts).unwrap()
    }

    #[test]
    fn answers_are_set_or_stop_and_anything_else_is_named() {
        assert_eq!(
            parse_answer(r#"{"set": {"linger.ms": 10, "heap": "1g"}, "why": "batch"}"#),
            Ok(Answer::Set {
                set: BTreeMap::from([
                    ("heap".to_string(), "1g".to_string()),
                    ("linger.ms".to_string(), "10".to_string())
                ]),
                why: Some("batch".into())
            })
        );
        assert_eq!(
            parse_answer(r#"{"stop": true}"#),
            Ok(Answer::Stop { why: None })
        );
        assert_eq!(parse_answer(r#""stop""#), Ok(Answer::Stop { why: None }));
        assert!(
            parse_answer("set linger.ms to 10")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            parse_answer("[1, 2]")
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(
            parse_answer(r#"{"go": 1}"#)
                .unwrap_err()
                .contains("without \"set\"")
        );
        assert!(
            parse_answer(r#"{"set": {"linger.ms": [1]}}"#)
                .unwrap_err()
                .contains("linger.ms")
        );
    }

    #[test]
    fn proposals_outside_the_space_or_below_a_floor_say_why() {
        let s = space();
        let best = vec![0, 0];
        let set = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(
            point_for(&s, &best, &set("linger.ms", "10")),
            Ok(vec![3, 0])
        );
        // A proposal refused, and what the refusal says.
        for (key, value, says) in [
            ("linger.ms", "999", &["not allowed", "0, 1, 5, 10, 20"][..]),
            ("acks", "1", &["durability floor"]),
            ("fetch.max.bytes", "1", &["unknown knob", "num.io.threads"]),
            ("linger.ms", "0", &["no change"]),
        ] {
            let e = point_for(&s, &best, &set(key, value)).unwrap_err();
            assert!(says.iter().all(|w| e.contains(w)), "{e}");
        }
        assert!(point_for(&s, &best, &BTreeMap::new()).is_err());
    }

    #[test]
    fn a_scripted_agent_gets_hello_and_results_and_its_bad_answer_is_a_rejected_trial() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("seen");
        let script = format!(
            r#"read hello; echo "$hello" >> {log}
echo '{{"set": {{"linger.ms": "10"}}, "why": "fill the batches"}}'
read r; echo "$r" >> {log}
echo '{{"set": {{"linger.ms": "999"}}}}'
read r; echo "$r" >> {log}
echo '{{"set": {{"num.io.threads": 8}}}}'
read r; echo "$r" >> {log}
echo '{{"stop": true, "why": "good enough"}}'
read r; echo "$r" >> {log}"#,
            log = log.display()
        );
        let r = run(&script, 10, Duration::from_secs(20));
        let end = r.agent.clone().unwrap();
        assert!(!end.failed, "{end:?}");
        assert_eq!(end.ended, "stop: good enough");
        assert_eq!(r.trials.len(), 3, "{:#?}", r.trials);
        assert!(r.trials[0].accepted);
        assert_eq!(r.trials[0].why.as_deref(), Some("fill the batches"));
        assert!(r.trials[1].result.is_none());
        assert!(
            r.trials[1].reason.starts_with("rejected: linger.ms=999"),
            "{}",
            r.trials[1].reason
        );
        assert!(r.trials[2].result.is_some());
        assert_eq!(
            r.best_config.producer.get("linger.ms").map(String::as_str),
            Some("10")
        );
        // What the agent read: hello, three results, end.
        let seen: Vec<Value> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let types: Vec<&str> = seen.iter().map(|v| v["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["hello", "result", "result", "result", "end"]);
        assert_eq!(seen[0]["protocol"], PROTOCOL);
        assert_eq!(seen[0]["context"]["lab"], "test");
        assert_eq!(seen[0]["knobs"][0]["name"], "linger.ms");
        assert_eq!(seen[0]["knobs"][0]["current"], "0");
        assert_eq!(seen[0]["budget"], 10);
        assert_eq!(seen[2]["measured"], false);
        assert_eq!(seen[3]["best"]["linger.ms"], "10");
        assert_eq!(seen[3]["budget_left"], 7);
    }

    #[test]
    fn the_budget_ends_a_search_that_never_stops() {
        let script = r#"while read line; do echo '{"set": {"linger.ms": "5"}}'; done"#;
        let r = run(script, 3, Duration::from_secs(20));
        assert_eq!(r.trials.len(), 3);
        let end = r.agent.unwrap();
        assert_eq!(end.ended, "budget");
        assert!(!end.failed);
    }

    #[test]
    fn a_crash_a_hang_and_garbage_end_the_search_with_what_was_measured() {
        // Crashes after one good answer.
        let r = run(
            r#"read h; echo '{"set": {"linger.ms": "5"}}'; read r; exit 3"#,
            5,
            Duration::from_secs(20),
        );
        let end = r.agent.clone().unwrap();
        assert!(end.failed);
        assert!(end.ended.contains("exit status: 3"), "{}", end.ended);
        assert_eq!(r.trials.len(), 1);
        // Hangs: no answer within the limit; its child (sleep) goes too.
        let r = run("read h; sleep 600", 5, Duration::from_millis(300));
        let end = r.agent.unwrap();
        assert!(end.failed);
        assert!(
            end.ended.contains("did not answer within 300ms"),
            "{}",
            end.ended
        );
        assert!(r.trials.is_empty());
        // Garbage.
        let r = run(
            "read h; echo 'I would raise linger.ms to 10'",
            5,
            Duration::from_secs(20),
        );
        let end = r.agent.unwrap();
        assert!(end.failed);
        assert!(end.ended.contains("cannot read"), "{}", end.ended);
        assert!(end.ended.contains("I would raise"), "{}", end.ended);
        // A command that does not exist.
        let r = run("./no-such-agent-here", 5, Duration::from_secs(20));
        assert!(r.agent.unwrap().failed);
    }

    /// Runs `run` in a thread and fails if it has not ended within `limit`
    /// (an agent must never hang klab).
    fn run_within(
        script: &'static str,
        budget: usize,
        timeout: Duration,
        limit: Duration,
    ) -> TuneReport {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run(script, budget, timeout));
        });
        rx.recv_timeout(limit)
            .unwrap_or_else(|_| panic!("the search with {script:?} did not end within {limit:?}"))
    }

    #[test]
    fn a_line_that_never_ends_is_cut_short() {
        // Before: klab read it whole (7 GB in 20 s) until the answer timeout.
        let r = run_within(
            "read h; yes | tr -d '\\n'",
            5,
            Duration::from_secs(20),
            Duration::from_secs(15),
        );
        let end = r.agent.unwrap();
        assert!(end.failed);
        assert!(end.ended.contains("longer than 1 MiB"), "{}", end.ended);
    }

    #[test]
    fn an_agent_that_never_reads_cannot_block_klab() {
        // Fast answers (each a rejected trial, its long knob name quoted
        // back in klab's message), and never a read: klab's messages fill
        // the pipe, and a blocking write would wait forever.
        let r = run_within(
            r#"k=$(printf 'k%.0s' $(seq 3000)); while :; do echo "{\"set\": {\"$k\": 1}}"; done"#,
            200,
            Duration::from_millis(500),
            Duration::from_secs(30),
        );
        let end = r.agent.unwrap();
        assert!(end.failed);
        assert!(
            end.ended
                .contains("did not read klab's message within 500ms"),
            "{}",
            end.ended
        );
    }

    #[test]
    fn what_the_agent_started_goes_even_when_its_shell_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The shell starts a child in the background (it keeps the output
        // pipe open) and exits at once.
        let script = format!(
            "read h; sleep 779 & echo $! > {}; exit 0",
            pidfile.display()
        );
        let r = run(&script, 5, Duration::from_millis(500));
        assert!(r.agent.unwrap().failed);
        let pid = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Gone, or a zombie waiting for whoever adopted it.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit_once(") ")
                        .map(|(_, r)| r.chars().next())
                        .unwrap_or(None)
                })
                .unwrap_or(None);
            if matches!(state, None | Some('Z') | Some('X')) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the agent's child {pid} is still running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
