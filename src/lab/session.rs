//! A lab session on this machine: a local broker reconfigured between
//! steps (dynamically when Kafka allows it; when a restart-only knob
//! changes, by a fresh JVM, while the one before stays up idle as a warm
//! spare for a return to its settings, see [`crate::broker::spares`]), or a
//! broker klab only connects to; every step's result is saved as it is
//! measured.

use crate::broker::apply::{self, Reconfigure};
use crate::broker::external::ExternalBroker;
use crate::broker::kafka_home::KafkaHome;
use crate::broker::knobs;
use crate::broker::local::{LocalBroker, LocalOptions};
use crate::broker::spares::{Spare, Spares};
use crate::cancel;
use crate::error::Interrupted;
use crate::lab::Lab;
use crate::lab::calibration::{Key, Store};
use crate::lab::target::{LabTarget, Ledger, StepSpec, step_file, warm_up_workload};
use crate::load::payload::Secret;
use crate::model::{Applied, BrokerConfig, Workload};
use crate::stats::progress::{Progress, with_spinner};
use crate::stats::report::Measurement;
use crate::step::{self, StepOptions};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The Kafka to start; None with an external broker.
    pub kafka: Option<KafkaHome>,
    /// `results/<timestamp>/`: every step's JSON and histograms go here.
    pub run_dir: PathBuf,
    pub quick: bool,
    pub progress: Progress,
    /// Brokers of the local cluster the session starts.
    pub brokers: u32,
    /// The cluster starts behind proxies (a lab of the session has a
    /// `[network]`).
    pub network: bool,
    /// Measure the capacity even when this machine's calibration is kept.
    pub recalibrate: bool,
}

/// The broker of a session.
pub enum SessionBroker {
    Local(Box<LocalBroker>),
    External(ExternalBroker),
}

/// A lab session: one broker, a secret, the measurements so far.
pub struct Session {
    pub opts: SessionOptions,
    broker: Option<SessionBroker>,
    secret: Secret,
    pub ledger: Ledger,
    /// Put before each step's file name, so several tuner runs in one run
    /// directory (`klab tune-bench`) keep every step's files.
    pub step_file_prefix: String,
    /// Local brokers of this session kept running idle, with their JIT
    /// warm, for a return to their static config.
    spares: Spares<Box<LocalBroker>>,
    /// Local brokers started so far (each gets its own directory).
    started: u32,
}

impl Spare for Box<LocalBroker> {
    fn settings(&self) -> BrokerConfig {
        self.config()
    }
    fn alive(&mut self) -> bool {
        self.is_running()
    }
}

/// The local broker with a spinner while it restarts.
struct Shown<'a> {
    broker: &'a mut LocalBroker,
    progress: Progress,
}

impl Reconfigure for Shown<'_> {
    fn config(&self) -> BrokerConfig {
        self.broker.config()
    }
    fn is_running(&mut self) -> bool {
        self.broker.is_running()
    }
    fn restart(&mut self, cfg: &BrokerConfig) -> Result<()> {
        let b = &mut *self.broker;
        with_spinner(
            self.progress,
            &format!("restarting the broker ({cfg})"),
            || Reconfigure::restart(b, cfg),
        )
    }
    fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()> {
        Reconfigure::set_dynamic(self.broker, changes)
    }
}

impl Session {
    pub fn new(opts: SessionOptions) -> Result<Session> {
        std::fs::create_dir_all(&opts.run_dir)
            .with_context(|| format!("creating {}", opts.run_dir.display()))?;
        Ok(Session {
            spares: Spares::for_session(opts.brokers),
            opts,
            broker: None,
            secret: Secret::from_env_or_random()?,
            ledger: Ledger::default(),
            step_file_prefix: String::new(),
            started: 0,
        })
    }

    /// Uses a broker klab does not own: only dynamic changes are possible.
    pub fn connect(&mut self, bootstrap: &str) -> Result<()> {
        self.broker = Some(SessionBroker::External(ExternalBroker::connect(bootstrap)?));
        Ok(())
    }

    /// The broker's current settings (for an external broker: its dynamic ones).
    pub fn broker_config(&self) -> Option<BrokerConfig> {
        match &self.broker {
            Some(SessionBroker::Local(b)) => Some(b.config()),
            Some(SessionBroker::External(b)) => Some(b.config()),
            None => None,
        }
    }

