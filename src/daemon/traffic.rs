//! The traffic reader: every `interval`, the kernel's traffic counters,
//! read on a connection of their own and handed to the metrics.
//!
//! Must not: touch the table, or wait for a pass (a pass does not wait for
//! it either).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use super::clock::unix_now;
use super::kernel::TrafficReader;
use super::options::TrafficOptions;
use crate::error::format_error;
use crate::metrics::Metrics;

/// Starts reading at once, then every `opts.interval` (a read that takes
/// longer delays the next, it never overlaps it). The task runs until
/// aborted.
pub fn spawn(
    mut reader: Box<dyn TrafficReader>,
    opts: TrafficOptions,
    metrics: Arc<Metrics>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(opts.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let started = Instant::now();
            let per_dest = opts.per_dest;
            let joined = tokio::task::spawn_blocking(move || {
                let read = reader.read_traffic(per_dest);
                (reader, read)
            })
            .await;
            let Ok((back, read)) = joined else {
                warn!("the traffic reader stopped; the traffic counters are no longer read");
                return;
            };
            reader = back;
            let took: Duration = started.elapsed();
            match read {
                Ok(table) => {
                    if failing {
                        info!("reading the traffic counters again");
                        failing = false;
                    }
                    metrics.traffic_read(table, unix_now().as_secs_f64(), took);
                }
                Err(e) => {
                    metrics.traffic_read_failed();
                    if !failing {
                        warn!("reading the traffic counters: {}", format_error(&e));
                        failing = true;
                    }
                }
            }
        }
    })
}
