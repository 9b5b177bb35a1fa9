//! One health check against one target, over the network: a TCP connect,
//! an HTTP(S) GET, or a DNS query over UDP, all within the check's timeout.
//! Returns an [`Outcome`]; judging it is [`crate::health`]'s job.
//!
//! Must not: retry (rise and fall are the retries), follow redirects, reuse
//! connections (each check proves a new connection works), or run a shell.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types};

use super::clock::unix_now;
use crate::health::{HttpProbe, Outcome, Probe, Target, dns};

/// Runs one check and says what happened, finishing within the timeout.
pub async fn probe(target: &Target) -> Outcome {
    let timeout = target.check.timeout;
    let result = tokio::time::timeout(timeout, attempt(target)).await;
    let (ok, detail) = match result {
        Ok(Ok(detail)) => (true, detail),
        Ok(Err(detail)) => (false, detail),
        Err(_) => (false, format!("timeout after {timeout:?}")),
    };
    let at_ms = u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX);
    Outcome { ok, detail, at_ms }
}

async fn attempt(target: &Target) -> Result<String, String> {
    let addr = target.addr;
    match &target.check.probe {
        Probe::Tcp => connect(addr).await.map(|_| "connected".to_string()),
        Probe::Http(http) => get(connect(addr).await?, addr, http, "http").await,
        Probe::Https(http) => {
            let tcp = connect(addr).await?;
            let name = pki_types::ServerName::IpAddress(addr.ip().into());
            let tls = tls_connector()
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls: {}", short(&e)))?;
            get(tls, addr, http, "https").await
        }
        Probe::Dns { query } => dns_query(addr, query).await,
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {}", short(&e)))?;
    let _ = stream.set_nodelay(true);
    // Closed with a reset, as HAProxy's checks are: a check every 5 s to
    // 100k dests would otherwise leave a million sockets in TIME_WAIT.
    let _ = stream.set_zero_linger();
    Ok(stream)
}

/// A GET over one new connection; healthy when the status is expected.
async fn get<S>(io: S, addr: SocketAddr, http: &HttpProbe, scheme: &str) -> Result<String, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("{scheme}: {}", short(&e)))?;
    let driver = tokio::spawn(conn);
    let host = http.host.clone().unwrap_or_else(|| addr.to_string());
    let request = hyper::Request::get(http.path.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "clusterf-health")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{scheme} request: {}", short(&e)))?;
    let response = sender.send_request(request).await;
    driver.abort();
    let status = response
        .map_err(|e| format!("{scheme}: {}", short(&e)))?
        .status()
        .as_u16();
    let detail = format!("{scheme} {status}");
    if http.expect.matches(status) {
        Ok(detail)
    } else {
        Err(detail)
    }
}

async fn dns_query(addr: SocketAddr, name: &str) -> Result<String, String> {
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("dns: {}", short(&e)))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| format!("dns: {}", short(&e)))?;
    let id = rand_id();
    socket
        .send(&dns::query(id, name))
        .await
        .map_err(|e| format!("dns: {}", short(&e)))?;
    let mut buf = [0u8; 512];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| format!("dns: {}", short(&e)))?;
        // A stray datagram for another id is ignored, as resolvers do.
        match dns::check_answer(id, &buf[..n]) {
            Err(e) if e == "dns answer to another query" => continue,
            Ok(code) => return Ok(format!("dns {code}")),
            Err(e) => return Err(e),
        }
    }
}

/// A query id that differs per check (not a secret: a liveness query
/// carries nothing to spoof).
fn rand_id() -> u16 {
    let nanos = unix_now().subsec_nanos();
    (nanos ^ (nanos >> 16)) as u16
}

/// An error in a few words: the message of its innermost cause, cut.
fn short(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    crate::text::cut_message(&inner.to_string())
}

/// TLS without certificate verification: a dest is addressed by IP and the
/// question is liveness, not identity (HAProxy's `check-ssl verify none`).
fn tls_connector() -> TlsConnector {
    static CONNECTOR: std::sync::OnceLock<TlsConnector> = std::sync::OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("aws-lc-rs supports the default versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            TlsConnector::from(Arc::new(config))
        })
        .clone()
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &pki_types::CertificateDer<'_>,
        _: &[pki_types::CertificateDer<'_>],
        _: &pki_types::ServerName<'_>,
        _: &[u8],
        _: pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    // The handshake signatures are still checked: a peer must hold the key
    // of the certificate it shows, even an unverified one.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
