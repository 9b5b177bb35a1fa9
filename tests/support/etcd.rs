//! Test support: a real etcd server on free loopback ports with a temporary
//! data dir, killed on drop; throwaway TLS material made with openssl.
//!
//! When the etcd binary (or openssl, for TLS) is missing: with the `CI`
//! environment variable set the test fails; otherwise it prints a loud SKIP
//! and the test returns early. This module never mocks etcd.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clusterf::etcd::proto::{
    DeleteRangeRequest, DeleteRangeResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, WatchCreateRequest,
};
use clusterf::etcd::{Client, ConnectOptions, Error, Watch, prefix_end};

/// The etcd binary: `$CLUSTERF_ETCD_BIN`, else `/usr/bin/etcd`, else `etcd` on PATH.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CLUSTERF_ETCD_BIN") {
        return Some(PathBuf::from(p));
    }
    let default = Path::new("/usr/bin/etcd");
    if default.is_file() {
        return Some(default.to_path_buf());
    }
    which("etcd")
}

/// A program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Fails the test in CI, prints a loud SKIP otherwise.
pub fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing, and CI is set: integration tests must not skip");
    }
    // Written to the stderr handle, not with eprintln!, so that the test
    // harness does not capture (and hide) it.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIP: {what} is missing: this etcd integration test did not run !!!!!!!!\n"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// Server TLS material for [`Etcd::start_tls`].
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here: verifying with it must fail.
    pub other_ca: PathBuf,
}

/// Makes a throwaway CA, a server certificate for 127.0.0.1 and a client
/// certificate in `dir`; `None` (after [`missing`]) without openssl.
pub fn make_tls(dir: &Path) -> Option<TlsFiles> {
    if which("openssl").is_none() {
        missing("openssl (to make test certificates)");
        return None;
    }
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let mut args = vec!["req", "-x509", "-days", "2", "-subj"];
        let subj = format!("/CN=clusterf test {ca}");
        args.push(&subj);
        args.extend(ec);
        let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
        args.extend(["-keyout", &key, "-out", &crt]);
        run(&args);
    }
    for (name, cn, usage, san) in [
        (
            "server",
            "127.0.0.1",
            "serverAuth,clientAuth",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        ),
        ("client", "root", "clientAuth", ""),
    ] {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        fs::write(
            dir.join(&ext),
            format!("{san}extendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"),
        )
        .unwrap();
        let subj = format!("/CN={cn}");
        let mut args = vec!["req", "-subj", &subj];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr]);
        run(&args);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
    }
    Some(TlsFiles {
        dir: dir.to_path_buf(),
        ca: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
        other_ca: dir.join("other-ca.crt"),
    })
}

/// A running etcd. Killed on drop.
pub struct Etcd {
    binary: PathBuf,
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<TlsFiles>,
    /// More command-line flags for the server.
    flags: Vec<String>,
    starts: u32,
}

impl Etcd {
    /// Starts a plain-http etcd; `None` (after [`missing`]) without the binary.
    pub fn start() -> Option<Etcd> {
        Self::start_with(None, &[])
    }

    /// Starts a plain-http etcd with more server flags.
    pub fn start_flags(flags: &[&str]) -> Option<Etcd> {
        Self::start_with(None, flags)
    }

    /// Starts an etcd that serves https and requires client certificates.
    pub fn start_tls(tls: TlsFiles) -> Option<Etcd> {
        Self::start_with(Some(tls), &[])
    }

