//! The overlay tree from etcd (the original clusterf key layout,
//! `<prefix>/services/<svc>/backends/<name>` and `<prefix>/routes/<name>`):
//! connecting (TLS, user/password), reading a consistent snapshot into a
//! [`Tree`], watching it ([`watch`]) and writing single keys for operators.
//!
//! Invariant: this module only moves bytes between etcd and a [`Tree`]; it
//! never interprets values (`config::parse_overlay` does, exactly as for
//! `--overlay-path`). An unreachable etcd is an error, never an empty tree.

pub mod keys;
pub mod watch;

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use etcd_client::{
    Certificate, Client, ConnectOptions, DeleteOptions, GetOptions, Identity, TlsOptions,
};

use crate::tree::Tree;
pub use keys::{KeyKind, Keyspace, backend_key_count};

/// Keys read per range request; later pages are read at the revision of the
/// first, so the tree is one consistent snapshot however large it is.
pub const PAGE_SIZE: i64 = 1000;

/// TLS material, already read from its files.
#[derive(Clone, Default)]
pub struct Tls {
    /// PEM CA bundle that verifies the server; none: the system roots.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate and key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Validated connection settings.
#[derive(Clone)]
pub struct Settings {
    endpoints: Vec<String>,
    keys: Keyspace,
    tls: Option<Tls>,
    user: Option<(String, String)>,
    /// Limit of one request (and of connecting).
    pub timeout: Duration,
}

impl std::fmt::Debug for Settings {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.keys.prefix())
            .field("tls", &self.tls.is_some())
            .field("user", &self.user.as_ref().map(|u| &u.0))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Settings {
    /// Checks the endpoints: at least one, each `http://`, `https://` or a
    /// bare `host:port` (plain http unless TLS is given).
    pub fn new(endpoints: Vec<String>, prefix: &str) -> Result<Settings> {
        if endpoints.is_empty() {
            bail!("--etcd: no endpoint given");
        }
        for e in &endpoints {
            if e.trim().is_empty() {
                bail!("--etcd: empty endpoint in the list");
            }
            if e.contains("://") && !e.starts_with("http://") && !e.starts_with("https://") {
                bail!("--etcd: endpoint {e:?}: expected http://HOST:PORT or https://HOST:PORT");
            }
        }
        Ok(Settings {
            endpoints: endpoints.iter().map(|e| e.trim().to_string()).collect(),
            keys: Keyspace::new(prefix),
            tls: None,
            user: None,
            timeout: Duration::from_secs(10),
        })
    }

    /// Uses TLS; every endpoint must then be `https://` or bare.
    pub fn with_tls(mut self, tls: Tls) -> Result<Settings> {
        if let Some(e) = self.endpoints.iter().find(|e| e.starts_with("http://")) {
            bail!("--etcd: endpoint {e} is plain http, but TLS options were given: use https://");
        }
        self.tls = Some(tls);
        Ok(self)
    }

    /// Authenticates as `user`.
    pub fn with_user(mut self, user: String, password: String) -> Settings {
        self.user = Some((user, password));
        self
    }

    pub fn keys(&self) -> &Keyspace {
        &self.keys
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// `etcd http://127.0.0.1:2379/clusterf`: the origin of trees read here.
    pub fn description(&self) -> String {
        format!("etcd {}{}", self.endpoints.join(","), self.keys.prefix())
    }

    fn connect_options(&self) -> ConnectOptions {
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            // Detects a dead server on an idle connection (and a watch
            // stream whose server went away without closing it).
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &self.user {
            opts = opts
                .with_user(user.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        if let Some(tls) = &self.tls {
            let mut config = TlsOptions::new();
            config = match &tls.ca {
                Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
                None => config.with_native_roots(),
            };
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            opts = opts.with_tls(config);
        }
        opts
    }
}

/// An etcd error as one lowercase line (gRPC statuses carry long details).
pub fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            let msg = s.message().trim();
            let code = format!("{:?}", s.code()).to_lowercase();
            if msg.is_empty() {
                code
            } else {
                format!("{code}: {msg}")
            }
        }
        etcd_client::Error::TransportError(t) => {
            let mut out = t.to_string();
            let mut source = std::error::Error::source(t);
            while let Some(s) = source {
                out = format!("{out}: {s}");
                source = s.source();
            }
            out
        }
        other => other.to_string(),
    }
}

/// Runs one request with the settings' timeout.
async fn timed<T>(
    settings: &Settings,
    what: &str,
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(settings.timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!(
            "{}: {what}: {}",
            settings.description(),
            describe(&e)
        )),
        Err(_) => Err(anyhow!(
            "{}: {what}: no answer within {:?}",
            settings.description(),
            settings.timeout
        )),
    }
}

