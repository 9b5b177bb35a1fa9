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
//! Run: `cargo bench --bench state` (10k services; `-- N...` for other
//! sizes). Prints, per shape: IPVS services, dests, the state's heap bytes
//! and bytes a dest, and `size_of` the dest map's slot. Under `cargo test
//! --all-targets` it runs as a smoke test at 100 services.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use clusterf::compile::Options;
use clusterf::model::Dest;
use clusterf::render::render;
use clusterf::tree::Tree;

/// The system allocator, counting the bytes live (asked for, not the
/// allocator's rounding).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only a counter is
// added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BACKENDS: u32 = 10;

fn ip4(n: u32) -> String {
    Ipv4Addr::from(n).to_string()
}

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
    let mut t = Tree::new("state-yaml");
    t.insert("clusterf.yaml", "scheduler: wlc\nmethod: masq\n");
    for i in 0..services {
        let mut doc = format!(
            "frontend:\n  ipv4: {}\n  ipv6: \"2001:db8::{:x}\"\n  tcp: 80\n  udp: 53\nbackends:\n",
            ip4(0x0a00_0000 + i),
            i + 1
        );
        for j in 0..4 {
            doc.push_str(&format!(
                "  b{j}: {{ipv4: {}, ipv6: \"2001:db8:1::{:x}:{:x}\", tcp: 8080, udp: 5353, weight: {}}}\n",
                ip4(0x6400_0000 + i * 16 + j),
                (i * 16 + j + 1) >> 16,
                (i * 16 + j + 1) & 0xffff,
                j + 1
            ));
        }
        t.insert(format!("services/svc-{i}.yaml"), doc);
    }
    for r in 0..100u32 {
        t.insert(
            format!("routes/r{r}.yaml"),
            format!(
                "prefix: {}/16\nmethod: {}\n",
                ip4(0x6400_0000 + (r << 16)),
                ["masq", "droute", "tunnel"][r as usize % 3]
            ),
        );
    }
    let mut o = Tree::new("state-yaml-overlay");
    for i in 0..services {
        for j in 0..BACKENDS - 4 {
            o.insert(
                format!("services/svc-{i}/backends/docker-{j}"),
                format!(
                    r#"{{"ipv4": "{}", "tcp": 8080, "udp": 5353}}"#,
                    ip4(0xac10_0000 + i * 16 + j)
                ),
            );
        }
    }
    (t, o)
}

fn measure(name: &str, services: u32, (config, overlay): (Tree, Tree)) {
    let mut r = render(&config, Some(&overlay), &Options::default());
    assert!(r.is_ok(), "{name}: {:?}", r.diags.errors().next());
    let state = std::mem::take(&mut r.state);
    drop(r);
    let (svcs, dests) = (state.services.len(), state.dest_count());
    let before = LIVE.load(Ordering::Relaxed);
    drop(state);
    let bytes = before - LIVE.load(Ordering::Relaxed);
    println!(
        "state {name:<4} {services:>6} services -> {svcs} ipvs services, {dests} dests: {:.1} MB, {:.1} bytes a dest (slot {} bytes)",
        bytes as f64 / 1e6,
        bytes as f64 / dests as f64,
        std::mem::size_of::<(SocketAddr, Dest)>()
    );
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
    }
}
