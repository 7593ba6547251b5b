//! Where a new local cluster lives: free ports, a KRaft cluster id, and
//! each node's layout (roles, voters, data directory).

use crate::broker::render::{NodeLayout, Voter};
use anyhow::{Context, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Free ports, held (bound, not listening for anyone) until dropped: while
/// they are, neither another reservation nor a proxy binding port 0 can be
/// given one of them. Drop it just before the processes that bind them
/// start.
pub(super) struct Reserved {
    pub ports: Vec<u16>,
    _held: Vec<TcpListener>,
}

/// `n` distinct free ports, held until the [`Reserved`] is dropped.
pub(super) fn free_ports(n: usize) -> Result<Reserved> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1"))
        .collect::<Result<_>>()?;
    let ports = held
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<Result<_>>()?;
    Ok(Reserved { ports, _held: held })
}

/// A random KRaft cluster id: 16 bytes in URL-safe base64 without padding,
/// the form `kafka-storage random-uuid` prints. Like Kafka's own generator,
/// it never starts with '-', which a command line would take for an option.
pub fn cluster_id() -> String {
    use base64::Engine;
    loop {
        let a = crate::random::u64().to_le_bytes();
        let b = crate::random::u64().to_le_bytes();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a);
        bytes[8..].copy_from_slice(&b);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// The nodes' layouts (ports, roles, voters, data directories) and their
/// ports, held until the nodes start.
pub(super) fn layouts(dir: &Path, n: u32) -> Result<(Vec<(NodeLayout, PathBuf)>, Reserved)> {
    let voters_n = crate::broker::quorum::voter_count(n);
    let reserved = free_ports((n + voters_n) as usize)?;
    let ports = &reserved.ports;
    let voters: Vec<Voter> = (0..voters_n)
        .map(|i| Voter {
            id: i as i32 + 1,
            host: "127.0.0.1".into(),
            port: ports[(n + i) as usize],
        })
        .collect();
    let layouts = (0..n)
        .map(|i| {
            let id = i as i32 + 1;
            let node_dir = if n == 1 {
                dir.to_path_buf()
            } else {
                dir.join(format!("node-{id}"))
            };
            let layout = NodeLayout {
                node_id: id,
                bind_host: "127.0.0.1".into(),
                advertised_host: "127.0.0.1".into(),
                broker_port: ports[i as usize],
                controller_port: (i < voters_n).then(|| ports[(n + i) as usize]),
                log_dir: node_dir.join("data").to_string_lossy().to_string(),
                voters: voters.clone(),
                cluster_size: n,
                links: None,
            };
            (layout, node_dir)
        })
        .collect();
    Ok((layouts, reserved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafkas() {
        for _ in 0..1000 {
            assert!(!cluster_id().starts_with('-'));
        }
        let id = cluster_id();
        assert_eq!(id.len(), 22);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn up_to_three_nodes_vote_and_more_are_brokers_only() {
        let d = Path::new("/nonexistent/klab");
        let (one, _) = layouts(d, 1).unwrap();
        assert_eq!(one[0].1, d);
        assert_eq!(one[0].0.voters.len(), 1);
        let (five, held) = layouts(d, 5).unwrap();
        assert_eq!(five[4].1, d.join("node-5"));
        assert!(
            five.iter()
                .all(|(l, _)| l.voters.len() == 3 && l.cluster_size == 5)
        );
        let controllers: Vec<bool> = five
            .iter()
            .map(|(l, _)| l.controller_port.is_some())
            .collect();
        assert_eq!(controllers, [true, true, true, false, false]);
        let mut ports: Vec<u16> = five
            .iter()
            .flat_map(|(l, _)| [Some(l.broker_port), l.controller_port])
            .flatten()
            .collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 8, "every listener its own port");
        // While the layout's ports are held, neither a second reservation
        // nor a bind to port 0 (a proxy's) is given one of them.
        let more = free_ports(64).unwrap();
        let any = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut taken = more.ports.clone();
        taken.push(any.local_addr().unwrap().port());
        assert!(taken.iter().all(|p| !ports.contains(p)), "{taken:?}");
        drop(held);
    }
}
