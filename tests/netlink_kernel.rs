//! The netlink client against real kernel IPVS, in the qemu guest of
//! `tests/vm/` (scenario `tests/vm/scenarios/netlink-client.sh`): every
//! service and dest attribute is written by `clusterf apply` and read back by
//! `clusterf show`, `show` matches `ipvsadm -L -n` with a live connection
//! counted, a used saved plan is refused, tunnel dests read back as ipvsadm
//! prints them (`--tun-type`; gue and gre made by hand, which `plan` warns
//! about), a config with tunnel dests applies so that `ipvsadm -S -n` equals
//! `clusterf render --output ipvsadm`, a 400-dest service (a dump of several
//! datagrams) reads back whole, and a kernel without ip_vs gives the
//! one-line hint.
//!
//! Never touches the host kernel. Without qemu or the guest this FAILS when
//! `CI` is set and prints a loud SKIP otherwise.

use std::process::Command;

#[path = "support/vm.rs"]
mod vm;

use vm::{guest, in_ci, root};

#[test]
fn netlink_client_in_the_kernel() {
    if let Err(why) = guest() {
        if in_ci() {
            panic!("kernel test netlink_client_in_the_kernel needs the VM and CI is set: {why}");
        }
        eprintln!(
            "\n**********************************************************************\n\
             SKIP kernel test netlink_client_in_the_kernel: no VM: {why}\n\
             (install qemu-system-x86 and allow apt-get download; with CI set this fails)\n\
             **********************************************************************\n"
        );
        return;
    }
    let fixtures = root().join("tests/fixtures/netlink/vm");
    let out = Command::new(root().join("tests/vm/run.sh"))
        .arg(root().join("tests/vm/scenarios/netlink-client.sh"))
        .arg(fixtures.join("all-features.plan.json"))
        .arg(fixtures.join("all-features.rules"))
        .arg(fixtures.join("tunnel-config"))
        .env("CLUSTERF_BIN", env!("CARGO_BIN_EXE_clusterf"))
        .output()
        .expect("run tests/vm/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kernel scenario netlink-client failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    println!("--- stdout\n{stdout}--- stderr\n{stderr}");
}
