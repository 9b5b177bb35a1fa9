//! The publisher's side of etcd: one lease per publisher holding every key
//! it publishes, a marker key naming that lease (so a restarted publisher
//! finds and reconciles what it published before), and applying key-set
//! plans in transactions.
//!
//! Restart: the marker `<prefix>/.publishers/<publisher-id>` names the lease.
//! If that lease is still alive the new process adopts it (keys are kept,
//! only changes are written: no duplicates, no flapping); if it has expired,
//! its keys expired with it and a new lease starts empty. A lease with
//! another TTL than `--ttl` is replaced: every key is written again under
//! the new lease, then the old one is revoked.
//!
//! Invariant: this module moves keys; it never decides what a container
//! means (`labels`) or which keys are wanted (`keys`). It never writes a key
//! without the lease, and never deletes a key that is not on its lease.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use super::keys::{self, Change, KeySet};
use crate::etcd::proto::{
    DeleteRangeRequest, PutRequest, RangeRequest, Request, RequestOp, TxnRequest,
};
use crate::etcd::{Client, KeepAlive};
use crate::source::etcd::{Settings, connect, read_page, timed};

/// etcd's default limit of operations in one transaction (`--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// What one reconcile did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub puts: usize,
    pub deletes: usize,
    pub transactions: usize,
}

/// How the publisher's lease was obtained at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// No live lease of this publisher: a new one, nothing published.
    Fresh,
    /// The previous run's lease was alive and is kept, with its keys.
    Adopted,
    /// The previous run's lease had another TTL: its keys move to a new one.
    Replaced,
}

/// A publisher connected to etcd, holding its lease.
pub struct Store {
    client: Client,
    settings: Settings,
    publisher: String,
    ttl: i64,
    lease: i64,
    /// What is published under the lease (tree path -> value), as far as
    /// this process knows.
    current: KeySet,
    /// After an error: re-read `current` from etcd before the next plan.
    stale: bool,
    /// Keys still on a replaced lease, and that lease (revoked once every
    /// wanted key is on the new one).
    replaced: Option<(i64, KeySet)>,
    keeper: Option<KeepAlive>,
}

impl Store {
    /// Connects, finds the previous run's lease by the marker of
    /// `publisher`, and adopts it or grants a new one.
    pub async fn open(
        settings: Settings,
        publisher: &str,
        ttl: Duration,
    ) -> Result<(Store, Start)> {
        if !super::labels::valid_service_name(publisher) {
            bail!("invalid publisher id {publisher:?}: use letters, digits and - _ . @ :");
        }
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let client = connect(&settings).await?;
        let mut store = Store {
            client,
            settings,
            publisher: publisher.to_string(),
            ttl,
            lease: 0,
            current: KeySet::new(),
            stale: false,
            replaced: None,
            keeper: None,
        };
        let start = store.find_lease().await?;
        Ok((store, start))
    }

    /// The lease holding the published keys.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// The TTL of the lease, in seconds.
    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    /// What is published (tree paths below the prefix -> values).
    pub fn current(&self) -> &KeySet {
        &self.current
    }

