//! Kernel IPVS tests: each scenario in `tests/vm/scenarios/` runs in its own
//! qemu guest (a Debian cloud kernel with ip_vs, busybox, ipvsadm, iproute2
//! and this build's `clusterf`), booted by `tests/vm/run.sh`; the guest is
//! built and cached by `tests/vm/build.sh` under `target/vm-cache`.
//!
//! A scenario passes when its script exits 0; its checks print `ok:` and
//! `FAIL:` lines, shown when it fails.
//!
//! This file must not touch the host kernel's IPVS, and must not skip
//! silently: without qemu or the kernel package the tests FAIL when the
//! environment variable `CI` is set, and print a loud SKIP otherwise.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

#[path = "support/vm.rs"]
mod vm;

use vm::{guest, in_ci, root};

/// Whether the VM can run; panics in CI when it cannot.
fn vm_available(test: &str) -> bool {
    match guest() {
        Ok(()) => true,
        Err(why) if in_ci() => panic!("kernel test {test} needs the VM and CI is set: {why}"),
        Err(why) => {
            // Straight to the process's stderr: eprintln! output of a passing
            // test is captured and never shown.
            let _ = writeln!(
                std::io::stderr(),
                "\n**********************************************************************\n\
                 SKIP kernel test {test}: no VM: {why}\n\
                 (install qemu-system-x86 and allow apt-get download; with CI set this fails)\n\
                 **********************************************************************\n"
            );
            false
        }
    }
}

