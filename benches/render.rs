//! Rendering large config trees: `clusterf::render::render` (parse,
//! validate, overlay, compile) for synthetic repos of 1k and 10k services,
//! each a dual-stack TCP+UDP frontend with 4 static backends, plus 100
//! routes, and an overlay adding 6 backends per service; once with the YAML
//! layout and once with the original JSON tree.
//!
//! Run: `cargo bench --bench render` (optionally `-- SERVICES...` to choose
//! the sizes, `yaml` or `json` to choose one layout, `--runs N` to choose
//! the number of runs, e.g. `--runs 1` under callgrind). Prints one line per
//! case: min / median / max over the runs, and the IPVS services and dests
//! rendered.

use std::time::{Duration, Instant};

use clusterf::compile::Options;

// As in the binary (src/main.rs), so that the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clusterf::render::render;
use clusterf::tree::Tree;

#[path = "support/repos.rs"]
mod repos;
use repos::{json_repo, overlay, yaml_repo};

fn measure(name: &str, services: u32, runs: Option<usize>, config: &Tree, overlay: &Tree) {
    let opts = Options::default();
    let runs = runs.unwrap_or(if services >= 10_000 { 5 } else { 20 });
    let mut times = Vec::new();
    let mut shape = (0, 0);
    for _ in 0..runs {
        let start = Instant::now();
        let r = render(config, Some(overlay), &opts);
        times.push(start.elapsed());
        assert!(r.is_ok(), "{name}: {:?}", r.diags.errors().next());
        shape = (r.state.services.len(), r.state.dest_count());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "render {name:<5} {services:>6} services ({} files): min {:8.1} ms  median {:8.1} ms  max {:8.1} ms  -> {} ipvs services, {} dests",
        config.files.len() + overlay.files.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        shape.0,
        shape.1
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: Option<usize> = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    let sizes: Vec<u32> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args[i - 1] != "--runs")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let yaml = !args.iter().any(|a| a == "json") || args.iter().any(|a| a == "yaml");
    let json = !args.iter().any(|a| a == "yaml") || args.iter().any(|a| a == "json");
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a
    // quick smoke test with a small size and few runs instead.
    let full = args.iter().any(|a| a == "--bench");
    let (sizes, runs) = match (sizes.is_empty(), full) {
        (false, _) => (sizes, runs),
        (true, true) => (vec![1_000, 10_000], runs),
        (true, false) => (vec![100], runs.or(Some(2))),
    };
    for n in sizes {
        let o = overlay(n);
        if yaml {
            measure("yaml", n, runs, &yaml_repo(n), &o);
        }
        if json {
            measure("json", n, runs, &json_repo(n), &o);
        }
    }
}
