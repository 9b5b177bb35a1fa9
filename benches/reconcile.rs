//! The in-memory cost of one watch-loop pass when one backend changes: the
//! config tree (N services, original JSON layout) and the overlay tree (10
//! backends per service, etcd layout) are rendered, drains applied, and the
//! plan computed against the live table of the previous pass. This is what
//! `clusterf apply --watch` does after an etcd event, minus the kernel
//! read/apply (measured in the VM) and the etcd watch itself.
//!
//! Two renderers: the full `render::render` (every pass re-renders the whole
//! trees, for comparison) and the daemon's incremental `render::memo::Memo`
//! (finds the changed service from the etcd watch's hint, checked against
//! the trees' fingerprints, re-renders it, splices it in). With the memo,
//! the parts left in proportion to the table are timed on their own: the
//! render without a hint (every entry fingerprinted), drain and plan.
//!
//! Also: the drain step alone when nothing leaves (idle and busy counters)
//! and when one dest starts draining (the walk it replaced, over every live
//! dest, measured 10 ms at 10k x 10: docs/benchmarks.md); what a pass costs to get the kernel's table from the daemon's
//! copy (one op applied) against the in-memory kernel's read (a clone);
//! feeding a burst of 1,000 etcd events through the schedule; the pass's
//! health step (`health::Effective`) with every service checked: built
//! once, then a pass where the render changed one service, one where one
//! dest went down.
//!
//! Run: `cargo bench --bench reconcile` (optionally `-- SERVICES...`).
//! Prints min / median / max over the runs for each stage.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use clusterf::compile::Options;
use clusterf::model::{DestAttrs, DestStats, IpvsState, LiveStats, LiveTable, Op, ServiceKey};
use clusterf::plan::{self, Guards, Ownership};
use clusterf::reconcile::drain::{self, Drains};
use clusterf::reconcile::live::LiveCopy;
use clusterf::reconcile::{Event, Schedule, Settings};
use clusterf::render;
use clusterf::render::memo::{Memo, Work};
use clusterf::tree::{Files, Tree};

// As in the binary (src/main.rs), so that the numbers are the daemon's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BACKENDS: u32 = 10;
const RUNS: usize = 15;

fn frontend_ip(i: u32) -> String {
    format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256)
}

fn backend_ip(i: u32, j: u32) -> String {
    let n = i * BACKENDS + j;
    format!("10.{}.{}.{}", n / 65536, (n / 256) % 256, n % 256)
}

fn config(services: u32) -> Tree {
    let mut t = Tree::new("bench config");
    for i in 0..services {
        t.insert(
            format!("services/s{i}/frontend"),
            format!(r#"{{"ipv4": "{}", "tcp": 80}}"#, frontend_ip(i)),
        );
    }
    t
}

fn overlay(services: u32, weight_of_first: u32) -> Tree {
    let mut t = Tree::new("bench overlay");
    // Compressed, as the etcd watch holds it (BENCH_PLAIN_OVERLAY=1: plain,
    // to compare in one build).
    if std::env::var_os("BENCH_PLAIN_OVERLAY").is_none() {
        t.files = Files::compressed();
    }
    for i in 0..services {
        for j in 0..BACKENDS {
            let w = if i == 0 && j == 0 {
                weight_of_first
            } else {
                10
            };
            t.insert(
                format!("services/s{i}/backends/b{j}"),
                format!(
                    r#"{{"ipv4": "{}", "tcp": 8080, "weight": {w}}}"#,
                    backend_ip(i, j)
                ),
            );
        }
    }
    t
}

fn live_of(desired: &IpvsState) -> IpvsState {
    let mut live = desired.clone();
    for svc in live.services.values_mut() {
        svc.names.clear();
        for d in svc.dests.values_mut() {
            d.provenance = Box::default();
        }
    }
    live
}

fn stats(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<44} min {:>9.3} ms  median {:>9.3} ms  max {:>9.3} ms",
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1])
    );
}