/// Boots the guest with scenario `name` and the files `(source, dest)`
/// (source relative to the repository); asserts that it exits 0.
fn scenario(name: &str, files: &[(&str, &str)]) {
    if !vm_available(name) {
        return;
    }
    let mut cmd = Command::new(root().join("tests/vm/run.sh"));
    cmd.arg(name);
    for (src, dest) in files {
        let src = root().join(src);
        assert!(
            Path::new(&src).exists(),
            "missing test input {}",
            src.display()
        );
        cmd.arg(format!("{}:{dest}", src.display()));
    }
    let out = cmd
        .env("CLUSTERF_BIN", env!("CARGO_BIN_EXE_clusterf"))
        .output()
        .expect("run tests/vm/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kernel scenario {name} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    // Shown with --nocapture.
    println!("--- {name}: stdout\n{stdout}--- {name}: stderr\n{stderr}");
}

const EXAMPLES: &[(&str, &str)] = &[
    ("examples/config-repo", "config-repo"),
    ("examples/overlay", "overlay"),
];

/// A keepalived.conf loaded into Debian's keepalived makes the table that
/// `clusterf import --from keepalived` and `apply` make from the same file
/// (thresholds included); tests/vm/build.sh unpacks keepalived beside the
/// guest, and it comes in as a data directory.
#[test]
fn a_keepalived_conf_imported_applies_the_table_keepalived_makes() {
    if !vm_available("import-keepalived") {
        return;
    }
    let cache = std::env::var("CLUSTERF_VM_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root().join("target/vm-cache"));
    let keepalived = cache.join("keepalived");
    scenario(
        "import-keepalived",
        &[
            (
                keepalived.to_str().expect("a UTF-8 cache path"),
                "keepalived",
            ),
            ("tests/import/keepalived/vm.conf", "vm.conf"),
            ("tests/import/keepalived/vm.ipvsadm", "vm.ipvsadm"),
        ],
    );
}

/// The guest itself: ip_vs loads, ipvsadm round-trips a table.
#[test]
fn ipvsadm_smoke() {
    scenario("ipvsadm-smoke", &[]);
}

/// examples/config-repo + overlay applied: kernel equals render; idempotent.
#[test]
fn apply_config_repo() {
    scenario("apply-config-repo", EXAMPLES);
}

/// The seed README walk-through, step by step, kernel checked each time.
#[test]
fn walkthrough() {
    scenario(
        "walkthrough",
        &[("tests/golden/readme-walkthrough-json", "wt")],
    );
}

/// No service with desired dests is ever left without dests during apply.
#[test]
fn make_before_break() {
    scenario("make-before-break", &[]);
}

/// Hand-made services outside --own survive every apply.
#[test]
fn ownership() {
    scenario("ownership", EXAMPLES);
}

/// Real TCP through an IPVS NAT service; weights shape the split.
#[test]
fn traffic() {
    scenario("traffic", &[]);
}

/// Health checks with real traffic: a backend whose httpd stops goes to
/// weight 0 and the client's requests all land on the other; it comes
/// back; with every backend down, fail-open keeps both.
#[test]
fn health_checks_drain_a_dead_backend_under_real_traffic() {
    scenario("health", &[]);
}

/// A service's fallback dest with real traffic: at weight 0 while the
/// backend serves, serving when the backend is at weight 0 in the config,
/// gone, or down for health (no fail-open), and back to 0 when it returns;
/// the kernel equals the render and weight moves make-before-break.
#[test]
fn the_fallback_serves_only_when_no_backend_can() {
    scenario("fallback", &[]);
}

/// The kernel's traffic counters in /metrics, per service and per dest,
/// equal to `ipvsadm --stats` after real requests; a deleted service's
/// series go.
#[test]
fn traffic_metrics_are_the_kernels_counters() {
    scenario("traffic-metrics", &[]);
}

/// Every IPVS option of issue 19's first rows, in both layouts: the kernel
/// equals the render after apply, a re-plan is empty, also after every
/// option changes.
#[test]
fn ipvs_options_reach_the_kernel_exactly() {
    scenario(
        "ipvs-options",
        &[
            ("tests/golden/ipvs-options-yaml/config", "yaml"),
            ("tests/golden/ipvs-options-json/config", "json"),
            ("tests/golden/ipvs-options-json/overlay", "overlay"),
            ("tests/golden/fwmark-ports-yaml/config", "fwmark-ports"),
        ],
    );
}

/// GUE (with its port and each checksum option) and GRE tunnel dests, in
/// both layouts: the kernel equals the render after apply, a re-plan is
/// empty, a changed port, checksum or type is an edit of the dest.
#[test]
fn tunnel_dests_reach_the_kernel_exactly() {
    scenario(
        "tunnels",
        &[
            ("tests/golden/tunnels-yaml/config", "yaml"),
            ("tests/golden/tunnels-json/config", "json"),
            ("tests/golden/tunnels-json/overlay", "overlay"),
        ],
    );
}

/// A plan failing midway: report, kernel state, recovery.
#[test]
fn fault() {
    scenario("fault", &[]);
}

/// One dest the kernel refuses among 1,000 services: the other 999 are
/// applied, the failed one keeps its old dests, the next plan holds only
/// what it still needs.
#[test]
fn one_refused_dest_fails_only_its_own_service() {
    scenario("isolation", &[]);
}

/// VIPs on the frontend (`--vip-interface`): the dummy link created and
/// marked, a VIP per owned service (IPv4 and IPv6), real TCP to it, a VIP
/// removed before its service and added after it, no flap on restart,
/// `--withdraw-on-exit`, an interface not ours refused, everything else
/// untouched.
#[test]
fn vips_follow_the_owned_services_on_their_own_interface() {
    scenario("vips", &[]);
}

/// BGP through BIRD (issue 20, item 2): two frontends run clusterf with
/// `--vip-interface` and BIRD with `examples/bird/bird.conf`; a router
/// namespace's BIRD learns the VIPs (and nothing else) with both frontends
/// as ECMP next hops, real TCP through it reaches the backend via both, and
/// a service leaving, a frontend failing static, stopping with
/// `--withdraw-on-exit` or freezing withdraws its routes within seconds,
/// and a plain restart changes no route.
#[test]
fn bird_announces_the_vips_to_a_router_and_withdraws_them() {
    scenario("bgp-bird", &[("examples/bird", "bird")]);
}

/// DNAT of VIP:port to a Docker host's containers (issue 20, item 4's
/// `--docker`) through nf_tables over netlink (`clusterf nft-dnat`): real
/// HTTP over IPv4 and IPv6 reaches the containers in about their weights'
/// shares, ahead of a Docker-style `ip nat` rule for the same port; a
/// batch the kernel refuses changes nothing; the table is replaced whole
/// on a change (1,204 rules in one batch too), removed when no rule is
/// wanted, a table of its name without its mark is refused, and the other
/// tables stay byte-identical throughout.
#[test]
fn dnat_sends_vip_traffic_to_the_containers_and_touches_no_other_table() {
    scenario("dnat", &[]);
}

/// ARP mode (issue 20, item 3): `--vip-mode arp --vip-interface eth0` adds
/// the VIPs to an existing interface, marked per address; a peer's stale
/// neighbour entries move to the frontend's MAC unasked (gratuitous ARP,
/// unsolicited neighbour advertisement; `ip addr add` alone does not);
/// real TCP from the peer reaches the backend; addresses clusterf did not
/// add, one equal to a configured VIP among them, survive a VIP leaving,
/// both withdrawals and exit; `--arp-refresh`; nothing else changes.
#[test]
fn arp_mode_announces_its_vips_and_touches_no_address_it_did_not_add() {
    scenario("vip-arp", &[]);
}

/// The whole data path (issue 20): a client, a router and two frontends
/// with BIRD, two realservers running `clusterf realserver --watch`: real
/// HTTP to a droute VIP and a tunnel (IPIP) VIP is answered straight from
/// the realserver to the router, never through a frontend; stopping a
/// frontend moves traffic to the other; `--cleanup` leaves the
/// realservers' addresses, routes and sysctls as they were.
#[test]
fn http_reaches_droute_and_tunnel_realservers_and_replies_skip_the_frontends() {
    scenario("datapath", &[("examples/bird", "bird")]);
}
