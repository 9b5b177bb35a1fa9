//! `clusterf status`: the fleet's status records from etcd, one line per
//! frontend (or JSON), and with `--wait` the rollout gate: block until
//! every alive frontend applied `--expect-commit`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::source::OverlayArgs;
use super::watch::parse_duration;
use crate::fleet::{self, ALIVE_DIR, Fleet, Gate, STATUS_DIR};
use crate::source::etcd::{self as etcd_source, Settings};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub source: OverlayArgs,

    /// Output format: text (aligned, one line per frontend) or json
    #[arg(long, short = 'o', value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub output: String,

    /// The commit to compare with (default: the newest any frontend rendered)
    #[arg(long, value_name = "SHA")]
    pub expect_commit: Option<String>,

    /// Block until every alive frontend applied --expect-commit without error
    #[arg(long, requires = "expect_commit")]
    pub wait: bool,

    /// Give up waiting after this long (exit 1, the laggards named)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration, requires = "wait")]
    pub timeout: Duration,

    /// With --wait: at least this many frontends must be alive
    #[arg(long, value_name = "N", default_value = "1", requires = "wait")]
    pub min_frontends: usize,

    /// With --wait: how often to read the records again
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, requires = "wait")]
    pub every: Duration,
}

pub fn run(args: &StatusArgs) -> Result<u8> {
    if args.source.overlay_path.is_some() {
        bail!("status reads etcd: give --etcd URL[,URL...], not --overlay-path");
    }
    if args.source.etcd.is_empty() {
        bail!("no etcd given: --etcd URL[,URL...] is required");
    }
    let settings = args.source.etcd_settings()?;
    let expect = args.expect_commit.as_deref();
    etcd_source::runtime()?.block_on(async {
        let client = etcd_source::connect(&settings).await?;
        if !args.wait {
            let fleet = read(&client, &settings, expect).await?;
            print(&fleet, &args.output)?;
            return Ok(0);
        }
        wait(&client, &settings, args).await
    })
}

async fn wait(client: &crate::etcd::Client, settings: &Settings, args: &StatusArgs) -> Result<u8> {
    let deadline = Instant::now() + args.timeout;
    let mut last: Option<Gate> = None;
    loop {
        let fleet = read(client, settings, args.expect_commit.as_deref()).await?;
        let gate = fleet::gate(&fleet, args.min_frontends);
        if last.as_ref() != Some(&gate) {
            report(&gate);
        }
        match &gate {
            Gate::Done => {
                print(&fleet, &args.output)?;
                return Ok(0);
            }
            Gate::Failed(_) => {
                print(&fleet, &args.output)?;
                return Ok(1);
            }
            Gate::Waiting(lines) if Instant::now() >= deadline => {
                print(&fleet, &args.output)?;
                eprintln!(
                    "status: timed out after {:?} waiting for {}",
                    args.timeout,
                    lines.join("; ")
                );
                return Ok(1);
            }
            Gate::Waiting(_) => {}
        }
        last = Some(gate);
        tokio::time::sleep(
            args.every
                .min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}

fn report(gate: &Gate) {
    match gate {
        Gate::Done => eprintln!("status: every alive frontend applied the commit"),
        Gate::Failed(lines) => {
            for l in lines {
                eprintln!("status: failed: {l}");
            }
        }
        Gate::Waiting(lines) => eprintln!("status: waiting: {}", lines.join("; ")),
    }
}

fn print(fleet: &Fleet, output: &str) -> Result<()> {
    let text = if output == "json" {
        let mut s = serde_json::to_string_pretty(fleet).context("cannot write the view")?;
        s.push('\n');
        s
    } else {
        fleet.text(now_ms(), super::use_color(&std::io::stdout()))
    };
    super::emit(&text)?;
    Ok(())
}

/// Reads the records and the alive keys at one revision.
async fn read(
    client: &crate::etcd::Client,
    settings: &Settings,
    expect: Option<&str>,
) -> Result<Fleet> {
    let (records, revision) = read_dir(client, settings, STATUS_DIR, 0).await?;
    let (alive, _) = read_dir(client, settings, ALIVE_DIR, revision).await?;
    let alive: BTreeSet<String> = alive.into_iter().map(|(id, _)| id).collect();
    Ok(fleet::view(&records, &alive, expect, now_ms()))
}

/// Every key below `<prefix>/<dir>` as (the rest of the key, value), and
/// the revision read at.
async fn read_dir(
    client: &crate::etcd::Client,
    settings: &Settings,
    dir: &str,
    revision: i64,
) -> Result<(Vec<(String, Vec<u8>)>, i64)> {
    let start = settings.keys().key(dir);
    let end = crate::etcd::prefix_end(&start);
    let mut at = revision;
    let mut from = start.clone();
    let mut out = Vec::new();
    loop {
        let resp = etcd_source::read_page(client, settings, &from, &end, at).await?;
        if at == 0 {
            at = resp.header.as_ref().map_or(0, |h| h.revision);
        }
        for kv in &resp.kvs {
            let id = String::from_utf8_lossy(&kv.key[start.len()..]).into_owned();
            out.push((id, kv.value.clone()));
        }
        match (resp.more, resp.kvs.last()) {
            (true, Some(last)) => {
                from = last.key.clone();
                from.push(0);
            }
            _ => return Ok((out, at)),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
