//! What a step's measured window cost in CPU: klab's own clients, the
//! broker JVMs klab runs, the whole host.

use serde::{Deserialize, Serialize};

/// CPU seconds (user + system) over a step's measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// Wall time between the two samples.
    pub window_s: f64,
    /// CPU time the host had (cores × window).
    pub host_total_s: f64,
    /// CPU time the host spent busy (everything but idle and iowait).
    pub host_busy_s: f64,
    /// klab's process: its producers, its consumer, its bookkeeping.
    pub client_s: f64,
    /// The broker JVMs klab started (None for a broker it does not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_s: Option<f64>,
    /// `client_s / broker_s`: how much CPU the load took per unit of the
    /// broker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_vs_broker: Option<f64>,
    /// `client_s / host_busy_s`.
    pub client_share_of_host: f64,
    /// The network's proxy process (Toxiproxy), when the run had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_s: Option<f64>,
}

impl CpuUse {
    pub fn new(
        window_s: f64,
        host_total_s: f64,
        host_busy_s: f64,
        client_s: f64,
        broker_s: Option<f64>,
    ) -> CpuUse {
        CpuUse {
            window_s,
            host_total_s,
            host_busy_s,
            client_s,
            broker_s,
            client_vs_broker: broker_s.filter(|b| *b > 0.0).map(|b| client_s / b),
            client_share_of_host: ratio(client_s, host_busy_s),
            proxy_s: None,
        }
    }

    /// One line for the table: `CPU in the window: ...`.
    pub fn describe(&self) -> String {
        let mut s = format!("CPU in the window: klab's clients {:.1} s", self.client_s);
        if let (Some(b), Some(r)) = (self.broker_s, self.client_vs_broker) {
            s.push_str(&format!(
                ", broker(s) {b:.1} s (clients = {:.0}% of the broker's)",
                100.0 * r
            ));
        }
        if let Some(p) = self.proxy_s {
            s.push_str(&format!(", the network's proxy {p:.1} s"));
        }
        s.push_str(&format!(
            ", host busy {:.1} of {:.1} s ({:.0}%)",
            self.host_busy_s,
            self.host_total_s,
            100.0 * ratio(self.host_busy_s, self.host_total_s)
        ));
        s
    }
}

/// `a / b`, 0 where there is nothing to divide by.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_the_table_line() {
        let c = CpuUse::new(10.0, 20.0, 15.0, 2.0, Some(8.0));
        assert_eq!(c.client_vs_broker, Some(0.25));
        assert!((c.client_share_of_host - 2.0 / 15.0).abs() < 1e-9);
        assert_eq!(
            c.describe(),
            "CPU in the window: klab's clients 2.0 s, broker(s) 8.0 s (clients = 25% of the broker's), host busy 15.0 of 20.0 s (75%)"
        );
        let ext = CpuUse::new(10.0, 20.0, 0.0, 2.0, None);
        assert_eq!(ext.client_vs_broker, None);
        assert_eq!(ext.client_share_of_host, 0.0);
        assert!(!ext.describe().contains("broker"));
    }
}