/// Connects (and authenticates, when a user is set).
pub async fn connect(settings: &Settings) -> Result<Client> {
    timed(
        settings,
        "connect",
        Client::connect(&settings.endpoints, Some(settings.connect_options())),
    )
    .await
}

/// Reads every key below the prefix at one revision R: the tree's
/// `origin.revision` is R.
pub async fn read(client: &mut Client, settings: &Settings) -> Result<Tree> {
    read_at(client, settings, None).await
}

/// Reads the tree at `revision` (None: the current one).
pub async fn read_at(
    client: &mut Client,
    settings: &Settings,
    revision: Option<i64>,
) -> Result<Tree> {
    let keys = &settings.keys;
    let end = keys.range_end();
    let mut tree = Tree::new(settings.description());
    let mut start = keys.scan_prefix().to_vec();
    let mut at = revision;
    loop {
        let mut opts = GetOptions::new()
            .with_range(end.clone())
            .with_limit(PAGE_SIZE);
        if let Some(rev) = at {
            opts = opts.with_revision(rev);
        }
        let resp = timed(settings, "get", client.get(start.clone(), Some(opts))).await?;
        let rev = resp
            .header()
            .map(|h| h.revision())
            .context("etcd answered without a header")?;
        // Later pages at the same revision: one snapshot.
        let rev = *at.get_or_insert(rev);
        for kv in resp.kvs() {
            keys::apply_put(&mut tree, keys, kv.key(), kv.value());
        }
        match (resp.more(), resp.kvs().last()) {
            (true, Some(last)) => {
                start = last.key().to_vec();
                start.push(0);
            }
            _ => {
                tree.origin.revision = Some(rev.to_string());
                return Ok(tree);
            }
        }
    }
}

/// Writes `value` at the tree path `path`; the revision of the write.
pub async fn put(
    client: &mut Client,
    settings: &Settings,
    path: &str,
    value: &[u8],
) -> Result<i64> {
    let key = settings.keys.key(path);
    let resp = timed(settings, "put", client.put(key, value.to_vec(), None)).await?;
    Ok(resp.header().map_or(0, |h| h.revision()))
}

/// Deletes the tree path `path` (with `prefix`: every key below `path/` as
/// well); how many keys were deleted.
pub async fn delete(
    client: &mut Client,
    settings: &Settings,
    path: &str,
    prefix: bool,
) -> Result<i64> {
    let key = settings.keys.key(path);
    let mut deleted = 0;
    if prefix {
        let mut dir = key.clone();
        dir.push(b'/');
        let opts = DeleteOptions::new().with_prefix();
        deleted += timed(settings, "delete", client.delete(dir, Some(opts)))
            .await?
            .deleted();
    }
    deleted += timed(settings, "delete", client.delete(key, None))
        .await?
        .deleted();
    Ok(deleted)
}

/// A single-threaded runtime for the one-shot commands.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Connects and reads the tree once, blocking (`render --etcd`). Starts its
/// own runtime: not for use inside an async context (use [`read`] there).
pub fn read_blocking(settings: &Settings) -> Result<Tree> {
    runtime()?.block_on(async {
        let mut client = connect(settings).await?;
        read(&mut client, settings).await
    })
}
