//! Labs: numbered exercises, each a worse broker than the one before.
//!
//! A lab directory `labs/NN-slug/` holds `lab.toml` (see [`file`]) and a
//! `README.md` walkthrough. A lab names the lab it extends; its broker
//! config, fix and workload are the extended lab's with its own laid on top.

pub mod bundle;
pub mod calibration;
pub mod capacity;
pub mod expect;
pub mod file;
pub mod fix;
pub mod located;
mod network;
pub mod rehearse;
pub mod run;
pub mod session;
pub mod summary;
pub mod target;
pub mod template;
pub mod verdict;

use crate::model::{BrokerConfig, Workload};
use crate::usage;
use anyhow::Result;
use file::{Expect, Fix, LabFile, RateSpec, WorkloadPatch, parse_file};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const ENV_LABS_DIR: &str = "KLAB_LABS_DIR";

/// One lab with its `extends` chain resolved.
#[derive(Debug, Clone)]
pub struct Lab {
    /// Directory name, e.g. `03-one-io-thread`.
    pub id: String,
    /// The number part, e.g. `03`.
    pub number: String,
    pub dir: PathBuf,
    pub title: String,
    pub summary: Option<String>,
    pub extends: Option<String>,
    /// What this lab itself changes on the broker.
    pub changes: BrokerConfig,
    /// The degraded broker: every lab's changes along the chain.
    pub broker: BrokerConfig,
    /// Healthy values for what the chain broke.
    pub fix: Fix,
    /// What this lab changes in the workload, as `key=value`.
    pub workload_changes: Vec<String>,
    pub workload: WorkloadPatch,
    pub quick: WorkloadPatch,
    pub expect: Expect,
    /// Which lab set each setting (`heap`, Kafka keys, `producer.linger.ms`).
    pub origin: BTreeMap<String, String>,
    /// Brokers of the local cluster (`[cluster] brokers`, inherited; 1).
    pub brokers: u32,
    /// The file that gave this lab its `[[faults]]` (the lab's own or one
    /// it extends), and where each fault's fields are in it.
    pub faults_from: Option<(PathBuf, Vec<file::FaultSpans>)>,
    /// The file of the chain whose `[network]` the lab runs with, and the
    /// line and column of its first setting.
    pub network_from: Option<(PathBuf, usize, usize)>,
    /// `[capacity]` along the chain (`klab capacity --lab`).
    pub capacity: capacity::CapacityPatch,
}

impl Lab {
    /// A lab with no file behind it: Kafka's defaults on one broker, no
    /// fix, no expectations (`klab capacity` without `--lab`).
    pub fn bare(id: &str, dir: PathBuf) -> Lab {
        Lab {
            id: id.into(),
            number: id.into(),
            dir,
            title: format!("klab {id}"),
            summary: None,
            extends: None,
            changes: BrokerConfig::default(),
            broker: BrokerConfig::default(),
            fix: Fix::default(),
            workload_changes: Vec::new(),
            workload: WorkloadPatch::default(),
            quick: WorkloadPatch::default(),
            expect: Expect::default(),
            origin: BTreeMap::new(),
            brokers: 1,
            faults_from: None,
            network_from: None,
            capacity: capacity::CapacityPatch::default(),
        }
    }

    /// Refuses, before anything starts, a cluster of `brokers` (`--brokers`
    /// when given, else the lab's own `[cluster] brokers`) too small for
    /// the replication factor the lab's workload asks for.
    pub fn check_brokers(&self, brokers: Option<u32>) -> Result<()> {
        let (n, whose) = match brokers {
            Some(n) => (n, "--brokers"),
            None => (self.brokers, "[cluster] brokers"),
        };
        let file = self.dir.join("lab.toml");
        check_replication(&self.workload, &self.quick, n, whose, &file)?;
        match &self.workload.network {
            Some(net) => net
                .check_nodes(n)
                .map_err(|e| usage!("{}: network.{e} ({whose})", file.display())),
            None => Ok(()),
        }
    }

    /// Whether the lab's steps set links, so its cluster starts behind
    /// proxies.
    pub fn needs_network(&self) -> bool {
        self.workload.network.is_some()
    }

