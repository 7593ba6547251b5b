//! What the cluster did during a step: every partition's leader and
//! in-sync replicas, polled from the brokers' metadata four times a second
//! on a thread of its own (a frozen broker holds a request for a second
//! at most, see [`Admin::connect_watcher`]). The changes go into the
//! result (`cluster`), and with the producers' acknowledgements per
//! partition and second, how many records were acknowledged while their
//! partition's ISR was its leader alone (`acked_alone`).

use crate::broker::admin::Admin;
use crate::events::{self, Event};
use crate::model::{ClusterChange, StepResult};
use crate::step::driver::LoadOutcome;
use crate::step::side::BrokerSide;
use crate::step::watch::{Tick, Verdicts, Watcher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the metadata is read.
const POLL: Duration = Duration::from_millis(250);

/// Each partition's (leader, sorted ISR), by partition.
pub type States = Vec<(i32, Vec<i32>)>;
/// One reading: when, and the partitions' states.
type Reading = (Instant, States);
/// A reading at a time on the load's clock, in seconds.
pub type Timed = (f64, States);

pub struct ClusterWatch {
    readings: Arc<Mutex<Vec<Reading>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The load clock's origin as an instant (from the first tick).
    origin: Option<Instant>,
    /// Readings already told to the live view, and the last of them.
    told: usize,
    last_told: Option<States>,
}

impl ClusterWatch {
    pub fn start(bootstrap: &str, topic: &str) -> ClusterWatch {
        let readings: Arc<Mutex<Vec<Reading>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, bootstrap, topic) = (
            Arc::clone(&readings),
            Arc::clone(&stop),
            bootstrap.to_string(),
            topic.to_string(),
        );
        let thread = std::thread::Builder::new()
            .name("klab-cluster-watch".into())
            .spawn(move || {
                let Ok(admin) = Admin::connect_watcher(&bootstrap) else {
                    return;
                };
                while !s.load(Ordering::SeqCst) {
                    let asked = Instant::now();
                    if let Ok(states) = admin.partition_states(&topic, Duration::from_secs(1))
                        && let Ok(mut g) = r.lock()
                    {
                        g.push((asked, states));
                    }
                    std::thread::sleep(POLL.saturating_sub(asked.elapsed()));
                }
            })
            .ok();
        ClusterWatch {
            readings,
            stop,
            thread,
            origin: None,
            told: 0,
            last_told: None,
        }
    }

    fn end(&mut self) -> Vec<Reading> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.readings
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default()
    }
}

impl ClusterWatch {
    /// Emits the changes in the readings taken since the last tick, as they
    /// happen (the live view's markers); the result gets them all at the end.
    fn tell(&mut self) {
        let Some(origin) = self.origin else {
            return;
        };
        let fresh: Vec<Timed> = match self.readings.lock() {
            Ok(g) => g[self.told.min(g.len())..]
                .iter()
                .map(|(at, s)| {
                    (
                        at.saturating_duration_since(origin).as_secs_f64(),
                        s.clone(),
                    )
                })
                .collect(),
            Err(_) => return,
        };
        self.told += fresh.len();
        for (t, states) in fresh {
            if let Some(before) = self.last_told.replace(states.clone()) {
                let changes = changes(&[(t, before), (t, states)], 0.0);
                if !changes.is_empty() {
                    events::emit(Event::cluster(t, changes));
                }
            }
        }
    }
}

impl Drop for ClusterWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Watcher for ClusterWatch {
    fn tick(&mut self, now: &Tick<'_>, _: &mut dyn BrokerSide, _: &mut Verdicts) {
        if self.origin.is_none() {
            self.origin = Instant::now().checked_sub(now.t);
        }
        self.tell();
    }

    fn finish(&mut self, _: &mut dyn BrokerSide, outcome: &LoadOutcome, result: &mut StepResult) {
        let readings = self.end();
        let Some(origin) = self.origin else {
            return;
        };
        // Seconds on the load's clock.
        let timed: Vec<Timed> = readings
            .into_iter()
            .map(|(at, s)| (at.saturating_duration_since(origin).as_secs_f64(), s))
            .collect();
        let window = outcome.window_start.as_secs_f64();
        result.cluster = changes(&timed, window);
        result.acked_alone = Some(acked_alone(&timed, &outcome.per_second.acked_by_partition));
    }
}

/// Every change between two readings, partition by partition, with its
/// time after the window's start.
pub fn changes(readings: &[Timed], window: f64) -> Vec<ClusterChange> {
    let mut out = Vec::new();
    let mut last: Vec<Option<&(i32, Vec<i32>)>> = Vec::new();
    for (t, states) in readings {
        if last.len() < states.len() {
            last.resize(states.len(), None);
        }
        for (p, now) in states.iter().enumerate() {
            if let Some(before) = last[p]
                && before != now
            {
                let what = if now.0 < 0 {
                    "offline"
                } else if before.0 != now.0 {
                    "leader moved"
                } else if now.1.len() < before.1.len() {
                    "isr shrank"
                } else {
                    "isr grew"
                };
                out.push(ClusterChange {
                    at_s: t - window,
                    partition: p as i32,
                    leader: now.0,
                    isr: now.1.clone(),
                    what: what.into(),
                });
            }
            last[p] = Some(now);
        }
    }
    out
}

