//! A local cluster's network: one Toxiproxy process with a proxy in front
//! of every listener a connection between two parties uses, so that each
//! link (the clients to node N, node M to node N for replication, node M to
//! controller N) is a proxy of its own whose delay, pace and cuts klab sets.
//!
//! Per link, not per destination: a node replicates over a listener named
//! after itself (`FROM_NODE_<m>`, see `render::NodeLinks`), and each node's
//! `controller.quorum.voters` names its own proxies to the other voters.
//! What a proxy cannot do: drop single packets (it works on a TCP stream,
//! so there is no loss and no retransmission), or pace the bandwidth of a
//! node as a whole (Toxiproxy paces each connection).

use super::{LocalBroker, Node};
use crate::broker::render::{NodeLayout, NodeLinks, Voter};
use crate::model::network::{Link, Network, Source};
use crate::net::toxiproxy::{Stream, Toxic, ToxicKind, Toxiproxy};
use anyhow::{Context, Result, anyhow};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What a link carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// Produce, fetch and metadata requests of the clients.
    Clients,
    /// A follower's fetches from its leader (and other broker-to-broker
    /// requests).
    Replication,
    /// KRaft: votes, the metadata log, brokers' heartbeats.
    Controller,
}

/// One proxied link and what is set on it.
#[derive(Debug, Clone)]
pub struct ProxiedLink {
    pub name: String,
    pub from: Source,
    /// The node the link leads to (1 = the first).
    pub to: u32,
    pub carries: Carries,
    /// The settings its toxics carry now.
    applied: Link,
    /// Faults cutting it now (its cut toxics exist while this is above 0).
    cuts: u32,
    /// The toxics a `slow` fault put on it, by name.
    slowed: Vec<String>,
}

/// Which of a node's links a fault cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Every link between the node and the other nodes.
    Nodes,
    /// Only the replication links between the node and the other nodes.
    Replication,
    /// The clients' link to the node.
    Clients,
    /// Every link to and from the node.
    All,
}

impl ProxiedLink {
    /// Whether the link leads to or from `node`.
    fn touches(&self, node: u32) -> bool {
        self.to == node || self.from == Source::Node(node)
    }

    fn cut_by(&self, node: u32, cut: Cut) -> bool {
        self.touches(node)
            && match cut {
                Cut::Nodes => self.carries != Carries::Clients,
                Cut::Replication => self.carries == Carries::Replication,
                Cut::Clients => self.carries == Carries::Clients,
                Cut::All => true,
            }
    }
}

/// The proxies of a local cluster, and the settings on them.
pub struct ClusterNetwork {
    proxy: Toxiproxy,
    links: Vec<ProxiedLink>,
}

/// The toxics a link's settings become: a delay and a pace each way, named
/// `{prefix}latency-to`, `{prefix}bandwidth-back`, ...
fn toxics(l: &Link, prefix: &str) -> Vec<Toxic> {
    let mut out = Vec::new();
    let ways = [(Stream::Upstream, "to"), (Stream::Downstream, "back")];
    for ((delay, jitter), (stream, way)) in l.directions().into_iter().zip(ways) {
        if delay > 0 || jitter > 0 {
            out.push(Toxic::new(
                format!("{prefix}latency-{way}"),
                stream,
                ToxicKind::Latency {
                    latency_ms: delay,
                    jitter_ms: jitter,
                },
            ));
        }
        if let Some(b) = l.bandwidth {
            out.push(Toxic::new(
                format!("{prefix}bandwidth-{way}"),
                stream,
                ToxicKind::Bandwidth {
                    kbytes_per_s: (b / 1000).max(1),
                },
            ));
        }
    }
    out
}