    /// The broker after a fix: degraded config with the fix laid on top.
    pub fn fixed_broker(&self, fix: &Fix) -> BrokerConfig {
        self.broker.overlay(&fix.broker)
    }

    /// The workload after a fix (producer settings laid on top).
    pub fn fixed_workload(
        &self,
        fix: &Fix,
        quick: bool,
        capacity: Option<f64>,
    ) -> Result<Workload> {
        let mut w = self.workload(quick, capacity)?;
        for (k, v) in &fix.producer {
            w.producer.insert(k.clone(), v.clone());
        }
        if let Some(a) = fix.acks {
            w.acks = a;
        }
        if let Some(n) = fix.min_insync_replicas {
            w.min_insync_replicas = Some(n);
        }
        if let Some(n) = fix.partitions {
            w.partitions = n;
        }
        if let Some(n) = fix.consumers {
            w.consumers = n;
        }
        for (k, v) in &fix.consumer {
            w.consumer.insert(k.clone(), v.clone());
        }
        w.validate().map_err(|e| usage!("fix: {e}"))?;
        Ok(w)
    }

    /// A capacity lab stands alone: its own settings against its fix, each
    /// measured by a capacity search (`[expect.capacity]`).
    pub fn is_capacity_lab(&self) -> bool {
        self.expect.capacity_at_least.is_some()
    }

    /// "heap=256m num.io.threads=1" — what this lab makes worse.
    pub fn what_changed(&self) -> String {
        if self.extends.is_none() {
            return "(reference)".into();
        }
        let mut parts = self.changes.lines();
        parts.extend(self.workload_changes.iter().cloned());
        if parts.is_empty() {
            "(reference)".into()
        } else {
            parts.join(" ")
        }
    }

    /// The workload to run. `capacity` (records/s of lab 01 at max) is
    /// needed when the rate is a share of capacity.
    pub fn workload(&self, quick: bool, capacity: Option<f64>) -> Result<Workload> {
        let p = if quick {
            self.workload.overlay(&self.quick)
        } else {
            self.workload.clone()
        };
        crate::model::WorkloadPatch::resolve(&p, capacity)
            .map_err(|e| usage!("{}: workload: {e}", self.dir.join("lab.toml").display()))
    }

    /// True when the rate is given as a share of the machine's capacity.
    pub fn needs_capacity(&self) -> bool {
        matches!(self.workload.rate, Some(RateSpec::OfCapacity(_)))
    }
}

/// All labs of a directory, in order.
#[derive(Debug, Clone)]
pub struct Labs {
    pub dir: PathBuf,
    pub labs: Vec<Lab>,
}

/// Where the labs are: `--labs`, `$KLAB_LABS_DIR`, `./labs` (a checkout,
/// where a student edits), `$KLAB_DEFAULT_LABS_DIR` (set by the Nix
/// package), or the labs installed beside the binary (`../share/klab/labs`).
pub fn labs_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    if let Some(d) = std::env::var_os(ENV_LABS_DIR).filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    let here = PathBuf::from("labs");
    if here.is_dir() {
        return here;
    }
    if let Some(d) = std::env::var_os("KLAB_DEFAULT_LABS_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        let shared = bin.join("../share/klab/labs");
        if shared.is_dir() {
            return shared;
        }
    }
    here
}

/// `NN-slug` → `NN` when the name starts with two or more digits and a dash.
fn number_of(name: &str) -> Option<&str> {
    let (num, rest) = name.split_once('-')?;
    (num.len() >= 2 && num.chars().all(|c| c.is_ascii_digit()) && !rest.is_empty()).then_some(num)
}

/// What a lab folder's name may hold besides its `NN-` number: ASCII
/// letters, digits, `-`, `_` and `.`. The name is the lab's id everywhere:
/// in tables, result files, events and `/metrics` labels.
const LAB_NAME_CHARS: &str = "ASCII letters, digits, '-', '_' and '.'";

/// Refuses a lab folder name with characters outside [`LAB_NAME_CHARS`].
fn check_lab_name(name: &str) -> std::result::Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    match name.chars().find(|c| !ok(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{c:?} cannot be in a lab's name; a lab folder is named NN-name with only {LAB_NAME_CHARS}"
        )),
    }
}

