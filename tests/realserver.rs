//! `clusterf realserver` on this host, read-only (`--dry-run`): the same
//! sources as `apply --watch` (a config directory and a real etcd
//! overlay), the host's links, addresses and sysctls read for real, the
//! plan printed and nothing changed. What it changes is tested in the VM
//! (`tests/vm/scenarios/datapath.sh`, in `tests/kernel.rs`).
//!
//! Without the etcd binary the etcd test fails when `CI` is set and prints
//! a loud SKIP otherwise.

#[path = "support/etcd.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::Etcd;

fn clusterf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args(args)
        .output()
        .expect("run clusterf")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A config whose one service, web (198.51.100.10:80, droute), gets its
/// backends from the overlay only.
fn config(dir: &Path) {
    std::fs::create_dir_all(dir.join("services")).unwrap();
    std::fs::write(dir.join("clusterf.yaml"), "method: droute\n").unwrap();
    std::fs::write(
        dir.join("services/web.yaml"),
        "frontend: {ipv4: 198.51.100.10, tcp: 80}\nscheduler: rr\n",
    )
    .unwrap();
}

#[test]
fn a_dry_run_plans_the_vip_of_an_etcd_backend_on_this_host_and_changes_nothing() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = etcd.scratch().join("realserver");
    config(&dir.join("cfg"));
    etcd.etcdctl(&[
        "put",
        "/clusterf/services/web/backends/rs1",
        r#"{"ipv4": "10.0.0.11", "tcp": 80}"#,
    ]);
    let cfg = dir.join("cfg");
    let state = dir.join("state.json");
    let url = etcd.url();
    let run = |host: &str, output: &str| {
        clusterf(&[
            "realserver",
            "--config-path",
            cfg.to_str().unwrap(),
            "--etcd",
            &url,
            "--host-address",
            host,
            "--arp-interface",
            "lo",
            "--state-file",
            state.to_str().unwrap(),
            "--dry-run",
            "--output",
            output,
        ])
    };
    let out = run("10.0.0.11", "text");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"+ link clusterf-rs0 (dummy)"),
        "{stdout}"
    );
    assert_eq!(
        lines.last(),
        Some(&"+ vip 198.51.100.10/32 on clusterf-rs0"),
        "{stdout}"
    );
    assert!(!state.exists(), "--dry-run wrote the state file");

    let out = run("10.0.0.11", "json");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON plan");
    assert_eq!(doc["served"][0]["service"], "tcp://198.51.100.10:80");
    assert_eq!(doc["served"][0]["method"], "droute");
    let last = doc["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        serde_json::json!({"op": "add-vip", "link": "clusterf-rs0", "vip": "198.51.100.10"})
    );

    // Another host: the dest is not here, nothing to keep.
    let out = run("10.0.0.12", "text");
    assert_eq!(text(&out.stdout), "no changes\n", "{}", text(&out.stderr));
}

#[test]
fn an_interface_flag_that_is_not_an_interface_name_is_refused() {
    let out = clusterf(&[
        "realserver",
        "--cleanup",
        "--dry-run",
        "--arp-interface",
        "../../kernel",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid interface name"),
        "{}",
        text(&out.stderr)
    );
}
