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

pub use crate::etcd::Tls;
use crate::etcd::proto::{DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse};
use crate::etcd::{Client, ConnectOptions};
use crate::text;
use crate::tree::{Files, Tree};
pub use keys::{KeyKind, Keyspace, backend_key_count};

/// Keys read per range request; later pages are read at the revision of the
/// first, so the tree is one consistent snapshot however large it is.
pub const PAGE_SIZE: i64 = 1000;

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
            let shown = redact_endpoint(e);
            if shown != *e {
                bail!(
                    "--etcd: endpoint {}: a user or password in the URL is not supported \
                     (it would show in ps and in logs): give --etcd-user USER with \
                     --etcd-password-file FILE",
                    text::cut(&shown)
                );
            }
            if e.contains("://") && !e.starts_with("http://") && !e.starts_with("https://") {
                bail!(
                    "--etcd: endpoint {}: expected http://HOST:PORT or https://HOST:PORT",
                    text::quote(e)
                );
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

    /// `etcd http://127.0.0.1:2379/clusterf`: the source of the trees read here.
    pub fn description(&self) -> String {
        format!("etcd {}{}", self.endpoints.join(","), self.keys.prefix())
    }

    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            endpoints: self.endpoints.clone(),
            tls: self.tls.clone(),
            user: self.user.clone(),
            connect_timeout: self.timeout,
        }
    }
}

/// `endpoint` with any user and password replaced by `***`
/// (`http://***@host:2379`), for messages: credentials are refused in an
/// endpoint ([`Settings::new`]), and the refusal must not echo them.
pub fn redact_endpoint(endpoint: &str) -> String {
    let start = endpoint.find("://").map_or(0, |i| i + 3);
    let rest = &endpoint[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{}***{}", &endpoint[..start], &endpoint[start + at..]),
        None => endpoint.to_string(),
    }
}

/// Runs one request with the settings' timeout.
pub async fn timed<T>(
    settings: &Settings,
    what: &str,
    fut: impl Future<Output = Result<T, crate::etcd::Error>>,
) -> Result<T> {
    answer_or_error(settings, what, timed_raw(settings, fut).await)
}

/// The answer within the settings' timeout; `None` when there was none.
async fn timed_raw<T>(
    settings: &Settings,
    fut: impl Future<Output = Result<T, crate::etcd::Error>>,
) -> Option<Result<T, crate::etcd::Error>> {
    tokio::time::timeout(settings.timeout, fut).await.ok()
}

