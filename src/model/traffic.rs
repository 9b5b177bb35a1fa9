//! Traffic counters the kernel keeps per service and per dest: the
//! `IPVS_STATS_ATTR_*` values of a dump (what `ipvsadm -L --stats --rate`
//! shows), as plain data.
//!
//! Must not: read the kernel or turn counters into metrics (the netlink
//! client and `metrics::traffic` do).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

use super::ServiceKey;

/// One service's or dest's counters since it was added, and the kernel's
/// rate estimates (averaged over about two seconds by the kernel's
/// estimator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub connections: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Connections per second.
    pub connection_rate: u64,
    /// Packets per second.
    pub packet_rate_in: u64,
    pub packet_rate_out: u64,
    /// Bytes per second.
    pub byte_rate_in: u64,
    pub byte_rate_out: u64,
}

impl Traffic {
    /// From the ten `IPVS_STATS_ATTR_*` values in attribute order
    /// (`CONNS` .. `OUTBPS`); an absent value is 0.
    pub fn from_values(v: &[Option<u64>; 10]) -> Traffic {
        let at = |i: usize| v[i].unwrap_or(0);
        Traffic {
            connections: at(0),
            packets_in: at(1),
            packets_out: at(2),
            bytes_in: at(3),
            bytes_out: at(4),
            connection_rate: at(5),
            packet_rate_in: at(6),
            packet_rate_out: at(7),
            byte_rate_in: at(8),
            byte_rate_out: at(9),
        }
    }
}

/// The counters of every service in the table, and of their dests when
/// they were read too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficTable {
    pub services: BTreeMap<ServiceKey, Traffic>,
    /// Empty unless per-dest counters were asked for.
    pub dests: BTreeMap<ServiceKey, BTreeMap<SocketAddr, Traffic>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_map_to_counters_in_the_kernels_attribute_order() {
        let mut v = [None; 10];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = Some(i as u64 + 1);
        }
        v[4] = None;
        let t = Traffic::from_values(&v);
        assert_eq!(
            t,
            Traffic {
                connections: 1,
                packets_in: 2,
                packets_out: 3,
                bytes_in: 4,
                bytes_out: 0,
                connection_rate: 6,
                packet_rate_in: 7,
                packet_rate_out: 8,
                byte_rate_in: 9,
                byte_rate_out: 10,
            }
        );
    }
}