fn bench(services: u32) {
    let opts = Options::default();
    let cfg = config(services);
    let before = overlay(services, 10);
    let after = overlay(services, 20);
    let prev = render::render(&cfg, Some(&before), &opts);
    assert!(prev.is_ok(), "bench config renders");
    let live = live_of(&prev.state);
    let ownership = Ownership::all();
    let guards = Guards::default();

    let (mut t_render, mut t_drain, mut t_plan, mut t_total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut changes = 0;
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let rendered = render::render(&cfg, Some(&after), &opts);
        let t1 = Instant::now();
        let out = drain::apply(
            &rendered.state,
            &live,
            &LiveStats::new(),
            &Drains::default(),
            0,
            Duration::from_secs(60),
            &|k| ownership.owns(k),
        );
        let t2 = Instant::now();
        let p = plan::plan(&out.desired, &live, &ownership, &guards).expect("plan");
        let t3 = Instant::now();
        changes = p.changes.len();
        t_render.push(t1 - t0);
        t_drain.push(t2 - t1);
        t_plan.push(t3 - t2);
        t_total.push(t3 - t0);
    }
    // A pass over unchanged inputs (resync, drain recheck, SIGHUP): the
    // daemon compares the trees with the last render's and reuses it.
    let (cfg2, after2) = (cfg.clone(), after.clone());
    let cached = render::render(&cfg, Some(&after), &opts);
    let mut t_cached = Vec::new();
    for _ in 0..RUNS {
        let t0 = Instant::now();
        assert!(cfg2 == cfg && after2 == after);
        let out = drain::apply(
            &cached.state,
            &live,
            &LiveStats::new(),
            &Drains::default(),
            0,
            Duration::from_secs(60),
            &|k| ownership.owns(k),
        );
        let p = plan::plan(&out.desired, &live, &ownership, &guards).expect("plan");
        std::hint::black_box(p);
        t_cached.push(t0.elapsed());
    }
    let n = services * BACKENDS;
    println!(
        "{services} services x {BACKENDS} backends ({n} overlay keys), 1 backend reweighted: {changes} change(s)"
    );
    println!(" full render every pass:");
    stats("  render (parse + validate + compile)", t_render);
    stats("  drain", t_drain);
    stats("  plan", t_plan);
    stats("  pass total (render + drain + plan)", t_total);
    stats("  unchanged inputs (tree compare + drain + plan)", t_cached);
    bench_memo(&cfg, &before, &after, &opts);
}

