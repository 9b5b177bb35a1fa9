//! A small etcd v3 client: the KV, Watch, Lease and Authenticate calls that
//! clusterf makes, over gRPC with tonic and prost, plus TLS and user/password
//! authentication with token refresh.
//!
//! Why our own and not the etcd-client crate: its build script runs the
//! system `protoc`, so no machine could build clusterf with cargo alone (see
//! ARCHITECTURE.md, "etcd client"). The messages are in [`proto`], written
//! from etcd's documented API; there is no build script.
//!
//! Must not: know clusterf's key layout or retry on its own (beyond one
//! re-authentication when etcd says the token expired). Callers put their
//! own time limits around every call (`source::etcd::timed`).

pub mod proto;
mod stream;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

use proto::*;
pub use stream::{KeepAlive, Watch, WatchAnswers, WatchRequests};

/// TLS material, already read from its files.
#[derive(Clone, Default)]
pub struct Tls {
    /// PEM CA bundle that verifies the server; none: the system roots.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate and key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// How to reach etcd.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `http://HOST:PORT`, `https://HOST:PORT` or `HOST:PORT` (https with
    /// TLS, http without).
    pub endpoints: Vec<String>,
    pub tls: Option<Tls>,
    /// User name and password.
    pub user: Option<(String, String)>,
    /// Limit of one TCP (and TLS) connection attempt.
    pub connect_timeout: Duration,
}

/// An error of one call.
#[derive(Debug)]
pub enum Error {
    /// etcd (or the gRPC layer, for a connection that failed) answered with
    /// a status.
    Status(Status),
    /// An endpoint or the TLS material could not be used.
    Transport(tonic::transport::Error),
    /// A stream ended while an answer was awaited.
    StreamClosed,
    /// etcd sent a token that is no valid gRPC metadata value.
    BadToken,
}

impl std::fmt::Display for Error {
    /// One lowercase line: `unavailable: ...`, `permissiondenied:
    /// etcdserver: permission denied`; transport errors with their causes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Status(s) => {
                let code = format!("{:?}", s.code()).to_lowercase();
                let msg = s.message().trim();
                if msg.is_empty() {
                    f.write_str(&code)
                } else {
                    write!(f, "{code}: {msg}")
                }
            }
            Error::Transport(t) => {
                write!(f, "{t}")?;
                let mut source = std::error::Error::source(t);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
            Error::StreamClosed => f.write_str("stream closed"),
            Error::BadToken => {
                f.write_str("etcd sent an authentication token that cannot be sent back")
            }
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// An answer larger than [`MAX_ANSWER`]: ask for fewer keys at once.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Error::Status(s) if s.code() == Code::OutOfRange
            && s.message().contains("too large"))
    }
}

/// The largest answer accepted (tonic's default is 4 MiB). A range answer
/// holds whole values, each at most etcd's `--max-request-bytes` (1.5 MiB
/// by default) and clusterf's file limit; callers that page shrink a page
/// whose answer is larger ([`Error::is_too_large`]).
pub const MAX_ANSWER: usize = 16 << 20;

/// A gRPC client on `channel` that accepts answers up to [`MAX_ANSWER`].
fn grpc(channel: &Channel) -> tonic::client::Grpc<Channel> {
    tonic::client::Grpc::new(channel.clone()).max_decoding_message_size(MAX_ANSWER)
}

