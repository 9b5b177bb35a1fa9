//! Publishing this frontend's status record into etcd (docs/status-format.md):
//! the record under `<prefix>/status/frontends/<id>` (kept when the daemon
//! dies) and the alive key under `<prefix>/status/alive/<id>` on a lease of
//! its own (gone when the host dies).
//!
//! Must not: block or fail a pass. [`StatusPublisher::update`] only swaps
//! the pending record; a task writes it, at most once per `min_gap` (and
//! only when the frontend's standing in a rollout changed) and at least
//! once per `heartbeat`, and reconnects with backoff while etcd is down
//! (the status goes stale; the kernel is still reconciled).

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{debug, warn};

use super::clock::unix_now;
use crate::etcd::proto::PutRequest;
use crate::etcd::{Client, KeepAlive};
use crate::fleet::{ALIVE_DIR, FrontendStatus, Identity, STATUS_DIR};
use crate::plan::Ownership;
use crate::source::ConfigSource;
use crate::source::etcd::{self as etcd_source, Settings};

/// How often and how fast the record is written.
#[derive(Clone, Copy, Debug)]
pub struct StatusTuning {
    /// The alive key's lease TTL: a frontend is dead this long after its
    /// last renewal.
    pub ttl: Duration,
    /// Write the record at least this often (the daemon's resync).
    pub heartbeat: Duration,
    /// Write it at most this often.
    pub min_gap: Duration,
}

impl Default for StatusTuning {
    fn default() -> Self {
        StatusTuning {
            ttl: Duration::from_secs(30),
            heartbeat: Duration::from_secs(30),
            min_gap: Duration::from_secs(1),
        }
    }
}

/// Who this frontend is, for its record: the id, this clusterf's version,
/// the config source (credentials scrubbed, as logs name it) and what it
/// owns (empty: the whole table; fwmark ranges as `fwmark 100-200`).
pub fn identity(frontend_id: &str, config: &ConfigSource, ownership: &Ownership) -> Identity {
    let doc = ownership.doc();
    let fwmarks = doc.fwmarks.iter().map(|r| format!("fwmark {r}"));
    Identity {
        frontend: frontend_id.to_string(),
        version: env!("CLUSTERF_VERSION").to_string(),
        config_source: config_label(config),
        own: doc.cidrs.iter().cloned().chain(fwmarks).collect(),
    }
}

/// The config source as logs and the status page name it (credentials
/// scrubbed from a repository URL).
pub fn config_label(config: &ConfigSource) -> String {
    match config {
        ConfigSource::Dir(path) => path.display().to_string(),
        ConfigSource::Git(git) => {
            let mut label = crate::source::git::scrub_url(&git.repo);
            if let Some(r) = &git.git_ref {
                label.push('@');
                label.push_str(r);
            }
            if let Some(sub) = &git.subdir {
                label.push(':');
                label.push_str(sub);
            }
            label
        }
    }
}

/// The running publisher; dropping it stops writing (the alive key then
/// lapses with its lease).
pub struct StatusPublisher {
    pending: watch::Sender<Option<FrontendStatus>>,
    task: JoinHandle<()>,
}

impl Drop for StatusPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StatusPublisher {
    pub fn start(settings: Settings, tuning: StatusTuning) -> StatusPublisher {
        let (pending, rx) = watch::channel(None);
        let task = tokio::spawn(run(settings, tuning, rx));
        StatusPublisher { pending, task }
    }

    /// Makes `record` the one to write next; returns at once. It is
    /// written within `min_gap` when it changes the frontend's standing in
    /// a rollout ([`FrontendStatus::same_standing`]), else with the next
    /// heartbeat.
    pub fn update(&self, record: FrontendStatus) {
        self.pending.send_if_modified(|pending| {
            let prompt = pending.as_ref().is_none_or(|p| !p.same_standing(&record));
            *pending = Some(record);
            prompt
        });
    }
}

async fn run(
    settings: Settings,
    tuning: StatusTuning,
    mut rx: watch::Receiver<Option<FrontendStatus>>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match session(&settings, tuning, &mut rx).await {
            Ok(()) => return, // the daemon dropped its sender
            Err(e) => warn!(
                "fleet status: {}; the status in etcd is stale until it is written again (retry in {backoff:?})",
                crate::error::format_error(&e)
            ),
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
        rx.mark_changed(); // write again once connected
    }
}