impl Labs {
    /// Loads and resolves every `NN-slug/lab.toml` under `dir`.
    pub fn load(dir: &Path) -> Result<Labs> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            usage!(
                "no labs at {} ({e}); run klab from the repository, or pass --labs DIR or set {ENV_LABS_DIR}",
                dir.display()
            )
        })?;
        let mut files: BTreeMap<String, LabFile> = BTreeMap::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if number_of(&name).is_none() || !e.path().join("lab.toml").is_file() {
                continue;
            }
            check_lab_name(&name).map_err(|why| usage!("{}: {why}", e.path().display()))?;
            let f = parse_file(&e.path().join("lab.toml")).map_err(|e| usage!("{e}"))?;
            files.insert(name, f);
        }
        if files.is_empty() {
            return Err(usage!("no labs (NN-name/lab.toml) in {}", dir.display()));
        }
        let mut labs = Vec::new();
        for id in files.keys() {
            labs.push(resolve(dir, id, &files)?);
        }
        Ok(Labs {
            dir: dir.to_path_buf(),
            labs,
        })
    }

    /// A lab by number (`3`, `03`), by id (`03-one-io-thread`) or by path.
    pub fn get(&self, key: &str) -> Result<&Lab> {
        let k = key.trim().trim_end_matches('/');
        let by_path = Path::new(k)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .filter(|_| k.contains('/'));
        let found = self.labs.iter().find(|l| {
            l.id == k
                || l.number == k
                || k.parse::<u32>()
                    .ok()
                    .is_some_and(|n| l.number.parse::<u32>().ok() == Some(n))
                || by_path.as_deref() == Some(l.id.as_str())
                || (k.ends_with("lab.toml") && l.dir.join("lab.toml") == Path::new(k))
        });
        found.ok_or_else(|| {
            usage!(
                "no lab '{key}' in {}; the labs are: {}",
                self.dir.display(),
                self.labs
                    .iter()
                    .map(|l| l.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// The reference lab every other is compared with: the first lab.
    pub fn baseline(&self) -> &Lab {
        &self.labs[0]
    }
}

/// The name of the track the labs directory itself holds (labs 01..08).
pub const MAIN_TRACK: &str = "broker";

/// The tracks of a labs directory: its own labs (the main track,
/// [`MAIN_TRACK`]) and every subdirectory that holds labs (`durability/`,
/// `client/`), each a sequence of its own with its own reference.
pub fn tracks(dir: &Path) -> Vec<(String, PathBuf)> {
    let holds_labs = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                number_of(&e.file_name().to_string_lossy()).is_some()
                    && e.path().join("lab.toml").is_file()
            })
        })
    };
    let mut out = Vec::new();
    if holds_labs(dir) {
        out.push((MAIN_TRACK.to_string(), dir.to_path_buf()));
    }
    let mut subs: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.path().is_dir() && number_of(&e.file_name().to_string_lossy()).is_none()
                })
                .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
                .filter(|(_, p)| holds_labs(p))
                .collect()
        })
        .unwrap_or_default();
    subs.sort();
    out.extend(subs);
    out
}

