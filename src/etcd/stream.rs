//! The two bidirectional streams clusterf keeps open: a watch and a lease
//! keep-alive. Requests go out through a channel, answers come in through
//! tonic's `Streaming`.
//!
//! Must not: retry or reconnect; a stream that fails is dropped and the
//! caller opens a new one.

use futures_util::stream;
use tokio::sync::mpsc;
use tonic::Streaming;

use super::proto::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, WatchProgressRequest, WatchRequest,
    WatchRequestUnion, WatchResponse,
};
use super::{Client, Error, is_invalid_token};

/// Requests that can be queued before the stream takes them.
const QUEUE: usize = 8;

/// An open stream: the request side and the answer side.
pub(super) struct Duplex<Q, A> {
    tx: mpsc::Sender<Q>,
    rx: Streaming<A>,
}

/// Opens a stream at `path` and sends `first` on it. etcd answers the
/// stream's headers only once it has a request, so there is always a first
/// one. An expired token is renewed once, as for unary calls.
pub(super) async fn open<Q, A>(
    client: &Client,
    first: Q,
    path: &'static str,
) -> Result<Duplex<Q, A>, Error>
where
    Q: prost::Message + Clone + Send + Sync + 'static,
    A: prost::Message + Default + Send + Sync + 'static,
{
    match open_once(client, first.clone(), path).await {
        Err(Error::Status(s)) if client.auth.is_some() && is_invalid_token(&s) => {
            client.authenticate().await?;
            open_once(client, first, path).await
        }
        other => other,
    }
}

async fn open_once<Q, A>(
    client: &Client,
    first: Q,
    path: &'static str,
) -> Result<Duplex<Q, A>, Error>
where
    Q: prost::Message + Send + Sync + 'static,
    A: prost::Message + Default + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel(QUEUE);
    tx.try_send(first).map_err(|_| Error::StreamClosed)?;
    let requests = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut grpc = super::grpc(&client.channel);
    grpc.ready()
        .await
        .map_err(|e| Error::Status(tonic::Status::from_error(e.into())))?;
    let codec = tonic_prost::ProstCodec::<Q, A>::default();
    let path = http::uri::PathAndQuery::from_static(path);
    let rx = grpc
        .streaming(client.request(requests), path, codec)
        .await?
        .into_inner();
    Ok(Duplex { tx, rx })
}

/// A watch: its answers, and a handle to ask for progress.
pub struct Watch {
    requests: WatchRequests,
    answers: WatchAnswers,
}

/// The request side of a watch.
pub struct WatchRequests(mpsc::Sender<WatchRequest>);

/// The answer side of a watch.
pub struct WatchAnswers(Streaming<WatchResponse>);

impl Watch {
    pub(super) fn new(d: Duplex<WatchRequest, WatchResponse>) -> Watch {
        Watch {
            requests: WatchRequests(d.tx),
            answers: WatchAnswers(d.rx),
        }
    }

    /// The two sides, to wait on answers while sending requests. Keep the
    /// request side: dropping it closes the stream, and etcd ends the watch.
    pub fn split(self) -> (WatchRequests, WatchAnswers) {
        (self.requests, self.answers)
    }

    /// The next answer; `None` when etcd closed the stream.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>, Error> {
        self.answers.message().await
    }
}

impl WatchRequests {
    /// Asks etcd for a progress answer: a response without events whose
    /// header carries the current revision.
    pub async fn request_progress(&self) -> Result<(), Error> {
        let req = WatchRequest {
            request_union: Some(WatchRequestUnion::ProgressRequest(WatchProgressRequest {})),
        };
        self.0.send(req).await.map_err(|_| Error::StreamClosed)
    }
}

impl WatchAnswers {
    /// The next answer; `None` when etcd closed the stream.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>, Error> {
        Ok(self.0.message().await?)
    }
}

/// A lease keep-alive stream.
pub struct KeepAlive {
    id: i64,
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    rx: Streaming<LeaseKeepAliveResponse>,
    /// The request sent when the stream opened is not answered yet.
    unanswered: bool,
}

impl KeepAlive {
    pub(super) fn new(d: Duplex<LeaseKeepAliveRequest, LeaseKeepAliveResponse>, id: i64) -> Self {
        KeepAlive {
            id,
            tx: d.tx,
            rx: d.rx,
            unanswered: true,
        }
    }

    /// Renews the lease once; etcd's answer carries the TTL now left (0 or
    /// less: the lease is gone). `None`: the stream was closed.
    pub async fn renew(&mut self) -> Result<Option<LeaseKeepAliveResponse>, Error> {
        if !self.unanswered {
            let req = LeaseKeepAliveRequest { id: self.id };
            self.tx.send(req).await.map_err(|_| Error::StreamClosed)?;
        }
        self.unanswered = false;
        Ok(self.rx.message().await?)
    }
}