/// Records acknowledged in a second that lies wholly between two readings
/// which both saw their partition's ISR as its leader alone (and every
/// reading between them too). Only what was surely alone counts: a
/// reading comes up to a poll after the change it shows.
pub fn acked_alone(readings: &[Timed], acked: &[Vec<u64>]) -> u64 {
    let mut total = 0;
    for (p, per_second) in acked.iter().enumerate() {
        // Runs of consecutive readings with this partition alone.
        let mut run: Option<(f64, f64)> = None;
        let mut runs = Vec::new();
        for (t, states) in readings {
            let alone = states
                .get(p)
                .is_some_and(|(leader, isr)| *leader >= 0 && isr.len() == 1);
            run = match (run, alone) {
                (Some((a, _)), true) => Some((a, *t)),
                (None, true) => Some((*t, *t)),
                (Some(r), false) => {
                    runs.push(r);
                    None
                }
                (None, false) => None,
            };
        }
        runs.extend(run);
        for (a, b) in runs {
            let first = a.ceil() as usize;
            let end = b.floor() as usize; // seconds [k, k+1) with k+1 <= b
            for sec in first..end {
                total += per_second.get(sec).copied().unwrap_or(0);
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: f64, p0: (i32, &[i32])) -> Timed {
        (t, vec![(p0.0, p0.1.to_vec())])
    }

    #[test]
    fn changes_name_what_moved_and_when() {
        let rs = vec![
            r(1.0, (1, &[1, 2])),
            r(1.25, (1, &[1, 2])),
            r(6.0, (1, &[1])),
            r(9.0, (-1, &[1])),
            r(12.0, (2, &[2])),
            r(14.0, (2, &[1, 2])),
        ];
        let c = changes(&rs, 2.0);
        let got: Vec<(f64, &str)> = c.iter().map(|c| (c.at_s, c.what.as_str())).collect();
        assert_eq!(
            got,
            [
                (4.0, "isr shrank"),
                (7.0, "offline"),
                (10.0, "leader moved"),
                (12.0, "isr grew"),
            ]
        );
    }

    /// The live view hears of a change once, when the tick after the
    /// reading that saw it comes, with the time on the load's clock.
    #[test]
    fn each_change_is_told_once_as_it_is_seen() {
        let origin = Instant::now();
        let readings: Arc<Mutex<Vec<Reading>>> = Arc::default();
        let mut w = ClusterWatch {
            readings: Arc::clone(&readings),
            stop: Arc::default(),
            thread: None,
            origin: Some(origin),
            told: 0,
            last_told: None,
        };
        let reading = |ms: u64, isr: &[i32]| {
            (
                origin + Duration::from_millis(ms),
                vec![(1, isr.to_vec()), (2, vec![2, 3])],
            )
        };
        let sub = events::subscribe(64);
        readings
            .lock()
            .unwrap()
            .extend([reading(1000, &[1, 2, 3]), reading(1250, &[1, 2, 3])]);
        w.tell();
        readings
            .lock()
            .unwrap()
            .extend([reading(1500, &[1, 2]), reading(1750, &[1, 2, 3])]);
        w.tell();
        w.tell();
        // Emitting is synchronous: everything told is queued by now. Other
        // tests emit too; these are the ones with partition 0 led by 1.
        let mut told = Vec::new();
        while let Some(e) = sub.try_next() {
            if let Event::Cluster {
                t_s,
                markers,
                changes,
            } = &e.event
                && changes.iter().all(|c| c.partition == 0 && c.leader == 1)
            {
                told.push((*t_s, markers.clone(), changes[0].isr.clone()));
            }
        }
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert_eq!(told.len(), 2, "{told:?}");
        assert!(near(told[0].0, 1.5) && near(told[1].0, 1.75), "{told:?}");
        assert_eq!(told[0].1, ["isr shrank p0"]);
        assert_eq!(told[0].2, [1, 2]);
        assert_eq!(told[1].1, ["isr grew p0"]);
    }

    #[test]
    fn only_seconds_surely_alone_count() {
        // ISR alone from the reading at 5.2 to the one at 8.9: seconds 6
        // and 7 are wholly inside; 5 and 8 only partly.
        let mut rs = vec![r(4.9, (1, &[1, 2]))];
        let mut t = 5.2;
        while t <= 8.9 {
            rs.push(r(t, (1, &[1])));
            t += 0.25;
        }
        rs.push(r(9.2, (1, &[1, 2])));
        let acked = vec![vec![100; 12]];
        assert_eq!(acked_alone(&rs, &acked), 200);
        // An offline partition (no leader) acknowledges nothing alone.
        let rs = vec![r(1.0, (-1, &[1])), r(5.0, (-1, &[1]))];
        assert_eq!(acked_alone(&rs, &acked), 0);
        // Two in sync all along: nothing.
        let rs = vec![r(0.0, (1, &[1, 2])), r(11.0, (1, &[1, 2]))];
        assert_eq!(acked_alone(&rs, &acked), 0);
    }
}