/// The labs of track `name` under `dir` (an error lists the tracks).
pub fn load_track(dir: &Path, name: &str) -> Result<Labs> {
    let all = tracks(dir);
    match all.iter().find(|(n, _)| n == name) {
        Some((_, d)) => Labs::load(d),
        None => Err(usage!(
            "--track {name}: no such track in {}; the tracks are: {}",
            dir.display(),
            all.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Loads the labs of the directory a lab path lives in and returns the id.
/// A key is a lab of the main track (`05`, `05-starved-heap`), a lab of
/// another track (`durability/02`), or a path to a lab folder.
pub fn load_with(dir_flag: Option<&Path>, key: &str) -> Result<(Labs, String)> {
    let p = Path::new(key);
    let lab_dir = if p.file_name().is_some_and(|n| n == "lab.toml") {
        p.parent().map(Path::to_path_buf)
    } else if p.join("lab.toml").is_file() {
        Some(p.to_path_buf())
    } else {
        None
    };
    if let Some(d) = lab_dir {
        let d = if d.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            d
        };
        let abs = std::fs::canonicalize(&d).unwrap_or(d);
        let parent = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        let labs = Labs::load(&parent)?;
        let id = abs
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let id = labs.get(&id)?.id.clone();
        return Ok((labs, id));
    }
    let root = labs_dir(dir_flag);
    let found = match key.split_once('/') {
        Some((track, lab)) if tracks(&root).iter().any(|(n, _)| n == track) => {
            let labs = load_track(&root, track)?;
            labs.get(lab).map(|l| l.id.clone()).map(|id| (labs, id))
        }
        _ => {
            let labs = Labs::load(&root)?;
            labs.get(key).map(|l| l.id.clone()).map(|id| (labs, id))
        }
    };
    found.map_err(|e| unknown_lab(&root, key).unwrap_or(e))
}

/// A lab name that no track has: the closest name of every track's labs
/// (a misspelt track or lab), and every lab by track.
fn unknown_lab(root: &Path, key: &str) -> Option<anyhow::Error> {
    let mut names: Vec<String> = Vec::new();
    let mut by_track: Vec<String> = Vec::new();
    for (track, dir) in tracks(root) {
        let labs = Labs::load(&dir).ok()?;
        let ids: Vec<String> = labs
            .labs
            .iter()
            .map(|l| rehearse::qualified(&track, &l.id))
            .collect();
        by_track.push(format!("{track}: {}", ids.join(", ")));
        for (l, id) in labs.labs.iter().zip(&ids) {
            names.push(id.clone());
            // `durability/03` as well as `durability/03-acks-one`.
            names.push(rehearse::qualified(&track, &l.number));
        }
    }
    let key = key.trim().trim_end_matches('/');
    // A part of a name (`acks-one`), else a name a few typos away.
    let part = (key.chars().count() >= 3)
        .then(|| names.iter().find(|n| n.contains(key)))
        .flatten()
        .map(String::as_str);
    let near = || {
        let edits = (key.chars().count() / 3).max(1);
        crate::error::closest(key, names.iter().map(String::as_str), edits)
    };
    let hint = part
        .or_else(near)
        .map(|n| format!(" (did you mean {n}?)"))
        .unwrap_or_default();
    Some(usage!(
        "no lab '{key}' in {}{hint}. The labs, by track: {}",
        root.display(),
        by_track.join("; ")
    ))
}

fn resolve(dir: &Path, id: &str, files: &BTreeMap<String, LabFile>) -> Result<Lab> {
    // The chain from the root to `id`.
    let mut chain: Vec<&str> = vec![id];
    let mut seen: BTreeSet<&str> = [id].into();
    let mut cur = id;
    while let Some((ext, line, col)) = &files[cur].extends {
        let target = files.keys().find(|k| {
            k.as_str() == ext
                || number_of(k) == Some(ext.as_str())
                || ext
                    .parse::<u32>()
                    .ok()
                    .is_some_and(|n| number_of(k).and_then(|x| x.parse().ok()) == Some(n))
        });
        let Some(target) = target else {
            return Err(usage!(
                "{}:{line}:{col}: extends: no lab '{ext}' in {}; the labs are: {}",
                files[cur].path.display(),
                dir.display(),
                files.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        };
        if !seen.insert(target.as_str()) {
            chain.push(target);
            return Err(usage!(
                "{}:{line}:{col}: extends: the labs form a cycle: {}",
                files[cur].path.display(),
                chain.join(" → ")
            ));
        }
        chain.push(target);
        cur = target;
    }
    chain.reverse();

    let mut broker = BrokerConfig::default();
    let mut fix = Fix::default();
    let mut workload = WorkloadPatch::default();
    let mut quick = WorkloadPatch::default();
    let mut origin = BTreeMap::new();
    let mut workload_changes = Vec::new();
    let mut brokers = 1;
    let mut faults_from = None;
    let mut network_from = None;
    let mut replication_from = None;
    let mut cap = capacity::CapacityPatch::default();
    for lab_id in &chain {
        let f = &files[*lab_id];
        cap = cap.overlay(&f.capacity);
        if let Some((n, _, _)) = f.brokers {
            brokers = n;
        }
        if f.workload.faults.is_some() {
            faults_from = Some((f.path.clone(), f.fault_spans.clone()));
        }
        if let Some((l, c)) = f.network_at {
            network_from = Some((f.path.clone(), l, c));
        }
        if f.workload.replication_factor.is_some() || f.quick.replication_factor.is_some() {
            replication_from = Some(f.path.clone());
        }
        if f.broker.heap.is_some() {
            origin.insert("heap".to_string(), lab_id.to_string());
        }
        for k in f.broker.properties.keys() {
            origin.insert(k.clone(), lab_id.to_string());
        }
        for k in f.workload.producer.keys() {
            origin.insert(format!("producer.{k}"), lab_id.to_string());
        }
        for k in f.workload.consumer.keys() {
            origin.insert(format!("consumer.{k}"), lab_id.to_string());
        }
        let w = &f.workload;
        for (key, set) in [
            ("acks", w.acks.is_some()),
            ("min_insync_replicas", w.min_insync_replicas.is_some()),
            ("partitions", w.partitions.is_some()),
            ("consumers", w.consumers.is_some()),
        ] {
            if set {
                origin.insert(key.to_string(), lab_id.to_string());
            }
        }
        broker = broker.overlay(&f.broker);
        fix = fix.overlay(&f.fix);
        if *lab_id == id {
            workload_changes = if chain.len() > 1 {
                workload.changes(&f.workload)
            } else {
                Vec::new()
            };
        }
        workload = workload.overlay(&f.workload);
        quick = quick.overlay(&f.quick);
    }
    let f = &files[id];
    check_faults(f, &workload, &quick, brokers)?;
    if let (Some(net), Some((file, l, c))) = (&workload.network, &network_from) {
        net.check_nodes(brokers).map_err(|e| {
            usage!(
                "{}:{l}:{c}: network.{e} ([cluster] brokers = {brokers})",
                file.display()
            )
        })?;
    }
    if let Some(from) = &replication_from {
        check_replication(&workload, &quick, brokers, "[cluster] brokers", from)?;
    }
    let expect = f.expect.clone();
    Ok(Lab {
        id: id.to_string(),
        number: number_of(id).unwrap_or(id).to_string(),
        dir: dir.join(id),
        title: f.title.clone(),
        summary: f.summary.clone(),
        extends: chain.len().checked_sub(2).map(|i| chain[i].to_string()),
        changes: f.broker.clone(),
        broker,
        fix,
        workload_changes,
        workload,
        quick,
        expect,
        origin,
        brokers,
        faults_from,
        network_from,
        capacity: cap,
    })
}

/// The workload's replication factor (normal and quick) against a cluster
/// of `brokers` (`whose`: where that number comes from); the error names
/// the file that set the factor.
fn check_replication(
    workload: &WorkloadPatch,
    quick: &WorkloadPatch,
    brokers: u32,
    whose: &str,
    file: &Path,
) -> Result<()> {
    let rf = workload
        .overlay(quick)
        .replication_factor
        .max(workload.replication_factor);
    match rf {
        Some(rf) if rf > brokers => Err(usage!(
            "{}: workload.replication_factor = {rf} needs at least {rf} brokers, and the cluster has {brokers} ({whose}); give the lab [cluster] brokers = {rf}, or run it with --brokers {rf}",
            file.display()
        )),
        _ => Ok(()),
    }
}

/// A lab's own faults against its resolved workload (normal and quick)
/// and cluster: each fires inside the measured window, on a broker that
/// exists. The error points at the fault's line.
fn check_faults(
    f: &LabFile,
    workload: &WorkloadPatch,
    quick: &WorkloadPatch,
    brokers: u32,
) -> Result<()> {
    let Some(faults) = &workload.faults else {
        return Ok(());
    };
    for (i, fault) in faults.iter().enumerate() {
        let (line, col) = f.fault_spans.get(i).map(|s| s.at).unwrap_or((0, 0));
        let at = |msg: String| usage!("{}:{line}:{col}: faults[{}].{msg}", f.path.display(), i + 1);
        for (what, patch) in [
            ("", workload),
            (" (with --quick)", &workload.overlay(quick)),
        ] {
            let window = patch.duration.or(Workload::default().duration);
            if patch.messages.is_some() {
                return Err(at(
                    "at: faults need a workload with a duration, not a message count".into(),
                ));
            }
            fault
                .validate(window)
                .map_err(|e| at(format!("{e}{what}")))?;
        }
        if let crate::model::FaultTarget::Node(n) = fault.broker
            && n > brokers
        {
            return Err(at(format!(
                "broker: {n} of {brokers}; this lab's cluster has brokers 1..={brokers} ([cluster] brokers)"
            )));
        }
    }
    for patch in [workload, &workload.overlay(quick)] {
        let consumers = patch.consumers.unwrap_or(Workload::default().consumers);
        if let Some((i, e)) = crate::model::consumer_event_error(patch.group, consumers, faults) {
            let (line, col) = f.fault_spans.get(i).map(|s| s.broker).unwrap_or((0, 0));
            return Err(usage!(
                "{}:{line}:{col}: faults[{}].{e}",
                f.path.display(),
                i + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, id: &str, text: &str) {
        std::fs::create_dir_all(dir.join(id)).unwrap();
        std::fs::write(dir.join(id).join("lab.toml"), text).unwrap();
    }

    #[test]
    fn inheritance_lays_labs_on_top_of_each_other() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "01-base",
            "title = \"base\"\n[broker]\nheap = \"1g\"\n[workload]\nrate = 1000\nduration = \"10s\"\n[workload.producer]\n\"linger.ms\" = 5\n",
        );
        write(
            d.path(),
            "02-heap",
            "title = \"heap\"\nextends = \"01\"\n[broker]\nheap = \"256m\"\n[fix]\nheap = \"1g\"\n",
        );
        write(
            d.path(),
            "03-io",
            "title = \"io\"\nextends = \"02-heap\"\n[broker.properties]\n\"num.io.threads\" = 1\n[fix.properties]\n\"num.io.threads\" = 8\n[workload.producer]\n\"linger.ms\" = 0\n",
        );
        let labs = Labs::load(d.path()).unwrap();
        assert_eq!(labs.labs.len(), 3);
        let l = labs.get("3").unwrap();
        assert_eq!(l.id, "03-io");
        assert_eq!(l.broker.heap.map(|h| h.jvm()), Some("256m".into()));
        assert_eq!(l.broker.properties["num.io.threads"], "1");
        assert_eq!(
            l.fixed_broker(&l.fix).heap.map(|h| h.jvm()),
            Some("1g".into())
        );
        assert_eq!(l.fixed_broker(&l.fix).properties["num.io.threads"], "8");
        assert_eq!(l.origin["heap"], "02-heap");
        assert_eq!(l.origin["num.io.threads"], "03-io");
        assert_eq!(l.origin["producer.linger.ms"], "03-io");
        assert_eq!(l.what_changed(), "num.io.threads=1 linger.ms=0");
        let w = l.workload(false, None).unwrap();
        assert_eq!(w.rate, Some(1000.0));
        assert_eq!(w.producer["linger.ms"], "0");
        assert_eq!(labs.baseline().id, "01-base");
        assert_eq!(labs.baseline().what_changed(), "(reference)");
        assert_eq!(l.extends.as_deref(), Some("02-heap"));
    }

    #[test]
    fn unknown_missing_and_cyclic_labs() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "01-a", "title = \"a\"\n");
        write(d.path(), "02-b", "title = \"b\"\nextends = \"07\"\n");
        let e = Labs::load(d.path()).unwrap_err();
        assert!(crate::error::is_usage(&e));
        let msg = e.to_string();
        assert!(msg.contains("02-b/lab.toml:2:"), "{msg}");
        assert!(msg.contains("no lab '07'"), "{msg}");

        write(d.path(), "02-b", "title = \"b\"\nextends = \"03\"\n");
        write(d.path(), "03-c", "title = \"c\"\nextends = \"02\"\n");
        let msg = Labs::load(d.path()).unwrap_err().to_string();
        assert!(msg.contains("cycle"), "{msg}");

        write(d.path(), "02-b", "title = \"b\"\nextends = \"01\"\n");
        write(d.path(), "03-c", "title = \"c\"\nextends = \"02\"\n");
        let labs = Labs::load(d.path()).unwrap();
        let msg = labs.get("42").unwrap_err().to_string();
        assert!(msg.contains("01-a, 02-b, 03-c"), "{msg}");
    }

    #[test]
    fn faults_and_clusters_are_inherited_and_checked() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "01-base",
            "title = \"base\"\n[cluster]\nbrokers = 3\n[workload]\nrate = 1000\nduration = \"20s\"\n[quick]\nduration = \"6s\"\n",
        );
        write(
            d.path(),
            "02-kill",
            "title = \"kill\"\nextends = \"01\"\n[[faults]]\nat = \"3s\"\naction = \"kill\"\nbroker = \"leader\"\nrestart_after = \"2s\"\n",
        );
        let labs = Labs::load(d.path()).unwrap();
        let l = labs.get("02").unwrap();
        assert_eq!(l.brokers, 3);
        let w = l.workload(true, None).unwrap();
        assert_eq!(w.faults.len(), 1);
        assert_eq!(w.faults[0].action, crate::model::FaultAction::Kill);
        assert!(
            labs.baseline()
                .workload(false, None)
                .unwrap()
                .faults
                .is_empty()
        );

        let bad = |text: &str| {
            write(d.path(), "02-kill", text);
            Labs::load(d.path()).unwrap_err().to_string()
        };
        let head = "title = \"kill\"\nextends = \"01\"\n[[faults]]\n";
        // Inside the full window but not the quick one.
        let e = bad(&format!(
            "{head}at = \"10s\"\naction = \"kill\"\nbroker = 1\n"
        ));
        assert!(
            e.contains("02-kill/lab.toml:4:6: faults[1].at") && e.contains("--quick"),
            "{e}"
        );
        let e = bad(&format!(
            "{head}at = \"1s\"\naction = \"explode\"\nbroker = 1\n"
        ));
        assert!(
            e.contains(":5:")
                && e.contains("faults[1].action")
                && e.contains("kill, stop, pause, restart"),
            "{e}"
        );
        let e = bad(&format!(
            "{head}at = \"1s\"\naction = \"kill\"\nbroker = 4\n"
        ));
        assert!(e.contains("broker: 4 of 3"), "{e}");
        let e = bad(&format!(
            "{head}at = \"1s\"\naction = \"pause\"\nbroker = 1\n"
        ));
        assert!(e.contains("faults[1].for"), "{e}");
        let e = bad(&format!(
            "{head}at = \"1s\"\naction = \"kill\"\nbroker = \"me\"\n"
        ));
        assert!(e.contains(":6:") && e.contains("faults[1].broker"), "{e}");
        let e = bad(&format!(
            "{head}at = \"1s\"\naction = \"kill\"\nbroker = 1\ncolour = 1\n"
        ));
        assert!(e.contains("colour"), "{e}");
        // Consumer events: a member by its number, of a group.
        let e = bad(&format!(
            "{head}at = \"1s\"\naction = \"leave\"\nbroker = 1\nconsumer = 2\n"
        ));
        assert!(
            e.contains(":7:")
                && e.contains(
                    "faults[1].consumer: a fault acts on a broker or on a consumer, not both"
                ),
            "{e}"
        );
        let e = bad(&format!(
            "{head}at = \"1s\"\naction = \"leave\"\nconsumer = 0\n"
        ));
        assert!(
            e.contains(":6:") && e.contains("faults[1].consumer: '0' is not a consumer"),
            "{e}"
        );
        let e = bad(&format!(
            "{head}at = \"1s\"\naction = \"leave\"\nconsumer = 1\n"
        ));
        assert!(
            e.contains("leave acts on a member of a consumer group"),
            "{e}"
        );
        let e = bad("title = \"kill\"\nextends = \"01\"\n[cluster]\nbrokers = 9\n");
        assert!(
            e.contains("cluster.brokers: 9 is out of range; expected 1..=5"),
            "{e}"
        );
    }

    #[test]
    fn a_network_is_inherited_and_its_zones_checked_against_the_cluster() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "01-base",
            "title = \"base\"\n[cluster]\nbrokers = 3\n[network]\nzones = [\"a\", \"b\", \"c\"]\nclient_zone = \"a\"\nzone_latency = \"2ms\"\n",
        );
        write(d.path(), "02-next", "title = \"next\"\nextends = \"01\"\n");
        let labs = Labs::load(d.path()).unwrap();
        let next = labs.get("02").unwrap();
        assert!(next.needs_network());
        assert_eq!(next.network_from.as_ref().map(|(_, l, _)| *l), Some(5));
        let e = next.check_brokers(Some(2)).unwrap_err().to_string();
        assert!(
            e.contains("3 zone(s) given (a, b, c) for a cluster of 2"),
            "{e}"
        );
        write(
            d.path(),
            "02-next",
            "title = \"next\"\nextends = \"01\"\n[cluster]\nbrokers = 1\n",
        );
        let e = format!("{:#}", Labs::load(d.path()).unwrap_err());
        assert!(
            e.contains("01-base/lab.toml:5:") && e.contains("([cluster] brokers = 1)"),
            "{e}"
        );
    }

    #[test]
    fn capacity_settings_are_inherited_and_checked() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "01-base",
            "title = \"base\"\n[capacity]\nslo_p99 = \"20ms\"\nmax_probes = 10\n",
        );
        write(
            d.path(),
            "02-next",
            "title = \"next\"\nextends = \"01\"\n[capacity]\nresolution = \"10%\"\n",
        );
        let labs = Labs::load(d.path()).unwrap();
        let s = labs.get("02").unwrap().capacity.settings();
        assert_eq!((s.slo_p99_ms, s.resolution, s.max_probes), (20.0, 0.10, 10));
        for (text, expect) in [
            (
                "resolution = \"50%\"",
                "capacity.resolution: 50% is not allowed",
            ),
            ("slo_p99 = \"0ms\"", "capacity.slo_p99: must be above 0"),
            ("max_probes = 1", "capacity.max_probes: 1 is out of range"),
            ("slo = 1", "unknown field"),
        ] {
            write(
                d.path(),
                "03-bad",
                &format!("title = \"bad\"\nextends = \"01\"\n[capacity]\n{text}\n"),
            );
            let e = Labs::load(d.path()).unwrap_err().to_string();
            assert!(
                e.contains("03-bad/lab.toml:4:") && e.contains(expect),
                "{e}"
            );
        }
    }

    #[test]
    fn a_lab_folder_name_that_cannot_be_a_name_is_refused() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "01-base", "title = \"base\"\n");
        write(d.path(), "02-ok_name.v2", "title = \"ok\"\n");
        assert_eq!(Labs::load(d.path()).unwrap().labs.len(), 2);
        write(
            d.path(),
            "03-x\"} 1\nklab_lost_records_total 9\n# EOF",
            "title = \"evil\"\n",
        );
        let e = Labs::load(d.path()).unwrap_err();
        assert!(crate::error::is_usage(&e), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("03-x") && msg.contains("'\"'"), "{msg}");
        assert!(msg.contains(LAB_NAME_CHARS), "{msg}");
    }

    #[test]
    fn a_bad_file_fails_the_whole_set_with_its_location() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "01-a",
            "title = \"a\"\n[workload]\npartitions = -1\n",
        );
        let msg = Labs::load(d.path()).unwrap_err().to_string();
        assert!(
            msg.contains("01-a/lab.toml:3:14: workload.partitions"),
            "{msg}"
        );
    }

    #[test]
    fn capacity_shares_need_a_capacity() {
        let p = WorkloadPatch {
            rate: Some(RateSpec::OfCapacity(0.5)),
            ..Default::default()
        };
        assert!(crate::model::WorkloadPatch::resolve(&p, None).is_err());
        assert_eq!(
            crate::model::WorkloadPatch::resolve(&p, Some(1000.0))
                .unwrap()
                .rate,
            Some(500.0)
        );
    }
}