    /// Brings the broker to `cfg`: the first call starts it; a config that
    /// needs a restart goes to a warm spare that reaches it, or to a fresh
    /// broker while the current one becomes a spare; everything else goes
    /// through [`apply::apply`].
    fn apply_config(&mut self, cfg: &BrokerConfig) -> Result<Applied> {
        match self.broker.as_mut() {
            Some(SessionBroker::Local(b)) => {
                if self.spares.enabled()
                    && b.is_running()
                    && apply::plan(&b.config(), cfg) == Applied::Restarted
                {
                    return self.switch_broker(cfg);
                }
                apply::apply(
                    &mut Shown {
                        broker: b,
                        progress: self.opts.progress,
                    },
                    cfg,
                )
            }
            Some(SessionBroker::External(b)) => apply::apply(b, cfg),
            None => {
                let n = self.opts.brokers;
                let what = if n > 1 {
                    format!("starting {n} brokers ({cfg})")
                } else {
                    format!("starting the broker ({cfg})")
                };
                let started = self.start_broker(cfg, &what)?;
                self.broker = Some(SessionBroker::Local(started));
                Ok(Applied::Started)
            }
        }
    }

    /// A new local broker with `cfg`, in its own directory (`broker/`, then
    /// `broker-2/`, ...).
    fn start_broker(&mut self, cfg: &BrokerConfig, what: &str) -> Result<Box<LocalBroker>> {
        if cancel::interrupted() {
            return Err(Interrupted.into());
        }
        let kafka = self
            .opts
            .kafka
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no Kafka installation to start a broker with"))?;
        self.started += 1;
        let dir = match self.started {
            1 => self.opts.run_dir.join("broker"),
            n => self.opts.run_dir.join(format!("broker-{n}")),
        };
        let n = self.opts.brokers;
        with_spinner(self.opts.progress, what, || {
            LocalBroker::start(
                LocalOptions::new(kafka, dir, cfg.clone())
                    .brokers(n)
                    .network(self.opts.network),
            )
        })
        .map(Box::new)
    }

    /// `cfg` needs a fresh JVM: returns to a warm spare whose static config
    /// is `cfg`'s (changing its dynamic settings), or starts a broker with
    /// `cfg`; the current broker stays up idle as a spare either way.
    fn switch_broker(&mut self, cfg: &BrokerConfig) -> Result<Applied> {
        if cancel::interrupted() {
            return Err(Interrupted.into());
        }
        let Some(SessionBroker::Local(current)) = self.broker.take() else {
            anyhow::bail!("no local broker to switch from");
        };
        let from = current.config();
        let (spare, dead) = self.spares.take(cfg);
        stop_all(dead);
        if let Some(mut spare) = spare {
            // The spare's static config is cfg's: at most a dynamic change.
            if let Err(e) = apply::reconcile(&mut *spare, cfg) {
                self.broker = Some(SessionBroker::Local(current));
                stop_all([spare]);
                return Err(e);
            }
            self.opts.progress.say(&format!(
                "back to the warm broker of {} ({} kept idle)",
                spare.dir().display(),
                current.dir().display()
            ));
            stop_all(self.spares.park(current, knobs::heap_of(cfg).bytes()));
            self.broker = Some(SessionBroker::Local(spare));
            apply::announce(Applied::Reused, &from, cfg);
            return Ok(Applied::Reused);
        }
        // The spares that would not fit beside the new broker go first, so
        // the machine never holds more heap than allowed.
        stop_all(self.spares.park(current, knobs::heap_of(cfg).bytes()));
        let what = format!(
            "starting a broker with a new static config ({cfg}); the one before stays up, idle"
        );
        match self.start_broker(cfg, &what) {
            Ok(b) => {
                self.broker = Some(SessionBroker::Local(b));
                apply::announce(Applied::Restarted, &from, cfg);
                Ok(Applied::Restarted)
            }
            Err(e) => {
                // The broker before is measured on, as if nothing happened.
                match self.spares.unpark_last() {
                    Some(b) => self.broker = Some(SessionBroker::Local(b)),
                    None => self.broker = None,
                }
                Err(apply::refused_start(e))
            }
        }
    }

    fn measure_step(&mut self, step: StepSpec<'_>) -> Result<Measurement> {
        let StepSpec {
            lab,
            label,
            workload,
            cfg,
            applied,
        } = step;
        let mut external;
        let side: &mut dyn step::side::BrokerSide = match self.broker.as_mut() {
            Some(SessionBroker::Local(b)) => &mut **b,
            Some(SessionBroker::External(b)) => {
                external = step::External {
                    bootstrap: b.bootstrap().to_string(),
                    effective: b.effective().clone(),
                };
                &mut external
            }
            None => anyhow::bail!("no broker running"),
        };
        let opts = StepOptions {
            lab: Some(lab.id.clone()),
            label: Some(label.to_string()),
            progress: self.opts.progress,
            title: format!("{} {label}", lab.number),
            // `klab capacity` without a lab measures no lab files.
            lab_fingerprint: lab
                .dir
                .join("lab.toml")
                .is_file()
                .then(|| crate::provenance::lab_fingerprint(&lab.dir))
                .flatten(),
            requested: cfg.clone(),
            applied,
            ..Default::default()
        };
        let mut m = step::measure(side, workload, &self.secret, &opts)?;
        m.save(&step_file(
            &self.opts.run_dir,
            &self.step_file_prefix,
            lab,
            label,
        ))?;
        Ok(m)
    }