/// The daemon's pass with the incremental renderer: each run flips the
/// first backend's weight (one etcd event), so every run renders a change.
fn bench_memo(cfg: &Tree, before: &Tree, after: &Tree, opts: &Options) {
    let ownership = Ownership::all();
    let guards = Guards::default();
    let full_before = render::render(cfg, Some(before), opts);
    let full_after = render::render(cfg, Some(after), opts);
    // The kernel holds the other tree's state: one change to apply.
    let live_before = live_of(&full_before.state);
    let live_after = live_of(&full_after.state);

    let mut memo = Memo::new(opts.clone());
    memo.render(cfg, Some(before));
    // What the etcd watch hands the pass: the key that changed.
    let hint = BTreeSet::from(["services/s0/backends/b0".to_string()]);
    let (mut t_render, mut t_drain, mut t_plan, mut t_total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // The daemon's copy of the table keeps these current as ops apply.
    let counts_before = plan::LiveCounts::of(&live_before, &ownership);
    let counts_after = plan::LiveCounts::of(&live_after, &ownership);
    for run in 0..RUNS {
        let (tree, live, counts) = if run % 2 == 0 {
            (after, &live_before, &counts_before)
        } else {
            (before, &live_after, &counts_after)
        };
        let t0 = Instant::now();
        memo.render_hinted(cfg, Some(tree), Some(&hint));
        let rendered = memo.rendered().expect("rendered");
        let t1 = Instant::now();
        let out = drain::apply(
            &rendered.state,
            live,
            &LiveStats::new(),
            &Drains::default(),
            0,
            Duration::from_secs(60),
            &|k| ownership.owns(k),
        );
        let t2 = Instant::now();
        // As the daemon plans against its copy of the table: only the
        // services the render touched.
        let scope = memo.touched().expect("one service touched");
        let p = plan::plan_within(&out.desired, live, scope, &ownership, &guards, counts)
            .expect("plan");
        let t3 = Instant::now();
        assert_eq!(p.changes.len(), 1, "one change");
        assert_eq!(memo.work(), Work::Services(1), "one service re-rendered");
        t_render.push(t1 - t0);
        t_drain.push(t2 - t1);
        t_plan.push(t3 - t2);
        t_total.push(t3 - t0);
    }
    // The memo's render is the full render's.
    let last = memo.render(cfg, Some(before));
    assert!(
        last.state == full_before.state
            && last.health == full_before.health
            && last.diags == full_before.diags
            && last.config_hash == full_before.config_hash
            && last.overlay_hash == full_before.overlay_hash,
        "memo render equals the full render"
    );

    // What is left in proportion to the table, alone.
    let (mut t_diff, mut t_hash, mut t_clone) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t0 = Instant::now();
        memo.render(cfg, Some(before));
        t_diff.push(t0.elapsed());
        assert_eq!(memo.work(), Work::Unchanged);
        let t0 = Instant::now();
        std::hint::black_box(before.content_hash());
        t_hash.push(t0.elapsed());
        let t0 = Instant::now();
        let copy = std::hint::black_box(before.clone());
        t_clone.push(t0.elapsed());
        drop(copy);
    }
    // The first pass (and the one after a full render): every part parsed
    // and compiled on its own. A route change: every service parsed and
    // compiled again from the trees.
    let (mut t_split, mut t_global) = (Vec::new(), Vec::new());
    let mut routed = cfg.clone();
    routed.insert("routes/default", r#"{"IPVSMethod": "masq"}"#);
    for run in 0..RUNS / 3 {
        let t0 = Instant::now();
        let mut fresh = Memo::new(opts.clone());
        fresh.render(cfg, Some(before));
        t_split.push(t0.elapsed());
        assert_eq!(fresh.work(), Work::Split);
        let t0 = Instant::now();
        memo.render(if run % 2 == 0 { &routed } else { cfg }, Some(before));
        t_global.push(t0.elapsed());
        assert_eq!(memo.work(), Work::Global);
    }
    // The same change without a hint (a Git or directory overlay, or a
    // hint lost): every entry is fingerprinted to find the changed part.
    let mut t_nohint = Vec::new();
    memo.render(cfg, Some(before));
    for run in 0..RUNS {
        let tree = if run % 2 == 0 { after } else { before };
        let t0 = Instant::now();
        memo.render(cfg, Some(tree));
        t_nohint.push(t0.elapsed());
        assert_eq!(memo.work(), Work::Services(1), "one service re-rendered");
    }
    let bytes: usize = before
        .files
        .iter()
        .map(|f| f.path().len() + f.data().len())
        .sum();
    println!(" incremental render (render::memo), 1 backend changed per run:");
    stats("  memo render (hint checked + 1 service)", t_render);
    stats("  drain", t_drain);
    stats("  plan (within the touched services)", t_plan);
    stats("  pass total (memo render + drain + plan)", t_total);
    stats("  memo render without a hint", t_nohint);
    stats("  unchanged inputs (fingerprints compared)", t_diff);
    stats("  overlay content hash (of the fingerprint)", t_hash);
    stats("  not in the pass: overlay tree clone", t_clone);
    println!(
        "  (overlay tree: {} keys, {:.1} MB of paths and values)",
        before.files.len(),
        bytes as f64 / 1e6
    );
    stats("  first pass (split into parts)", t_split);
    stats(
        "  route change (every service parsed and compiled again)",
        t_global,
    );
}

// --- drain ----------------------------------------------------------------

fn bench_drain(services: u32) {
    let opts = Options::default();
    let desired = render::render(&config(services), Some(&overlay(services, 10)), &opts).state;
    let live = live_of(&desired);
    let mut busy = LiveStats::new();
    for (k, s) in &live.services {
        for a in s.dests.keys() {
            busy.entry(*k).or_default().insert(
                *a,
                DestStats {
                    active_conns: 1,
                    ..DestStats::default()
                },
            );
        }
    }
    let idle = LiveStats::new();
    let ownership = Ownership::all();
    let owns = |k: &ServiceKey| ownership.owns(k);
    let timeout = Duration::from_secs(60);
    let none = Drains::default();
    let time = |f: &dyn Fn() -> usize| {
        let mut t = Vec::new();
        for _ in 0..RUNS {
            let t0 = Instant::now();
            std::hint::black_box(f());
            t.push(t0.elapsed());
        }
        t
    };
    let n = |o: drain::Outcome<'_>| o.desired.services.len() + o.drains.len();
    println!("drain at {services} services x {BACKENDS} backends, nothing leaves (timeout 60 s):");
    stats(
        "  drain::apply, no counters",
        time(&|| {
            n(drain::apply(
                &desired, &live, &idle, &none, 0, timeout, &owns,
            ))
        }),
    );
    stats(
        "  drain::apply, 1 connection on every dest",
        time(&|| {
            n(drain::apply(
                &desired, &live, &busy, &none, 0, timeout, &owns,
            ))
        }),
    );
    // One dest leaves with a connection: it drains, and the desired state
    // is copied to hold it at weight 0.
    let mut less = desired.clone();
    let first = less.services.values_mut().next().expect("services");
    let gone = *first.dests.keys().next().expect("dests");
    first.dests.remove(&gone);
    stats(
        "  drain::apply, 1 dest starts draining",
        time(&|| n(drain::apply(&less, &live, &busy, &none, 0, timeout, &owns))),
    );

    // The daemon's copy of the kernel table: what a pass costs to get the
    // table without a read (one op applied to the copy) against what the
    // in-memory kernel's read costs (a clone of the table with counters;
    // the real kernel's netlink dump is measured in the VM).
    let table = LiveCopy::of(
        LiveTable {
            state: live.clone(),
            stats: busy.clone(),
        },
        Duration::ZERO,
    );
    stats(
        "  in-memory kernel read (clone of the table)",
        time(&|| {
            let t = LiveTable {
                state: live.clone(),
                stats: busy.clone(),
            };
            t.state.services.len()
        }),
    );
    let (key, svc) = live.services.iter().next().expect("services");
    let (addr, dest) = svc.dests.iter().next().expect("dests");
    let mut copy = table.clone();
    let mut t_op = Vec::new();
    for run in 0..RUNS {
        let weight = dest.attrs.weight + 1 + run as u32;
        let op = Op::EditDest {
            service: *key,
            dest: *addr,
            attrs: DestAttrs {
                weight,
                ..dest.attrs
            },
        };
        let t0 = Instant::now();
        copy.apply(std::slice::from_ref(&op)).expect("applies");
        t_op.push(t0.elapsed());
    }
    stats("  cached table: 1 op applied to the copy", t_op);
}

fn bench_schedule() {
    let mut samples = Vec::new();
    let mut passes = 0;
    for _ in 0..RUNS {
        let mut s = Schedule::new(Settings::default(), Duration::ZERO);
        s.step(Duration::ZERO, []);
        s.step(
            Duration::from_millis(1),
            [Event::PassOk { recheck_at: None }],
        );
        let t0 = Instant::now();
        let mut started = 0;
        for i in 0..1000u64 {
            let now = Duration::from_millis(2) + Duration::from_micros(i * 10);
            for a in s.step(now, [Event::EtcdChanged]) {
                if matches!(a, clusterf::reconcile::Action::StartPass { .. }) {
                    started += 1;
                }
            }
        }
        for a in s.step(Duration::from_millis(40), [Event::Tick]) {
            if matches!(a, clusterf::reconcile::Action::StartPass { .. }) {
                started += 1;
            }
        }
        samples.push(t0.elapsed());
        passes = started;
    }
    println!("schedule: 1000 etcd events within 10 ms -> {passes} pass(es)");
    stats("  feeding 1000 events", samples);
}

/// The pass's health step over `services` x 10 dests, all checked over TCP.
fn bench_health_view(services: u32) {
    use clusterf::health::{
        CheckSpec, Effective, HealthConfig, HealthTable, OnFailure, Outcome, Probe, ServiceHealth,
        Update,
    };
    let cfg = config(services);
    let rendered = render::render(&cfg, Some(&overlay(services, 10)), &Options::default());
    let mut desired = rendered.state;
    let health = ServiceHealth {
        check: CheckSpec::new(Probe::Tcp),
        on_failure: OnFailure::Drain,
        exempt: BTreeSet::new(),
    };
    let config = HealthConfig {
        services: desired
            .services
            .keys()
            .map(|k| (*k, health.clone()))
            .collect(),
        panic_below_percent: 0,
    };
    let first = *desired.services.keys().next().unwrap();
    let dest = *desired.services[&first].dests.keys().next().unwrap();
    let mut down = HealthTable::default();
    let target = health.target(&dest).unwrap();
    for t in 0..3 {
        down.record(
            &target,
            Outcome {
                ok: false,
                detail: "refused".into(),
                at_ms: t,
            },
        );
    }
    let up = HealthTable::default();
    let (mut t_build, mut t_render, mut t_health) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let mut view = Effective::default();
        let update = |table, touched| Update {
            desired: &desired,
            config: &config,
            touched,
            table,
            panic_below_percent: 0,
        };
        let t0 = Instant::now();
        view.update(&update(&up, None));
        t_build.push(t0.elapsed());
        let one: BTreeSet<ServiceKey> = [first].into();
        let none = BTreeSet::new();
        let t0 = Instant::now();
        let changed = view.update(&update(&up, Some(&one)));
        t_render.push(t0.elapsed());
        assert_eq!(changed.map(|c| c.len()), Some(1));
        let t0 = Instant::now();
        let changed = view.update(&update(&down, Some(&none)));
        t_health.push(t0.elapsed());
        assert_eq!(changed.map(|c| c.len()), Some(1));
        assert_eq!(view.state().services[&first].dests[&dest].attrs.weight, 0);
        // Another weight for the next run's render change.
        let w = &mut desired
            .services
            .get_mut(&first)
            .unwrap()
            .dests
            .get_mut(&dest)
            .unwrap()
            .attrs
            .weight;
        *w = 10 + run as u32 % 2;
    }
    println!(" health step, {services} x {BACKENDS} dests all checked:");
    stats("  first pass (the view built)", t_build);
    stats("  render changed one service", t_render);
    stats("  one dest went down", t_health);
}

fn main() {
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a
    // quick smoke test with a small table instead.
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = match (sizes.is_empty(), full) {
        (false, _) => sizes,
        (true, true) => vec![1_000, 10_000],
        (true, false) => vec![100],
    };
    bench_schedule();
    for n in sizes {
        bench(n);
        bench_drain(n);
        bench_health_view(n);
    }
}
