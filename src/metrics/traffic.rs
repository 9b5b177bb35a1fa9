//! The kernel's traffic counters as Prometheus series: per service, and
//! per dest when the daemon reads them (`--metrics-per-dest`). The last
//! read is kept whole and written out at each scrape, so a service that
//! is gone is gone from the exposition too (a kernel counter is not ours
//! to add to: a service deleted and added again starts from zero, which
//! Prometheus reads as a counter reset).
//!
//! Must not: read the kernel (the daemon's traffic reader does and hands
//! the table over); hold its lock while it writes (a scrape's writer may
//! wait on a slow client: the state is copied, the table's `Arc` with it,
//! and the lock released first).

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::model::traffic::{Traffic, TrafficTable};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceDirLabels {
    service: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestLabels {
    service: String,
    dest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestDirLabels {
    service: String,
    dest: String,
    direction: &'static str,
}

/// The last read of the counters, and how the reads go.
#[derive(Debug, Default)]
pub struct TrafficCollector {
    state: Mutex<State>,
}

#[derive(Clone, Debug, Default)]
struct State {
    /// `None` until the first successful read.
    table: Option<Arc<TrafficTable>>,
    reads_ok: u64,
    reads_failed: u64,
    /// Unix seconds of the last successful read.
    last_read: f64,
    /// Seconds the last successful read took.
    last_duration: f64,
}

/// One series family: its name (after `clusterf_ipvs_service_` or
/// `_dest_`), help, type, and the value it takes from a [`Traffic`].
struct Series {
    name: &'static str,
    help: &'static str,
    counter: bool,
    value: fn(&Traffic) -> Values,
}

/// A series' values for one service or dest.
enum Values {
    One(u64),
    /// In and out, by the `direction` label.
    InOut(u64, u64),
}

use Values::{InOut, One};

const SERIES: [Series; 6] = [
    Series {
        name: "connections",
        help: "Connections the kernel scheduled since the service (or dest) was added",
        counter: true,
        value: |t| One(t.connections),
    },
    Series {
        name: "packets",
        help: "Packets in (client to backend) and out (backend to client, masq only) since the service (or dest) was added",
        counter: true,
        value: |t| InOut(t.packets_in, t.packets_out),
    },
    Series {
        name: "bytes",
        help: "Bytes in and out (out: masq only) since the service (or dest) was added",
        counter: true,
        value: |t| InOut(t.bytes_in, t.bytes_out),
    },
    Series {
        name: "connections_per_second",
        help: "The kernel's estimate of new connections per second (about 2 s average)",
        counter: false,
        value: |t| One(t.connection_rate),
    },
    Series {
        name: "packets_per_second",
        help: "The kernel's estimate of packets per second, in and out",
        counter: false,
        value: |t| InOut(t.packet_rate_in, t.packet_rate_out),
    },
    Series {
        name: "bytes_per_second",
        help: "The kernel's estimate of bytes per second, in and out",
        counter: false,
        value: |t| InOut(t.byte_rate_in, t.byte_rate_out),
    },
];

impl TrafficCollector {
    /// A successful read: the table replaces the last one.
    pub fn read(&self, table: TrafficTable, at_unix_secs: f64, took_secs: f64) {
        let mut s = self.state.lock().expect("traffic metrics lock");
        s.table = Some(Arc::new(table));
        s.reads_ok += 1;
        s.last_read = at_unix_secs;
        s.last_duration = took_secs;
    }

    /// The last table read and when (Unix seconds), for the status page.
    pub fn last(&self) -> Option<(Arc<TrafficTable>, f64)> {
        let s = self.state.lock().expect("traffic metrics lock");
        s.table.clone().map(|t| (t, s.last_read))
    }

    /// A failed read: the last table stays (and its age shows in
    /// `clusterf_traffic_last_read_timestamp_seconds`).
    pub fn failed(&self) {
        self.state
            .lock()
            .expect("traffic metrics lock")
            .reads_failed += 1;
    }
}

impl Collector for TrafficCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.state.lock().expect("traffic metrics lock").clone();
        encode_reads(&s, &mut encoder)?;
        let Some(table) = &s.table else {
            return Ok(());
        };
        for series in &SERIES {
            encode_services(series, table, &mut encoder)?;
        }
        if !table.dests.is_empty() {
            for series in &SERIES {
                encode_dests(series, table, &mut encoder)?;
            }
        }
        Ok(())
    }
}