/// One connection: a lease, then writes until an error.
async fn session(
    settings: &Settings,
    tuning: StatusTuning,
    rx: &mut watch::Receiver<Option<FrontendStatus>>,
) -> Result<()> {
    let client = etcd_source::connect(settings).await?;
    let ttl = i64::try_from(tuning.ttl.as_secs().max(2)).unwrap_or(i64::MAX);
    let lease = etcd_source::timed(settings, "lease grant", client.lease_grant(ttl))
        .await?
        .id;
    let mut keeper = client
        .lease_keep_alive(lease)
        .await
        .map_err(|e| anyhow!("{}: lease keep-alive: {e}", settings.description()))?;
    let renew_every = tuning.ttl / 3;
    let mut next_renew = Instant::now();
    let mut last_write: Option<Instant> = None;
    let mut changed = true;
    loop {
        let heartbeat = last_write.map_or(Instant::now(), |t| t + tuning.heartbeat);
        let earliest = last_write.map_or(Instant::now(), |t| t + tuning.min_gap);
        let write_at = match (rx.borrow().is_some(), changed) {
            (false, _) => Instant::now() + tuning.heartbeat, // nothing to write yet
            (true, true) => earliest,
            (true, false) => heartbeat,
        };
        tokio::select! {
            r = rx.changed() => {
                if r.is_err() {
                    return Ok(());
                }
                changed = true;
            }
            () = sleep_until(write_at.max(earliest)) => {
                let record = rx.borrow_and_update().clone();
                if let Some(record) = record {
                    write(&client, settings, lease, record).await?;
                    last_write = Some(Instant::now());
                }
                changed = false;
            }
            () = sleep_until(next_renew) => {
                renew(&mut keeper, settings).await?;
                next_renew = Instant::now() + renew_every;
            }
        }
    }
}

async fn renew(keeper: &mut KeepAlive, settings: &Settings) -> Result<()> {
    let answer = tokio::time::timeout(settings.timeout, keeper.renew())
        .await
        .map_err(|_| anyhow!("{}: lease keep-alive: no answer", settings.description()))?
        .map_err(|e| anyhow!("{}: lease keep-alive: {e}", settings.description()))?;
    match answer {
        Some(a) if a.ttl > 0 => Ok(()),
        _ => Err(anyhow!(
            "{}: the status lease ended",
            settings.description()
        )),
    }
}

async fn write(
    client: &Client,
    settings: &Settings,
    lease: i64,
    mut record: FrontendStatus,
) -> Result<()> {
    record.written_ms = u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX);
    let id = record.frontend.clone();
    let put = |key: String, value: Vec<u8>, lease: i64| PutRequest {
        key: settings.keys().key(&key),
        value,
        lease,
        ..Default::default()
    };
    let value = record.to_bytes();
    etcd_source::timed(
        settings,
        "put status",
        client.put(put(format!("{STATUS_DIR}{id}"), value, 0)),
    )
    .await
    .context("fleet status record")?;
    let stamp = record.written_ms.to_string().into_bytes();
    etcd_source::timed(
        settings,
        "put alive",
        client.put(put(format!("{ALIVE_DIR}{id}"), stamp, lease)),
    )
    .await
    .context("fleet alive key")?;
    debug!("fleet status written for {id}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_records_are_in_the_subtree_the_overlay_reader_skips() {
        use crate::source::etcd::keys::STATUS_SUBTREE;
        assert!(STATUS_DIR.starts_with(STATUS_SUBTREE));
        assert!(ALIVE_DIR.starts_with(STATUS_SUBTREE));
    }

    #[test]
    fn the_identity_scrubs_credentials_and_says_what_is_owned() {
        let git = ConfigSource::Git(crate::source::git::Options {
            repo: "https://user:tok3n@git.example/config.git".into(),
            git_ref: Some("main".into()),
            subdir: Some("site-a".into()),
            cache_dir: None,
            allowed_signers: None,
        });
        let own = Ownership::parse(&["10.1.0.0/16".into()], &["100-200".into()]).unwrap();
        let id = identity("lb1", &git, &own);
        assert_eq!(
            id.config_source,
            "https://git.example/config.git@main:site-a"
        );
        assert_eq!(id.own, ["10.1.0.0/16", "fwmark 100-200"]);
        assert!(identity("lb1", &git, &Ownership::all()).own.is_empty());
    }
}
