//! The compiled desired state's heap size: the bytes a dest costs in the
//! `IpvsState` the daemon keeps between passes (`render::Compiled.state`),
//! measured with a counting global allocator (the heap live before the
//! state is dropped minus after), for two shapes of 10 backends a service:
//! - `etcd`: the latency bench's (and the VM daemon bench's): frontends in
//!   the JSON layout, 10 backends each in the overlay
//!   (`services/s1/backends/b4`): one IPVS service a frontend;
//! - `yaml`: the render bench's: dual-stack TCP+UDP frontends in YAML
//!   files with 4 backends each, 100 routes, 6 overlay backends a service:
//!   four IPVS services a frontend.
//!
//! Also the heap a daemon's render memo (`render::Memo`) holds after its
//! first render of the same trees, the state included, a config service.
//!
//! Run: `cargo bench --bench state` (10k services; `-- N...` for other
//! sizes). Prints, per shape: IPVS services, dests, the state's heap bytes
//! and bytes a dest, and `size_of` the dest map's slot. Under `cargo test
//! --all-targets` it runs as a smoke test at 100 services.

use std::net::SocketAddr;

use clusterf::compile::Options;
use clusterf::model::Dest;
use clusterf::render::memo::Memo;
use clusterf::render::render;
use clusterf::tree::Tree;

#[path = "support/counting.rs"]
mod counting;
#[path = "support/repos.rs"]
mod repos;
use repos::ip4;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const BACKENDS: u32 = 10;

/// The latency bench's config and overlay.
fn etcd_shape(services: u32) -> (Tree, Tree) {
    let mut config = Tree::new("state-etcd");
    let mut overlay = Tree::new("state-etcd-overlay");
    for i in 0..services {
        config.insert(
            format!("services/s{i}/frontend"),
            format!(r#"{{"ipv4": "{}", "tcp": 80}}"#, ip4(0x0a00_0000 + i)),
        );
        for j in 0..BACKENDS {
            overlay.insert(
                format!("services/s{i}/backends/b{j}"),
                format!(
                    r#"{{"ipv4": "{}", "tcp": 8080, "weight": 10}}"#,
                    ip4(0x6400_0000 + i * 16 + j)
                ),
            );
        }
    }
    (config, overlay)
}

/// The render bench's YAML repo and overlay.
fn yaml_shape(services: u32) -> (Tree, Tree) {
    (repos::yaml_repo(services), repos::overlay(services))
}

fn measure(name: &str, services: u32, (config, overlay): (Tree, Tree)) {
    let mut r = render(&config, Some(&overlay), &Options::default());
    assert!(r.is_ok(), "{name}: {:?}", r.diags.errors().next());
    let state = std::mem::take(&mut r.state);
    drop(r);
    let (svcs, dests) = (state.services.len(), state.dest_count());
    let before = counting::live().0;
    drop(state);
    let bytes = before - counting::live().0;
    println!(
        "state {name:<4} {services:>6} services -> {svcs} ipvs services, {dests} dests: {:.1} MB, {:.1} bytes a dest (slot {} bytes)",
        bytes as f64 / 1e6,
        bytes as f64 / dests as f64,
        std::mem::size_of::<(SocketAddr, Dest)>()
    );
}

/// The heap a memo holds after its first render, a config service.
fn measure_memo(name: &str, services: u32, (config, overlay): (Tree, Tree)) {
    let before = counting::live().0;
    let mut memo = Memo::new(Options::default());
    let ok = memo.render(&config, Some(&overlay)).is_ok();
    assert!(ok, "{name}: the memo's render failed");
    let bytes = counting::live().0 - before;
    println!(
        "memo  {name:<4} {services:>6} services: {:.1} MB held (the state included), {:.0} bytes a config service",
        bytes as f64 / 1e6,
        bytes as f64 / f64::from(services)
    );
    drop(memo);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes: Vec<u32> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        // `cargo test --all-targets` runs this as a smoke test.
        sizes.push(if args.iter().any(|a| a == "--bench") {
            10_000
        } else {
            100
        });
    }
    for n in sizes {
        measure("etcd", n, etcd_shape(n));
        measure("yaml", n, yaml_shape(n));
        measure_memo("etcd", n, etcd_shape(n));
        measure_memo("yaml", n, yaml_shape(n));
    }
}
