//! `clusterf check`: renders the config (and overlay) as `plan` does, runs
//! every health check once from this host, and prints one line per dest:
//! what a frontend's daemon would see. Changes nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::source::{CompileArgs, ConfigArgs, OverlayArgs, load, refuse_errors};
use crate::daemon::probe::probe;
use crate::health::{HealthConfig, Outcome, Target};
use crate::model::{IpvsState, ServiceKey};

/// Checks run at once, at most.
const IN_FLIGHT: usize = 256;

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub overlay: OverlayArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: CheckFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

/// One dest of a service with a check, and what its check found.
#[derive(Debug, Serialize)]
struct Row {
    service: String,
    dest: SocketAddr,
    /// `http 10.1.0.1:8080/healthz`; absent when the backend opted out.
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<String>,
    /// `passed`, `failed` or `exempt`.
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    took_ms: Option<f64>,
}

/// Exit 0 when every check passed, 2 when any failed, 1 on an error.
pub fn run(args: &CheckArgs) -> Result<u8> {
    let loaded = load(&args.config, &args.overlay, &args.compile)?;
    refuse_errors(&loaded, "")?;
    let rendered = &loaded.rendered;
    let wanted = rendered.health.targets(&rendered.state);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(probe_all(wanted.into_iter().collect()));
    let rows = rows(&rendered.state, &rendered.health, &results);
    let out = match args.output {
        CheckFormat::Text => text(&rows),
        CheckFormat::Json => serde_json::to_string_pretty(&rows)? + "\n",
    };
    super::emit(&out)?;
    if rows.is_empty() {
        eprintln!("no service has a health check");
    }
    Ok(if rows.iter().any(|r| r.result == "failed") {
        2
    } else {
        0
    })
}

/// Every target checked once, at most [`IN_FLIGHT`] at a time.
async fn probe_all(targets: Vec<Target>) -> BTreeMap<Target, (Outcome, Duration)> {
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for target in targets {
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let started = tokio::time::Instant::now();
            let outcome = probe(&target).await;
            (target, (outcome, started.elapsed()))
        });
    }
    let mut out = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((target, result)) = done {
            out.insert(target, result);
        }
    }
    out
}

/// One row per dest of each service with a check, in service order.
fn rows(
    desired: &IpvsState,
    config: &HealthConfig,
    results: &BTreeMap<Target, (Outcome, Duration)>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for (key, health) in &config.services {
        let Some(service) = desired.services.get(key) else {
            continue;
        };
        for dest in service.dests.keys() {
            rows.push(row(key, *dest, health.target(dest), results));
        }
    }
    rows
}

fn row(
    key: &ServiceKey,
    dest: SocketAddr,
    target: Option<Target>,
    results: &BTreeMap<Target, (Outcome, Duration)>,
) -> Row {
    let Some(target) = target else {
        return Row {
            service: key.to_string(),
            dest,
            check: None,
            result: "exempt",
            detail: None,
            took_ms: None,
        };
    };
    let found = results.get(&target);
    Row {
        service: key.to_string(),
        dest,
        check: Some(describe(&target)),
        result: match found {
            Some((o, _)) if o.ok => "passed",
            _ => "failed",
        },
        detail: Some(found.map_or_else(|| "not run".to_string(), |(o, _)| o.detail.clone())),
        took_ms: found.map(|(_, took)| took.as_secs_f64() * 1000.0),
    }
}

/// `http 10.1.0.1:8080/healthz`, `tcp 10.1.0.1:8080`.
fn describe(target: &Target) -> String {
    let kind = target.check.probe.kind();
    match &target.check.probe {
        crate::health::Probe::Http(h) | crate::health::Probe::Https(h) => {
            format!("{kind} {}{}", target.addr, h.path)
        }
        crate::health::Probe::Dns { query } => format!("{kind} {} {query}", target.addr),
        crate::health::Probe::Tcp => format!("{kind} {}", target.addr),
    }
}

/// Aligned columns, a header first.
fn text(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.service.clone(),
                r.dest.to_string(),
                r.check.clone().unwrap_or_else(|| "-".into()),
                r.result.to_string(),
                r.took_ms
                    .map_or_else(String::new, |ms| format!("{ms:.1}ms")),
                r.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["SERVICE", "DEST", "CHECK", "RESULT", "TIME", "DETAIL"].map(String::from);
    let mut widths = [0usize; 6];
    for line in std::iter::once(&header).chain(&cells) {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&cells) {
        let mut l = String::new();
        for (i, cell) in line.iter().enumerate() {
            let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}