    /// The backends published before (including those on a replaced
    /// lease), for carrying drained backends of stopped containers over.
    pub fn published_backends(&self) -> super::labels::Backends {
        let mut all = self.current.clone();
        if let Some((_, old)) = &self.replaced {
            for (k, v) in old {
                all.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        keys::backends_of(&all)
    }

    /// The marker entry for [`keys::desired`].
    pub fn marker(&self) -> (&str, String) {
        (&self.publisher, keys::marker_value(self.lease, self.ttl))
    }

    async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, crate::etcd::Error>>,
    ) -> Result<T> {
        timed(&self.settings, what, fut).await
    }

    fn key(&self, path: &str) -> Vec<u8> {
        self.settings.keys().key(path)
    }

    /// Reads the marker; adopts, replaces or starts a lease.
    async fn find_lease(&mut self) -> Result<Start> {
        let marker_key = self.key(&keys::marker_path(&self.publisher));
        let get = RangeRequest {
            key: marker_key,
            ..Default::default()
        };
        let resp = self.timed("get marker", self.client.range(get)).await?;
        let old = resp
            .kvs
            .first()
            .and_then(|kv| Some((keys::parse_marker(&kv.value)?, kv.lease)))
            .filter(|(named, on)| named == on && *on != 0)
            .map(|(lease, _)| lease);
        if let Some(old) = old {
            let ttl = self
                .timed("lease ttl", self.client.lease_time_to_live(old, false))
                .await?;
            if ttl.ttl > 0 {
                let published = self.read_lease_keys(old).await?;
                if ttl.granted_ttl == self.ttl {
                    self.lease = old;
                    self.current = published;
                    return Ok(Start::Adopted);
                }
                self.grant().await?;
                self.replaced = Some((old, published));
                return Ok(Start::Replaced);
            }
        }
        self.grant().await?;
        Ok(Start::Fresh)
    }

    async fn grant(&mut self) -> Result<()> {
        let resp = self
            .timed("lease grant", self.client.lease_grant(self.ttl))
            .await?;
        self.lease = resp.id;
        self.current.clear();
        self.keeper = None;
        Ok(())
    }

    /// Every key below the prefix on `lease`, as tree paths.
    async fn read_lease_keys(&mut self, lease: i64) -> Result<KeySet> {
        let ks = self.settings.keys().clone();
        let end = ks.range_end();
        let mut start = ks.scan_prefix().to_vec();
        let mut out = KeySet::new();
        let mut revision: Option<i64> = None;
        loop {
            let at = revision.unwrap_or(0);
            let resp = read_page(&self.client, &self.settings, &start, &end, at).await?;
            let rev = resp.header.as_ref().map_or(0, |h| h.revision);
            revision.get_or_insert(rev);
            for kv in &resp.kvs {
                if kv.lease != lease {
                    continue;
                }
                let Some(rel) = kv.key.strip_prefix(ks.scan_prefix()) else {
                    continue;
                };
                let (Ok(path), Ok(value)) =
                    (std::str::from_utf8(rel), std::str::from_utf8(&kv.value))
                else {
                    continue;
                };
                out.insert(path.to_string(), value.to_string());
            }
            match (resp.more, resp.kvs.last()) {
                (true, Some(last)) => {
                    start = last.key.clone();
                    start.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    /// Re-reads the published keys from etcd before the next reconcile
    /// (periodic resync: someone may have changed or deleted them).
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Makes the published key set equal to `desired` (which should contain
    /// [`Store::marker`]): puts new and changed keys, deletes keys no longer
    /// wanted, in transactions that keep each container's keys together.
    pub async fn reconcile(&mut self, desired: &KeySet) -> Result<Applied> {
        if self.stale {
            self.current = self.read_lease_keys(self.lease).await?;
            self.stale = false;
        }
        let mut changes = keys::plan(&self.current, desired);
        if let Some((_, old)) = &self.replaced {
            // Keys of the replaced lease that are no longer wanted.
            for path in old.keys() {
                if !desired.contains_key(path) && !self.current.contains_key(path) {
                    changes.push(Change::Delete(path.clone()));
                }
            }
        }
        let result = self.apply(changes).await;
        if result.is_err() {
            self.stale = true;
        }
        let applied = result?;
        if let Some((old, _)) = self.replaced.take() {
            // Every wanted key is on the new lease now; what is left on the
            // old one is nothing.
            if let Err(e) = self
                .timed("lease revoke", self.client.lease_revoke(old))
                .await
            {
                eprintln!(
                    "clusterf docker: warning: cannot revoke the replaced lease {old:x}: {e:#}"
                );
            }
        }
        Ok(applied)
    }

    async fn apply(&mut self, changes: Vec<Change>) -> Result<Applied> {
        let mut applied = Applied::default();
        for batch in keys::batches(changes, MAX_TXN_OPS) {
            let ops: Vec<RequestOp> = batch.iter().map(|c| self.op(c)).collect();
            let txn = TxnRequest {
                success: ops,
                ..Default::default()
            };
            let resp = self.timed("txn", self.client.txn(txn)).await?;
            if !resp.succeeded {
                bail!("{}: txn: not applied", self.settings.description());
            }
            applied.transactions += 1;
            for c in batch {
                match c {
                    Change::Put(path, value) => {
                        applied.puts += 1;
                        self.current.insert(path, value);
                    }
                    Change::Delete(path) => {
                        applied.deletes += 1;
                        self.current.remove(&path);
                    }
                }
            }
        }
        Ok(applied)
    }

    /// The transaction operation of one change: puts on the lease.
    fn op(&self, change: &Change) -> RequestOp {
        let request = match change {
            Change::Put(path, value) => Request::Put(PutRequest {
                key: self.key(path),
                value: value.as_bytes().to_vec(),
                lease: self.lease,
                ..Default::default()
            }),
            Change::Delete(path) => Request::DeleteRange(DeleteRangeRequest {
                key: self.key(path),
                ..Default::default()
            }),
        };
        RequestOp {
            request: Some(request),
        }
    }

    /// Renews the lease once. `Ok(false)`: the lease had expired (etcd was
    /// out of reach for longer than the TTL, or someone revoked it): a new
    /// one is granted and everything must be published again, which the
    /// next [`Store::reconcile`] does.
    pub async fn keep_alive(&mut self) -> Result<bool> {
        let result = self.keep_alive_once().await;
        // etcd answers "lease not found" for a revoked or expired lease.
        let gone = |e: &anyhow::Error| e.to_string().contains("lease not found");
        match result {
            Ok(ttl) if ttl > 0 => Ok(true),
            Ok(_) => {
                self.grant().await?;
                self.replaced = None;
                Ok(false)
            }
            Err(e) if gone(&e) => {
                self.grant().await?;
                self.replaced = None;
                Ok(false)
            }
            Err(e) => {
                self.keeper = None;
                Err(e)
            }
        }
    }

    async fn keep_alive_once(&mut self) -> Result<i64> {
        if self.keeper.is_none() {
            let keeper = self
                .timed("lease keep-alive", self.client.lease_keep_alive(self.lease))
                .await?;
            self.keeper = Some(keeper);
        }
        let timeout = self.settings.timeout;
        let description = self.settings.description();
        let Some(keeper) = self.keeper.as_mut() else {
            bail!("{description}: lease keep-alive: no stream");
        };
        match tokio::time::timeout(timeout, keeper.renew()).await {
            Ok(Ok(Some(resp))) => Ok(resp.ttl),
            Ok(Ok(None)) => Err(anyhow!("{description}: lease keep-alive: stream closed")),
            Ok(Err(e)) => Err(anyhow!("{description}: lease keep-alive: {e}")),
            Err(_) => Err(anyhow!(
                "{description}: lease keep-alive: no answer within {timeout:?}"
            )),
        }
    }

    /// Revokes the lease: every published key goes at once
    /// (`--flush-on-exit`).
    pub async fn flush(mut self) -> Result<()> {
        self.keeper = None;
        self.timed("lease revoke", self.client.lease_revoke(self.lease))
            .await?;
        self.current.clear();
        Ok(())
    }
}
