//! `klab broker render` and `klab broker exec`: the broker image's
//! entrypoint renders server.properties and JVM flags with the same code as
//! the local broker, so a knob has one spelling everywhere.

use super::Outcome;
use crate::broker::kafka_home::{KafkaHome, java};
use crate::broker::knobs::{ENV_BROKER_CONFIG, parse_config};
use crate::broker::quorum;
use crate::broker::render::{self, NodeLayout};
use crate::cli::{BrokerExecArgs, BrokerRenderArgs, NodeArgs};
use crate::model::BrokerConfig;
use crate::usage;
use anyhow::{Context, Result};
use std::io::Read;
use std::path::Path;

fn read_config(file: Option<&Path>) -> Result<(BrokerConfig, String)> {
    match file {
        Some(p) if p == Path::new("-") => {
            let mut t = String::new();
            std::io::stdin()
                .read_to_string(&mut t)
                .context("reading stdin")?;
            Ok((parse_config(&t, "stdin")?, "stdin".into()))
        }
        Some(p) => {
            let t = crate::infile::read_text(p, crate::infile::MAX_TEXT)
                .map_err(|e| usage!("--config {}: {e}", p.display()))?;
            Ok((
                parse_config(&t, &p.display().to_string())?,
                p.display().to_string(),
            ))
        }
        None => {
            let t = std::env::var(ENV_BROKER_CONFIG).unwrap_or_default();
            Ok((
                parse_config(&t, ENV_BROKER_CONFIG)?,
                ENV_BROKER_CONFIG.into(),
            ))
        }
    }
}

/// The node to render: with `--pod`, one pod of the broker StatefulSet in
/// its quorum (see [`quorum::pod_layout`]); else a single node, its own only
/// voter, which it reaches on loopback (the controller listens on every
/// interface).
fn layout(n: &NodeArgs, data_dir: &Path, bind: &str) -> Result<NodeLayout> {
    let log_dir = data_dir.to_string_lossy();
    if let Some(pod) = &n.pod {
        let domain = n.peer_domain.as_deref().unwrap_or_default();
        let mut l = quorum::pod_layout(&quorum::PodNode {
            pod,
            replicas: n.replicas,
            domain,
            broker_port: n.broker_port,
            controller_port: n.controller_port,
            log_dir: &log_dir,
        })
        .map_err(|e| usage!("--pod {pod}: {e}"))?;
        l.bind_host = bind.into();
        return Ok(l);
    }
    Ok(NodeLayout::single(
        n.node_id,
        bind,
        &n.advertised_host,
        if bind == "0.0.0.0" { "127.0.0.1" } else { bind },
        n.broker_port,
        n.controller_port,
        &log_dir,
    ))
}

/// The KRaft cluster id a node formats its storage with: shared by every
/// pod of the StatefulSet (derived from its name and domain), random for a
/// single node.
fn cluster_id(n: &NodeArgs) -> String {
    match (&n.pod, &n.peer_domain) {
        (Some(pod), Some(domain)) => {
            let set = quorum::parse_pod_name(pod)
                .map(|(s, _)| s)
                .unwrap_or_else(|_| pod.clone());
            quorum::statefulset_cluster_id(&set, domain)
        }
        _ => crate::broker::local::cluster_id(),
    }
}

pub fn render_cmd(a: &BrokerRenderArgs) -> Result<Outcome> {
    let (cfg, _) = read_config(a.config.as_deref())?;
    let l = layout(&a.node, &a.data_dir, "0.0.0.0")?;
    if a.node.pod.is_some() {
        crate::outln!("# KRaft cluster id: {}", cluster_id(&a.node));
    }
    crate::outln!("# JVM flags");
    for f in render::jvm_flags(
        &cfg,
        Path::new("<config>/log4j2.properties"),
        Path::new("<config>/gc.log"),
    ) {
        crate::outln!("#   {f}");
    }
    crate::out!("{}", render::server_properties(&l, &cfg));
    Ok(Outcome::Done)
}

pub fn exec_cmd(a: &BrokerExecArgs) -> Result<Outcome> {
    use std::os::unix::process::CommandExt;
    let (cfg, from) = read_config(None)?;
    let node = layout(&a.node, &a.data_dir, "0.0.0.0")?;
    let kafka = KafkaHome::locate(a.kafka.kafka_home.as_deref())?;
    let java = java()?;
    let conf = a
        .config_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("klab-broker"));
    std::fs::create_dir_all(&conf).with_context(|| format!("creating {}", conf.display()))?;
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    let props = conf.join("server.properties");
    let log4j = conf.join("log4j2.properties");
    std::fs::write(&props, render::server_properties(&node, &cfg))?;
    std::fs::write(&log4j, render::LOG4J2_PROPERTIES)?;
    crate::errln!(
        "klab broker: Kafka {} from {}, node {} of {}, config from {from}: {cfg}",
        kafka.version,
        kafka.dir.display(),
        node.node_id,
        node.cluster_size
    );
    if !a.data_dir.join("meta.properties").exists() {
        let id = cluster_id(&a.node);
        crate::broker::node::format_storage(&java, &kafka, &log4j, &props, &id)
            .with_context(|| format!("formatting {}", a.data_dir.display()))?;
    }
    let err = std::process::Command::new(&java)
        .args(render::jvm_flags(&cfg, &log4j, &conf.join("gc.log")))
        .arg(format!("-Dkafka.logs.dir={}", conf.display()))
        .args(["-cp", &kafka.classpath(), "kafka.Kafka"])
        .arg(&props)
        .exec();
    Err(anyhow::Error::new(err).context(format!("executing {}", java.display())))
}

/// `klab broker set`: dynamic changes to a running broker, then (with
/// `--clear`) back to its static config; prints the effective config as one
/// JSON line. The Kubernetes target runs it in the tuner pod.
pub fn set_cmd(a: &crate::cli::BrokerSetArgs) -> Result<Outcome> {
    use std::collections::BTreeMap;
    let mut changes = BTreeMap::new();
    for (k, v) in &a.set {
        let info = crate::broker::knobs::check_setting(k, v).map_err(|e| usage!("--set: {e}"))?;
        if !info.is_dynamic() {
            return Err(usage!(
                "--set {k}: this setting needs a broker restart; klab broker set only changes dynamic settings"
            ));
        }
        changes.insert(k.clone(), v.clone());
    }
    super::check_bootstrap(&a.bootstrap)?;
    let mut broker = crate::broker::external::ExternalBroker::connect(&a.bootstrap)?;
    if !changes.is_empty() {
        broker.set_dynamic(&changes)?;
    }
    if a.clear {
        broker.clear_dynamic()?;
    }
    let effective = broker.effective();
    crate::outln!("{}", serde_json::to_string(&effective)?);
    Ok(Outcome::Done)
}