    fn start_with(tls: Option<TlsFiles>, flags: &[&str]) -> Option<Etcd> {
        let Some(binary) = etcd_binary().filter(|b| b.is_file()) else {
            missing("the etcd server binary (/usr/bin/etcd, Debian package etcd-server)");
            return None;
        };
        let mut etcd = Etcd {
            binary,
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            client_port: free_port(),
            peer_port: free_port(),
            tls,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            starts: 0,
        };
        etcd.launch();
        Some(etcd)
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.client_port)
    }

    /// A directory for the test's own files, removed with the server.
    pub fn scratch(&self) -> PathBuf {
        let p = self.dir.path().join("scratch");
        fs::create_dir_all(&p).unwrap();
        p
    }

    fn launch(&mut self) {
        self.starts += 1;
        let log = self.dir.path().join(format!("etcd-{}.log", self.starts));
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let client = self.url();
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--name")
            .arg("clusterf-test")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("clusterf-test={peer}"));
        if let Some(tls) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        cmd.args(&self.flags);
        let out = fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if text.contains("ready to serve client requests") {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("etcd exited ({status}) before it was ready:\n{text}");
            }
            if Instant::now() > deadline {
                panic!("etcd not ready within 30s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (a crash: SIGKILL), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// A client for the test's own reads and writes (plain http only).
    pub async fn client(&self) -> TestClient {
        let opts = ConnectOptions {
            endpoints: vec![self.url()],
            tls: None,
            user: None,
            connect_timeout: Duration::from_secs(5),
        };
        TestClient(
            Client::connect(&opts)
                .await
                .expect("connect to the test etcd"),
        )
    }

    /// Runs etcd's own command-line client against this server, for what
    /// clusterf's client has no call for (compaction, users and roles).
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let Some(bin) = which("etcdctl") else {
            panic!("etcdctl is missing (Debian package etcd-client): tests/run.sh installs it");
        };
        let out = Command::new(bin)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.url()))
            .args(args)
            .output()
            .expect("run etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The log of the current run, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join(format!("etcd-{}.log", self.starts)))
            .unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The tests' own etcd client: clusterf's client with shorthand calls.
/// Errors are returned, so a test says what it expects of them.
pub struct TestClient(pub Client);

impl TestClient {
    pub async fn put(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<PutResponse, Error> {
        let req = PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        self.0.put(req).await
    }

    /// The one key `key`.
    pub async fn get(&mut self, key: impl Into<Vec<u8>>) -> Result<RangeResponse, Error> {
        let req = RangeRequest {
            key: key.into(),
            ..Default::default()
        };
        self.0.range(req).await
    }

    /// Every key that starts with `prefix`.
    pub async fn get_prefix(&mut self, prefix: impl Into<Vec<u8>>) -> Result<RangeResponse, Error> {
        let key = prefix.into();
        let req = RangeRequest {
            range_end: prefix_end(&key),
            key,
            ..Default::default()
        };
        self.0.range(req).await
    }

    /// The current revision of the store.
    pub async fn revision(&mut self) -> i64 {
        let resp = self.get("x").await.expect("read the revision");
        resp.header.expect("a response header").revision
    }

    pub async fn delete(&mut self, key: impl Into<Vec<u8>>) -> Result<DeleteRangeResponse, Error> {
        let req = DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        };
        self.0.delete_range(req).await
    }

    /// Deletes every key that starts with `prefix`.
    pub async fn delete_prefix(
        &mut self,
        prefix: impl Into<Vec<u8>>,
    ) -> Result<DeleteRangeResponse, Error> {
        let key = prefix.into();
        let req = DeleteRangeRequest {
            range_end: prefix_end(&key),
            key,
            ..Default::default()
        };
        self.0.delete_range(req).await
    }

    /// Watches every key that starts with `prefix`, from `start_revision`.
    pub async fn watch_prefix(
        &mut self,
        prefix: impl Into<Vec<u8>>,
        start_revision: i64,
    ) -> Result<Watch, Error> {
        let key = prefix.into();
        let req = WatchCreateRequest {
            range_end: prefix_end(&key),
            key,
            start_revision,
            ..Default::default()
        };
        self.0.watch(req).await
    }

    pub async fn lease_time_to_live(&mut self, id: i64) -> Result<LeaseTimeToLiveResponse, Error> {
        self.0.lease_time_to_live(id, false).await
    }

    pub async fn lease_revoke(&mut self, id: i64) -> Result<LeaseRevokeResponse, Error> {
        self.0.lease_revoke(id).await
    }
}

/// Runs VM scenario `name` (tests/vm/scenarios/NAME.sh) with this host's
/// etcd binary in the guest as /data/etcd and `clusterf` (the test's
/// `CARGO_BIN_EXE_clusterf`); asserts that it exits 0. Without qemu or
/// etcd: a failure when CI is set, a loud SKIP otherwise.
pub fn vm_scenario_with_etcd(name: &str, clusterf: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let etcd = etcd_binary().filter(|b| b.is_file());
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = match (&etcd, qemu) {
        (None, _) => Some("no etcd binary"),
        (_, false) => Some("no qemu-system-x86_64"),
        _ => None,
    };
    if let Some(why) = why {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "the {name} VM scenario needs qemu and etcd and CI is set: {why}"
        );
        eprintln!("\n!!!!!!!! SKIP: {name} VM scenario: {why} !!!!!!!!\n");
        return;
    }
    let out = Command::new(root.join("tests/vm/run.sh"))
        .arg(name)
        .arg(format!("{}:etcd", etcd.unwrap().display()))
        .env("CLUSTERF_BIN", clusterf)
        .output()
        .expect("run tests/vm/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- {name}: stdout\n{stdout}--- {name}: stderr\n{stderr}");
    assert!(
        out.status.success(),
        "{name} scenario failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
}