impl ClusterNetwork {
    /// Starts the proxy process in `dir/network/`, puts a proxy in front of
    /// every link of the nodes in `layouts` (which are not started yet: a
    /// proxy dials its node only when a connection comes), and gives each
    /// layout its proxied listeners.
    pub fn start(dir: &Path, layouts: &mut [(NodeLayout, PathBuf)]) -> Result<ClusterNetwork> {
        let binary = Toxiproxy::binary()?;
        let proxy = Toxiproxy::start(&binary, &dir.join("network"))
            .context("starting the network's proxy (Toxiproxy)")?;
        let n = layouts.len();
        // Per node: the client listener and one listener per node it
        // replicates from (its own included: Kafka wants the listener a
        // node replicates over among its own).
        // Held until every proxy is bound, so none is given one of them.
        let reserved = super::layout::free_ports(n * (n + 1))?;
        let port = |node: usize, k: usize| reserved.ports[node * (n + 1) + k];
        let host = |p: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], p)) };
        let mut links = Vec::new();
        let mut add = |name: String, from: Source, to: usize, carries, upstream: u16| {
            let listen = proxy
                .create_proxy(&name, host(upstream))
                .with_context(|| format!("creating the proxy {name}"))?;
            links.push(ProxiedLink {
                name,
                from,
                to: to as u32 + 1,
                carries,
                applied: Link::default(),
                cuts: 0,
                slowed: Vec::new(),
            });
            anyhow::Ok(listen.port())
        };
        let mut node_links = Vec::new();
        for (i, (layout, _)) in layouts.iter().enumerate() {
            let client = add(
                format!("clients-to-{}", i + 1),
                Source::Clients,
                i,
                Carries::Clients,
                port(i, 0),
            )?;
            let mut from = Vec::new();
            for m in 0..n {
                let bound = port(i, m + 1);
                let advertised = match m == i {
                    true => bound,
                    false => add(
                        format!("node-{}-to-{}", m + 1, i + 1),
                        Source::Node(m as u32 + 1),
                        i,
                        Carries::Replication,
                        bound,
                    )?,
                };
                from.push((m as i32 + 1, bound, advertised));
            }
            node_links.push(((port(i, 0), client), from, layout.voters.clone()));
        }
        // The controller links: from every node to every other voter.
        let mut seen_voters: Vec<Vec<Voter>> = Vec::new();
        for (i, (_, _, voters)) in node_links.iter().enumerate() {
            let mut mine = Vec::new();
            for v in voters {
                let to = v.id as usize - 1;
                let port = match to == i {
                    true => v.port,
                    false => add(
                        format!("node-{}-to-controller-{}", i + 1, v.id),
                        Source::Node(i as u32 + 1),
                        to,
                        Carries::Controller,
                        v.port,
                    )?,
                };
                mine.push(Voter {
                    id: v.id,
                    host: v.host.clone(),
                    port,
                });
            }
            seen_voters.push(mine);
        }
        for (((layout, _), (client, from, _)), voters) in
            layouts.iter_mut().zip(node_links).zip(seen_voters)
        {
            layout.links = Some(NodeLinks {
                client,
                from,
                voters,
            });
        }
        Ok(ClusterNetwork { proxy, links })
    }

    /// Sets every link as `net` asks (a link already as asked is left
    /// alone, so its connections keep their data in flight).
    pub fn apply(&mut self, net: &Network) -> Result<()> {
        for link in &mut self.links {
            let want = net.link(link.from, link.to);
            if want == link.applied {
                continue;
            }
            for t in toxics(&link.applied, "") {
                self.proxy
                    .remove_toxic(&link.name, &t.name)
                    .with_context(|| format!("clearing the link {}", link.name))?;
            }
            link.applied = Link::default();
            for t in toxics(&want, "") {
                self.proxy
                    .add_toxic(&link.name, &t)
                    .with_context(|| format!("setting the link {}", link.name))?;
            }
            link.applied = want;
        }
        Ok(())
    }

    /// Cuts (`on`) or mends the links of `node` that `cut` names: their
    /// bytes are held and dropped while cut, as on a network that lost its
    /// route (connections stay open, requests go unanswered until their
    /// timeouts), and the connections the cut held are closed when it is
    /// mended, so the parties connect again at once.
    pub fn cut(&mut self, node: u32, cut: Cut, on: bool) -> Result<()> {
        let ways = [
            (Stream::Upstream, "cut-to"),
            (Stream::Downstream, "cut-back"),
        ];
        for link in self.links.iter_mut().filter(|l| l.cut_by(node, cut)) {
            match on {
                true => {
                    link.cuts += 1;
                    if link.cuts > 1 {
                        continue;
                    }
                    for (stream, name) in ways {
                        let t = Toxic::new(name, stream, ToxicKind::Timeout { ms: 0 });
                        self.proxy
                            .add_toxic(&link.name, &t)
                            .with_context(|| format!("cutting the link {}", link.name))?;
                    }
                }
                false => {
                    link.cuts = link.cuts.saturating_sub(1);
                    if link.cuts > 0 {
                        continue;
                    }
                    for (_, name) in ways {
                        self.proxy
                            .remove_toxic(&link.name, name)
                            .with_context(|| format!("mending the link {}", link.name))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Slows every link to and from `node` by `by` (a round trip added,
    /// and/or a bandwidth each connection keeps to) on top of what the
    /// network does, or (None) ends the slowdown.
    pub fn slow(&mut self, node: u32, by: Option<&Link>) -> Result<()> {
        for link in self.links.iter_mut().filter(|l| l.touches(node)) {
            for name in std::mem::take(&mut link.slowed) {
                self.proxy
                    .remove_toxic(&link.name, &name)
                    .with_context(|| format!("ending the slow link {}", link.name))?;
            }
            let Some(by) = by else { continue };
            for t in toxics(by, "slow-") {
                self.proxy
                    .add_toxic(&link.name, &t)
                    .with_context(|| format!("slowing the link {}", link.name))?;
                link.slowed.push(t.name.clone());
            }
        }
        Ok(())
    }

    /// Closes every connection to and from `node`, once.
    pub fn reset(&self, node: u32) -> Result<()> {
        for link in self.links.iter().filter(|l| l.touches(node)) {
            self.proxy
                .reset(&link.name)
                .with_context(|| format!("resetting the link {}", link.name))?;
        }
        Ok(())
    }

    /// An error naming the proxy's log when the proxy process has died.
    pub fn check(&self) -> Result<()> {
        self.proxy.check()
    }

    /// The proxy process's id.
    pub fn pid(&self) -> u32 {
        self.proxy.pid()
    }
}

impl LocalBroker {
    /// Where producers and consumers connect: through the proxies when the
    /// cluster has a network, else the same as [`LocalBroker::bootstrap`]
    /// (which klab's own Admin client always uses, directly).
    pub fn client_bootstrap(&self) -> String {
        self.every_node(Node::client_bootstrap)
    }

    /// Sets the links as `net` asks (None: every link clear). Refused on a
    /// cluster started without a network.
    pub fn set_network(&mut self, net: Option<&Network>) -> Result<()> {
        match (&mut self.network, net) {
            (Some(n), net) => {
                let clear = Network::default();
                let net = net.unwrap_or(&clear);
                net.check_nodes(self.nodes.len() as u32)
                    .map_err(|e| crate::usage!("network.{e}"))?;
                n.apply(net)
            }
            (None, None) => Ok(()),
            (None, Some(_)) => Err(anyhow!(
                "this cluster was started without a network, so its links cannot be set; klab starts the proxies with the cluster when a run or any lab of it has a [network]"
            )),
        }
    }

    /// The proxies, to cut or slow links (an error without a network).
    pub fn network_mut(&mut self) -> Result<&mut ClusterNetwork> {
        self.network.as_mut().ok_or_else(|| {
            anyhow!(
                "a network fault needs a cluster behind proxies: give the lab a [network] (or the run --net clear)"
            )
        })
    }

    /// The proxies, when the cluster has a network.
    pub fn network(&self) -> Option<&ClusterNetwork> {
        self.network.as_ref()
    }
}
