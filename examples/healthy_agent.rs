//! A small agent for `klab tune --strategy exec:CMD` (the protocol is in
//! docs/tuner-agents.md). It reads klab's JSON lines on stdin and answers
//! on stdout: it puts back, one knob per trial, every knob that is not at
//! its healthy value, most important first (the order klab lists them in),
//! and stops when none is left. An LLM agent would decide the same things
//! from the same messages: which knob, which value, and when to stop.
//!
//! Build and use:
//!   cargo build --release --example healthy_agent
//!   klab tune --lab 07 --quick --strategy exec:target/release/examples/healthy_agent

use serde_json::{Value, json};
use std::io::{BufRead, Write};

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut todo: Vec<(String, String)> = Vec::new();
    // What this agent set back, for its last word: it judges only the knobs
    // klab lists in `hello` (a setting outside the tuner's space, or one
    // the lab's start already had at the listed healthy value, is not its
    // to call healthy).
    let mut done: Vec<String> = Vec::new();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            eprintln!("healthy_agent: cannot read {line}");
            return;
        };
        match msg["type"].as_str() {
            Some("hello") => {
                for k in msg["knobs"].as_array().into_iter().flatten() {
                    let (name, current, healthy) = (&k["name"], &k["current"], &k["healthy"]);
                    if current != healthy
                        && let (Some(n), Some(h)) = (name.as_str(), healthy.as_str())
                    {
                        todo.push((n.to_string(), h.to_string()));
                    }
                }
                todo.reverse();
            }
            Some("result") => {
                eprintln!(
                    "healthy_agent: trial {} ({}) scored {:.0}: {}",
                    msg["trial"],
                    msg["change"].as_str().unwrap_or("?"),
                    msg["score"].as_f64().unwrap_or(0.0),
                    msg["reason"].as_str().unwrap_or("")
                );
            }
            // `end`, or a message this agent does not know.
            _ => return,
        }
        let answer = match todo.pop() {
            Some((knob, value)) => {
                done.push(format!("{knob}={value}"));
                json!({
                    "set": { knob.clone(): value },
                    "why": format!("{knob} back to the healthy value klab lists for it"),
                })
            }
            None if done.is_empty() => json!({
                "stop": true,
                "why": "no knob of the tuner's space was off the healthy value klab lists; settings outside the space are not judged",
            }),
            None => json!({
                "stop": true,
                "why": format!(
                    "set back {} knob(s) of the tuner's space to the healthy values klab lists ({}); settings outside the space are not judged",
                    done.len(),
                    done.join(", ")
                ),
            }),
        };
        if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
            return;
        }
    }
}