    /// [`LabTarget::warm_up`] on the local broker (an external one is left
    /// alone: klab did not start it).
    fn warm_up_local(&mut self, workload: &Workload, settle: bool) -> Result<()> {
        let Some(SessionBroker::Local(b)) = self.broker.as_mut() else {
            return Ok(());
        };
        // At the step's own rate until the broker's JIT settles; a load at
        // max (the calibration's) only briefly: the JIT-settling warm-up
        // comes before the first step that offers a rate.
        let settle = settle && workload.rate.is_some();
        let length = if settle {
            crate::step::jit_warm_up_max()
        } else {
            crate::lab::target::WARM_UP
        };
        let w = warm_up_workload(workload, length);
        if settle {
            self.opts.progress.say(&format!(
                "JIT warm-up: the step's load, not counted, until the broker's JIT compilers settle (at most {}s)",
                length.as_secs()
            ));
        }
        let opts = StepOptions {
            progress: self.opts.progress,
            title: "JIT warm-up".into(),
            throwaway: true,
            until_jit_settles: settle,
            ..Default::default()
        };
        let m = step::measure(&mut **b, &w, &self.secret, &opts)?;
        if !m.result.complete && cancel::interrupted() {
            return Err(Interrupted.into());
        }
        Ok(())
    }

    pub fn stop(&mut self) -> Result<()> {
        stop_all(self.spares.drain());
        if let Some(SessionBroker::Local(mut b)) = self.broker.take() {
            b.stop()?;
        }
        Ok(())
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }
}

/// Stops brokers klab no longer needs (a failure to stop cleanly is
/// logged: the JVM was killed).
fn stop_all(brokers: impl IntoIterator<Item = Box<LocalBroker>>) {
    for mut b in brokers {
        if let Err(e) = b.stop() {
            tracing::warn!("stopping the broker of {}: {e:#}", b.dir().display());
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl LabTarget for Session {
    fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }
    fn quick(&self) -> bool {
        self.opts.quick
    }
    fn step_prefix(&self) -> &str {
        &self.step_file_prefix
    }

    fn set_step_prefix(&mut self, prefix: &str) {
        self.step_file_prefix = prefix.to_string();
    }

    fn run_dir(&self) -> &Path {
        &self.opts.run_dir
    }
    fn say(&self, msg: &str) {
        self.opts.progress.say(msg)
    }
    fn apply(&mut self, cfg: &BrokerConfig) -> Result<Applied> {
        self.apply_config(cfg)
    }
    fn warm_up(&mut self, workload: &Workload, settle: bool) -> Result<()> {
        self.warm_up_local(workload, settle)
    }
    fn measure_raw(&mut self, step: StepSpec<'_>) -> Result<Measurement> {
        self.measure_step(step)
    }
    fn current_config(&self) -> Option<BrokerConfig> {
        self.broker_config()
    }
    fn fixed_config(&self) -> Option<BrokerConfig> {
        match &self.broker {
            Some(SessionBroker::External(b)) => Some(b.config()),
            _ => None,
        }
    }
    /// Only a broker klab starts on this machine: what an external one
    /// sustains depends on things klab cannot see.
    fn calibration_store(
        &self,
        baseline: &Lab,
        w: &Workload,
        cfg: &BrokerConfig,
    ) -> Option<(Store, Key)> {
        let Some(SessionBroker::Local(b)) = &self.broker else {
            return None;
        };
        let store = Store::default_location()?;
        let key = Key::machine()
            .with("kafka", b.kafka().version.clone())
            .with("java", b.java_version())
            .with("brokers", b.size().to_string())
            .with(
                "lab",
                crate::provenance::lab_fingerprint(&baseline.dir).unwrap_or_default(),
            )
            .with("broker_config", cfg.to_string())
            .with("workload", format!("{w:?}"))
            .with("quick", self.opts.quick.to_string())
            .with(
                "jit_warm_up",
                format!("{:?}", crate::step::jit_warm_up_max()),
            );
        Some((store, key))
    }
    fn recalibrate(&self) -> bool {
        self.opts.recalibrate
    }
}