impl From<Status> for Error {
    fn from(s: Status) -> Error {
        Error::Status(s)
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Error {
        Error::Transport(e)
    }
}

/// The gRPC method paths (`/package.Service/Method`).
mod path {
    pub const RANGE: &str = "/etcdserverpb.KV/Range";
    pub const PUT: &str = "/etcdserverpb.KV/Put";
    pub const DELETE_RANGE: &str = "/etcdserverpb.KV/DeleteRange";
    pub const TXN: &str = "/etcdserverpb.KV/Txn";
    pub const WATCH: &str = "/etcdserverpb.Watch/Watch";
    pub const LEASE_GRANT: &str = "/etcdserverpb.Lease/LeaseGrant";
    pub const LEASE_REVOKE: &str = "/etcdserverpb.Lease/LeaseRevoke";
    pub const LEASE_KEEP_ALIVE: &str = "/etcdserverpb.Lease/LeaseKeepAlive";
    pub const LEASE_TIME_TO_LIVE: &str = "/etcdserverpb.Lease/LeaseTimeToLive";
    pub const AUTHENTICATE: &str = "/etcdserverpb.Auth/Authenticate";
}

/// The credentials and the token they bought.
struct Auth {
    user: String,
    password: String,
    token: RwLock<Option<AsciiMetadataValue>>,
}

/// A connection to an etcd cluster; cheap to clone (clones share the
/// connection and the token).
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    auth: Option<Arc<Auth>>,
}

/// One endpoint with the connection settings.
fn endpoint(url: &str, opts: &ConnectOptions) -> Result<Endpoint, Error> {
    let url = if url.contains("://") {
        url.to_string()
    } else if opts.tls.is_some() {
        format!("https://{url}")
    } else {
        format!("http://{url}")
    };
    let mut ep = Endpoint::from_shared(url)?
        .connect_timeout(opts.connect_timeout)
        // Detects a dead server on an idle connection, and a watch stream
        // whose server went away without closing it.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if let Some(tls) = &opts.tls {
        let mut config = ClientTlsConfig::new();
        config = match &tls.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None => config.with_native_roots(),
        };
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        ep = ep.tls_config(config)?;
    }
    Ok(ep)
}

/// etcd's answer to a request with an expired or unknown token
/// (`ErrInvalidAuthToken`).
fn is_invalid_token(s: &Status) -> bool {
    s.code() == Code::Unauthenticated && s.message().contains("invalid auth token")
}

impl Client {
    /// Connects lazily (the first call opens the connection), except that a
    /// user authenticates at once, so bad credentials fail here.
    pub async fn connect(opts: &ConnectOptions) -> Result<Client, Error> {
        let endpoints = opts
            .endpoints
            .iter()
            .map(|e| endpoint(e, opts))
            .collect::<Result<Vec<_>, _>>()?;
        // One endpoint: a plain channel, whose connection errors reach the
        // caller at once; several: tonic's balancer over all of them.
        let channel = match endpoints.as_slice() {
            [one] => one.connect_lazy(),
            _ => Channel::balance_list(endpoints.into_iter()),
        };
        let auth = opts.user.as_ref().map(|(user, password)| {
            Arc::new(Auth {
                user: user.clone(),
                password: password.clone(),
                token: RwLock::new(None),
            })
        });
        let client = Client { channel, auth };
        client.authenticate().await?;
        Ok(client)
    }