/// An answer, or the error naming etcd and the request.
fn answer_or_error<T>(
    settings: &Settings,
    what: &str,
    answer: Option<Result<T, crate::etcd::Error>>,
) -> Result<T> {
    match answer {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(anyhow!("{}: {what}: {e}", settings.description())),
        None => Err(anyhow!(
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
        Client::connect(&settings.connect_options()),
    )
    .await
}

/// Reads every key below the prefix at one revision R: the tree's
/// `source.revision` is R.
pub async fn read(client: &Client, settings: &Settings) -> Result<Tree> {
    read_at(client, settings, None).await
}

/// Reads the tree at `revision` (None: the current one).
pub async fn read_at(client: &Client, settings: &Settings, revision: Option<i64>) -> Result<Tree> {
    let keys = &settings.keys;
    let end = keys.range_end();
    let mut tree = Tree::new(settings.description());
    // Many small, alike keys, read a few at a time: compressed at rest.
    tree.files = Files::compressed();
    let mut start = keys.scan_prefix().to_vec();
    let mut at = revision;
    loop {
        let resp = read_page(client, settings, &start, &end, at.unwrap_or(0)).await?;
        let rev = resp
            .header
            .as_ref()
            .map(|h| h.revision)
            .context("etcd answered without a header")?;
        // Later pages at the same revision: one snapshot.
        let rev = *at.get_or_insert(rev);
        for kv in &resp.kvs {
            keys::apply_put(&mut tree, keys, &kv.key, &kv.value);
        }
        match (resp.more, resp.kvs.last()) {
            (true, Some(last)) => {
                start = last.key.clone();
                start.push(0);
            }
            _ => {
                tree.source.revision = Some(rev.to_string());
                return Ok(tree);
            }
        }
    }
}

/// One page of the range `[start, end)` at `revision` (0: the current
/// one): [`PAGE_SIZE`] keys, or fewer when their values do not fit in one
/// answer ([`crate::etcd::MAX_ANSWER`]): the page is halved until they do.
pub async fn read_page(
    client: &Client,
    settings: &Settings,
    start: &[u8],
    end: &[u8],
    revision: i64,
) -> Result<RangeResponse> {
    let mut limit = PAGE_SIZE;
    loop {
        let req = RangeRequest {
            key: start.to_vec(),
            range_end: end.to_vec(),
            limit,
            revision,
            ..Default::default()
        };
        match timed_raw(settings, client.range(req)).await {
            Some(Err(e)) if e.is_too_large() && limit > 1 => limit /= 2,
            answer => return answer_or_error(settings, "get", answer),
        }
    }
}

/// Writes `value` at the tree path `path`; the revision of the write.
pub async fn put(client: &Client, settings: &Settings, path: &str, value: &[u8]) -> Result<i64> {
    let key = settings.keys.key(path);
    let req = PutRequest {
        key,
        value: value.to_vec(),
        ..Default::default()
    };
    let resp = timed(settings, "put", client.put(req)).await?;
    Ok(resp.header.map_or(0, |h| h.revision))
}

/// Deletes the tree path `path` (with `prefix`: every key below `path/` as
/// well); how many keys were deleted.
pub async fn delete(client: &Client, settings: &Settings, path: &str, prefix: bool) -> Result<i64> {
    let key = settings.keys.key(path);
    let mut deleted = 0;
    if prefix {
        let mut dir = key.clone();
        dir.push(b'/');
        let req = DeleteRangeRequest {
            range_end: crate::etcd::prefix_end(&dir),
            key: dir,
            ..Default::default()
        };
        deleted += timed(settings, "delete", client.delete_range(req))
            .await?
            .deleted;
    }
    let req = DeleteRangeRequest {
        key,
        ..Default::default()
    };
    deleted += timed(settings, "delete", client.delete_range(req))
        .await?
        .deleted;
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
/// A prefix with no keys is a warning on stderr ([`empty_prefix`]).
pub fn read_blocking(settings: &Settings) -> Result<Tree> {
    let tree = runtime()?.block_on(async {
        let client = connect(settings).await?;
        read(&client, settings).await
    })?;
    if let Some(warning) = empty_prefix(settings, &tree) {
        eprintln!("warning: {warning}");
    }
    Ok(tree)
}

/// The check of `--etcd-prefix`: a tree read from a prefix that holds no
/// keys at all (none clusterf reads) is most likely a wrong prefix or a
/// wiped etcd, and would leave every service the overlay feeds without
/// backends. Not an error: an empty overlay is a valid state.
pub fn empty_prefix(settings: &Settings, tree: &Tree) -> Option<String> {
    tree.is_empty().then(|| {
        format!(
            "{}: no keys below {}/: check --etcd-prefix; with an empty overlay, services fed by it have no backends",
            settings.description(),
            settings.keys().prefix()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_redacted_for_messages() {
        assert_eq!(
            redact_endpoint("http://user:s3cret@127.0.0.1:2379"),
            "http://***@127.0.0.1:2379"
        );
        assert_eq!(redact_endpoint("u:p@h:2379/x@y"), "***@h:2379/x@y");
        assert_eq!(redact_endpoint("https://h:2379/a@b"), "https://h:2379/a@b");
        assert_eq!(redact_endpoint("h:2379"), "h:2379");
    }

    #[test]
    fn credentials_in_an_endpoint_are_refused_without_echoing_them() {
        for e in [
            "http://root:s3cretPW@127.0.0.1:2379",
            "root:s3cretPW@127.0.0.1:2379",
            "ftp://root:s3cretPW@127.0.0.1:2379",
            "https://s3cretPW@127.0.0.1:2379",
        ] {
            let err = Settings::new(vec![e.to_string()], "/clusterf").unwrap_err();
            let msg = format!("{err:#}");
            assert!(!msg.contains("s3cretPW"), "{msg}");
            assert!(msg.contains("--etcd-user"), "{msg}");
        }
    }
}
