//! Planning large tables: `clusterf::plan::plan` for 10k and 100k services
//! with 10 dests each, from an empty live table (everything added) and with
//! 1% of the services changed (a dest reweighted, a dest replaced, the
//! scheduler changed, in turn), with provenance on every desired dest as the
//! compiler makes it.
//!
//! Run: `cargo bench --bench plan` (optionally `-- SERVICES...` to choose
//! the sizes, and words to run only the cases whose names hold one, as
//! `-- 100000 empty`: one case alone under callgrind). Prints one line per case: the first run (from empty, per
//! size, it is the first to touch the plan's memory), min / median / max
//! over the runs, and the number of changes planned. The drop line times
//! only the dropping of a plan from empty. The floor line fills
//! a vector with as many changes: what holding the plan costs at least. Targets: 10k x 10 under 10 ms,
//! 100k x 10 under 100 ms.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use clusterf::model::{
    Dest, DestAttrs, IpvsState, Method, Protocol, Provenance, Service, ServiceAttrs, ServiceKey,
};
use clusterf::plan::{self, Guards, Ownership};

// As in the binary (src/main.rs), so that the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DESTS: u32 = 10;

fn vip(i: u32) -> ServiceKey {
    ServiceKey::addr(
        Protocol::Tcp,
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
        80,
    )
}

fn dest(i: u32, j: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x6400_0000 + i * 16 + j)), 8080)
}

fn desired(services: u32) -> IpvsState {
    let mut st = IpvsState::default();
    for i in 0..services {
        let mut svc = Service::new(ServiceAttrs::with_scheduler("wlc"));
        svc.names = vec![format!("svc-{i}")];
        for j in 0..DESTS {
            svc.dests.insert(
                dest(i, j),
                Dest {
                    attrs: DestAttrs::new(Method::Masq, 10),
                    provenance: Box::new([Provenance {
                        backend: format!("b{j}").into(),
                        source: format!("services/svc-{i}.yaml").into(),
                        weight: 10,
                        route: None,
                        fallback: false,
                    }]),
                },
            );
        }
        st.services.insert(vip(i), svc);
    }
    st
}

/// The live table: desired without provenance, with 1% of services changed.
fn live_changed(desired: &IpvsState) -> IpvsState {
    let mut live = IpvsState::default();
    for (n, (key, svc)) in desired.services.iter().enumerate() {
        let mut s = Service::new(svc.attrs.clone());
        for (addr, d) in &svc.dests {
            s.dests.insert(
                *addr,
                Dest {
                    attrs: d.attrs,
                    provenance: Box::default(),
                },
            );
        }
        if n % 100 == 0 {
            match (n / 100) % 3 {
                0 => {
                    let first = *s.dests.keys().next().unwrap();
                    s.dests.get_mut(&first).unwrap().attrs.weight = 20;
                }
                1 => {
                    let first = *s.dests.keys().next().unwrap();
                    let d = s.dests.remove(&first).unwrap();
                    s.dests
                        .insert(SocketAddr::new(first.ip(), first.port() + 1), d);
                }
                _ => s.attrs.scheduler = "rr".into(),
            }
        }
        live.services.insert(*key, s);
    }
    live
}

fn measure(name: &str, runs: usize, mut f: impl FnMut() -> usize) {
    measure_part(name, runs, || {
        let t = Instant::now();
        let changes = f();
        (changes, t.elapsed())
    });
}

/// As [`measure`], with `f` timing the part of each run that counts.
fn measure_part(name: &str, runs: usize, mut f: impl FnMut() -> (usize, Duration)) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--") && a.parse::<u32>().is_err())
        .collect();
    if !filters.is_empty() && !filters.iter().any(|w| name.contains(w.as_str())) {
        return;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut changes = 0;
    for _ in 0..runs {
        let (n, took) = f();
        changes = n;
        times.push(took);
    }
    let first = times[0];
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<28} first {:>8.2} ms  min {:>8.2} ms  median {:>8.2} ms  max {:>8.2} ms  ({changes} changes, {runs} runs)",
        ms(first),
        ms(times[0]),
        ms(times[runs / 2]),
        ms(times[runs - 1])
    );
}

fn main() {
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a
    // quick smoke test with a small size instead.
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = match (sizes.is_empty(), full) {
        (false, _) => sizes,
        (true, true) => vec![10_000, 100_000],
        (true, false) => vec![1_000],
    };
    let own = Ownership::all();
    let guards = Guards {
        allow_mass_delete: true,
        ..Guards::default()
    };
    for services in sizes {
        let want = desired(services);
        let empty = IpvsState::default();
        let live = live_changed(&want);
        let runs = match (full, services > 50_000) {
            (false, _) => 3,
            (true, true) => 11,
            (true, false) => 31,
        };
        measure(&format!("{services} x {DESTS} from empty"), runs, || {
            plan::plan(&want, &empty, &own, &guards)
                .unwrap()
                .changes
                .len()
        });
        // The drop alone (in the line above too): it reads every change.
        measure_part(
            &format!("{services} x {DESTS} from empty: drop"),
            runs,
            || {
                let p = plan::plan(&want, &empty, &own, &guards).unwrap();
                let changes = p.changes.len();
                let t = Instant::now();
                drop(p);
                (changes, t.elapsed())
            },
        );
        // The floor for any plan that holds its changes: allocate and fill
        // a vector of that many changes (first-touch page faults included).
        let one =
            plan::plan(&want, &empty, &own, &guards).unwrap().changes[services as usize].clone();
        let n = (services * (DESTS + 1)) as usize;
        measure(
            &format!(
                "{services} x {DESTS} floor: fill vec ({} B)",
                std::mem::size_of::<plan::Change>()
            ),
            runs,
            || {
                let v: Vec<plan::Change> = vec![one.clone(); n];
                std::hint::black_box(&v);
                v.len()
            },
        );
        measure(&format!("{services} x {DESTS} 1% changed"), runs, || {
            plan::plan(&want, &live, &own, &guards)
                .unwrap()
                .changes
                .len()
        });
        measure(&format!("{services} x {DESTS} no change"), runs, || {
            plan::plan(&want, &want, &own, &guards)
                .unwrap()
                .changes
                .len()
        });
    }
}