    /// Asks etcd for a token with the credentials (nothing without a user).
    async fn authenticate(&self) -> Result<(), Error> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let req = AuthenticateRequest {
            name: auth.user.clone(),
            password: auth.password.clone(),
        };
        let resp: AuthenticateResponse = self
            .grpc_unary(Request::new(req), path::AUTHENTICATE)
            .await?;
        let token: AsciiMetadataValue =
            MetadataValue::try_from(resp.token.as_str()).map_err(|_| Error::BadToken)?;
        *auth.token.write().unwrap_or_else(|e| e.into_inner()) = Some(token);
        Ok(())
    }

    /// `msg` as a request carrying the token, if there is one.
    fn request<M>(&self, msg: M) -> Request<M> {
        let mut req = Request::new(msg);
        if let Some(auth) = &self.auth {
            let token = auth.token.read().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = token.as_ref() {
                req.metadata_mut().insert("token", t.clone());
            }
        }
        req
    }

    async fn grpc_unary<Q, A>(&self, req: Request<Q>, path: &'static str) -> Result<A, Error>
    where
        Q: prost::Message + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = grpc(&self.channel);
        grpc.ready()
            .await
            .map_err(|e| Error::Status(Status::from_error(e.into())))?;
        let codec = tonic_prost::ProstCodec::<Q, A>::default();
        let path = http::uri::PathAndQuery::from_static(path);
        Ok(grpc.unary(req, path, codec).await?.into_inner())
    }

    /// One unary call with the token; once more after re-authenticating
    /// when etcd says the token expired (simple tokens expire after
    /// `--auth-token-ttl` of idleness).
    async fn unary<Q, A>(&self, msg: Q, path: &'static str) -> Result<A, Error>
    where
        Q: prost::Message + Clone + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        match self.grpc_unary(self.request(msg.clone()), path).await {
            Err(Error::Status(s)) if self.auth.is_some() && is_invalid_token(&s) => {
                self.authenticate().await?;
                self.grpc_unary(self.request(msg), path).await
            }
            other => other,
        }
    }

    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Error> {
        self.unary(req, path::RANGE).await
    }

    pub async fn put(&self, req: PutRequest) -> Result<PutResponse, Error> {
        self.unary(req, path::PUT).await
    }

    pub async fn delete_range(
        &self,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Error> {
        self.unary(req, path::DELETE_RANGE).await
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Error> {
        self.unary(req, path::TXN).await
    }

    /// A lease of `ttl` seconds, its ID chosen by etcd.
    pub async fn lease_grant(&self, ttl: i64) -> Result<LeaseGrantResponse, Error> {
        self.unary(LeaseGrantRequest { ttl, id: 0 }, path::LEASE_GRANT)
            .await
    }

    /// Ends the lease; its keys are deleted.
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, Error> {
        self.unary(LeaseRevokeRequest { id }, path::LEASE_REVOKE)
            .await
    }

    pub async fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, Error> {
        self.unary(
            LeaseTimeToLiveRequest { id, keys },
            path::LEASE_TIME_TO_LIVE,
        )
        .await
    }

    /// Opens a watch stream and sends `create` on it; the first answer is
    /// the creation (or its refusal).
    pub async fn watch(&self, create: WatchCreateRequest) -> Result<Watch, Error> {
        let first = WatchRequest {
            request_union: Some(WatchRequestUnion::CreateRequest(create)),
        };
        stream::open(self, first, path::WATCH).await.map(Watch::new)
    }

    /// Opens a keep-alive stream for lease `id`; each
    /// [`KeepAlive::renew`] renews it once.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<KeepAlive, Error> {
        let first = LeaseKeepAliveRequest { id };
        stream::open(self, first, path::LEASE_KEEP_ALIVE)
            .await
            .map(|s| KeepAlive::new(s, id))
    }
}

/// The range end that makes a range (or watch) cover every key that starts
/// with `prefix`: the prefix with its last byte below 0xff increased, the
/// rest dropped; `[0]` (every key) when there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_after_its_last_byte_that_can_grow() {
        assert_eq!(prefix_end(b"/clusterf/"), b"/clusterf0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), [0]);
        assert_eq!(prefix_end(b""), [0]);
    }

    #[test]
    fn a_status_reads_as_one_lowercase_line() {
        let e = Error::Status(Status::permission_denied("etcdserver: permission denied"));
        assert_eq!(
            e.to_string(),
            "permissiondenied: etcdserver: permission denied"
        );
        assert_eq!(
            Error::Status(Status::unavailable("")).to_string(),
            "unavailable"
        );
    }

    #[test]
    fn only_an_unauthenticated_invalid_token_answer_triggers_reauthentication() {
        assert!(is_invalid_token(&Status::unauthenticated(
            "etcdserver: invalid auth token"
        )));
        assert!(!is_invalid_token(&Status::unauthenticated(
            "etcdserver: authentication failed, invalid user ID or password"
        )));
        assert!(!is_invalid_token(&Status::permission_denied(
            "etcdserver: invalid auth token"
        )));
    }
}