fn kind(counter: bool) -> MetricType {
    if counter {
        MetricType::Counter
    } else {
        MetricType::Gauge
    }
}

/// A value as the series' type.
fn put(
    counter: bool,
    v: u64,
    e: prometheus_client::encoding::MetricEncoder,
) -> Result<(), std::fmt::Error> {
    if counter {
        ConstCounter::new(v).encode(e)
    } else {
        // Rates fit an i64 (the kernel's are 32-bit values scaled down).
        ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(e)
    }
}

fn encode_reads(s: &State, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Outcome {
        outcome: &'static str,
    }
    let mut m = e.encode_descriptor(
        "traffic_reads",
        "Reads of the kernel's traffic counters, by outcome",
        None,
        MetricType::Counter,
    )?;
    for (outcome, n) in [("ok", s.reads_ok), ("failed", s.reads_failed)] {
        ConstCounter::new(n).encode(m.encode_family(&Outcome { outcome })?)?;
    }
    if s.reads_ok == 0 {
        return Ok(());
    }
    let m = e.encode_descriptor(
        "traffic_last_read_timestamp_seconds",
        "When the traffic counters were last read (Unix time)",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(s.last_read).encode(m)?;
    let m = e.encode_descriptor(
        "traffic_read_duration_seconds",
        "How long the last read of the traffic counters took",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(s.last_duration).encode(m)
}

fn encode_services(
    series: &Series,
    table: &TrafficTable,
    e: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let name = format!("ipvs_service_{}", series.name);
    let mut m = e.encode_descriptor(&name, series.help, None, kind(series.counter))?;
    for (key, t) in &table.services {
        let service = key.to_string();
        match (series.value)(t) {
            One(v) => put(
                series.counter,
                v,
                m.encode_family(&ServiceLabels { service })?,
            )?,
            InOut(i, o) => {
                for (direction, v) in [("in", i), ("out", o)] {
                    let labels = ServiceDirLabels {
                        service: service.clone(),
                        direction,
                    };
                    put(series.counter, v, m.encode_family(&labels)?)?;
                }
            }
        }
    }
    Ok(())
}

fn encode_dests(
    series: &Series,
    table: &TrafficTable,
    e: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let name = format!("ipvs_dest_{}", series.name);
    let mut m = e.encode_descriptor(&name, series.help, None, kind(series.counter))?;
    for (key, dests) in &table.dests {
        let service = key.to_string();
        for (addr, t) in dests {
            let dest = addr.to_string();
            match (series.value)(t) {
                One(v) => {
                    let labels = DestLabels {
                        service: service.clone(),
                        dest,
                    };
                    put(series.counter, v, m.encode_family(&labels)?)?;
                }
                InOut(i, o) => {
                    for (direction, v) in [("in", i), ("out", o)] {
                        let labels = DestDirLabels {
                            service: service.clone(),
                            dest: dest.clone(),
                            direction,
                        };
                        put(series.counter, v, m.encode_family(&labels)?)?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::model::ServiceKey;
    use std::time::Duration;

    fn traffic(n: u64) -> Traffic {
        Traffic {
            connections: n,
            packets_in: n * 10,
            packets_out: n * 20,
            bytes_in: n * 1000,
            bytes_out: n * 2000,
            connection_rate: n + 1,
            packet_rate_in: n + 2,
            packet_rate_out: n + 3,
            byte_rate_in: n + 4,
            byte_rate_out: n + 5,
        }
    }

    fn lines(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn nothing_but_the_read_counts_is_exported_before_the_first_read() {
        let m = Metrics::new();
        let text = m.render(0.0);
        assert!(lines(&text, "clusterf_ipvs_").is_empty(), "{text}");
        assert_eq!(
            lines(&text, "clusterf_traffic_reads_total"),
            [
                "clusterf_traffic_reads_total{outcome=\"ok\"} 0",
                "clusterf_traffic_reads_total{outcome=\"failed\"} 0"
            ]
        );
        assert!(!text.contains("clusterf_traffic_last_read_timestamp_seconds"));
    }

    #[test]
    fn each_service_gets_its_counters_as_counters_and_its_rates_as_gauges() {
        let m = Metrics::new();
        let web: ServiceKey = "tcp://198.51.100.10:80".parse().unwrap();
        let mark: ServiceKey = "fwmark://7".parse().unwrap();
        let mut table = TrafficTable::default();
        table.services.insert(web, traffic(3));
        table.services.insert(mark, traffic(0));
        m.traffic_read(table, 1_700_000_000.5, Duration::from_millis(4));
        let text = m.render(0.0);
        let s = "service=\"tcp://198.51.100.10:80\"";
        for want in [
            format!("clusterf_ipvs_service_connections_total{{{s}}} 3"),
            format!("clusterf_ipvs_service_packets_total{{{s},direction=\"in\"}} 30"),
            format!("clusterf_ipvs_service_packets_total{{{s},direction=\"out\"}} 60"),
            format!("clusterf_ipvs_service_bytes_total{{{s},direction=\"in\"}} 3000"),
            format!("clusterf_ipvs_service_bytes_total{{{s},direction=\"out\"}} 6000"),
            format!("clusterf_ipvs_service_connections_per_second{{{s}}} 4"),
            format!("clusterf_ipvs_service_packets_per_second{{{s},direction=\"in\"}} 5"),
            format!("clusterf_ipvs_service_packets_per_second{{{s},direction=\"out\"}} 6"),
            format!("clusterf_ipvs_service_bytes_per_second{{{s},direction=\"in\"}} 7"),
            format!("clusterf_ipvs_service_bytes_per_second{{{s},direction=\"out\"}} 8"),
            "clusterf_ipvs_service_connections_total{service=\"fwmark://7\"} 0".to_string(),
            "clusterf_traffic_reads_total{outcome=\"ok\"} 1".to_string(),
            "clusterf_traffic_last_read_timestamp_seconds 1700000000.5".to_string(),
            "clusterf_traffic_read_duration_seconds 0.004".to_string(),
        ] {
            assert!(text.lines().any(|l| l == want), "no {want} in\n{text}");
        }
        for (family, kind) in [
            ("clusterf_ipvs_service_connections", "counter"),
            ("clusterf_ipvs_service_bytes", "counter"),
            ("clusterf_ipvs_service_connections_per_second", "gauge"),
            ("clusterf_ipvs_service_bytes_per_second", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{family} {kind}"
            );
        }
        assert!(
            lines(&text, "clusterf_ipvs_dest_").is_empty(),
            "per-dest series without per-dest counters"
        );
    }

    #[test]
    fn a_new_read_replaces_the_last_so_a_deleted_service_leaves_the_exposition() {
        let m = Metrics::new();
        let a: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
        let b: ServiceKey = "udp://[2001:db8::1]:53".parse().unwrap();
        let mut table = TrafficTable::default();
        table.services.insert(a, traffic(5));
        table.services.insert(b, traffic(1));
        m.traffic_read(table.clone(), 1.0, Duration::ZERO);
        table.services.remove(&a);
        m.traffic_read(table, 2.0, Duration::ZERO);
        m.traffic_read_failed();
        let text = m.render(0.0);
        assert!(!text.contains("10.0.0.1"), "{text}");
        assert!(text.contains(
            "clusterf_ipvs_service_connections_total{service=\"udp://[2001:db8::1]:53\"} 1"
        ));
        assert!(text.contains("clusterf_traffic_reads_total{outcome=\"ok\"} 2"));
        assert!(text.contains("clusterf_traffic_reads_total{outcome=\"failed\"} 1"));
    }

    #[test]
    fn per_dest_counters_carry_the_service_and_the_dest() {
        let m = Metrics::new();
        let a: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
        let mut table = TrafficTable::default();
        table.services.insert(a, traffic(9));
        let dests = [
            ("10.1.0.1:8080".parse().unwrap(), traffic(4)),
            ("10.1.0.2:8080".parse().unwrap(), traffic(5)),
        ];
        table.dests.insert(a, dests.into_iter().collect());
        m.traffic_read(table, 1.0, Duration::ZERO);
        let text = m.render(0.0);
        let d = "service=\"tcp://10.0.0.1:80\",dest=\"10.1.0.2:8080\"";
        for want in [
            format!("clusterf_ipvs_dest_connections_total{{{d}}} 5"),
            format!("clusterf_ipvs_dest_bytes_total{{{d},direction=\"out\"}} 10000"),
            format!("clusterf_ipvs_dest_packets_per_second{{{d},direction=\"in\"}} 7"),
        ] {
            assert!(text.lines().any(|l| l == want), "no {want} in\n{text}");
        }
        assert_eq!(
            lines(&text, "clusterf_ipvs_dest_connections_total").len(),
            2
        );
    }
}
