//! The status page's data: plain values (`Serialize`, the JSON at
//! `/status.json`) built from the daemon's state once per request, and the
//! query that picks a page of services. Building is pure: the state, the
//! drain records, the counters and the time are passed in.
//!
//! Must not: lock, read a clock or a source, or format HTML (`html` does).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::fleet::Fleet;
use crate::health::VerdictKind;
use crate::model::traffic::{Traffic, TrafficTable};
use crate::model::{DestStats, IpvsState, Provenance, ServiceKey, fallback};
use crate::reconcile::drain::{DRAIN_BACKEND, Drains};

/// The JSON document's format version.
pub const FORMAT: u32 = 1;
/// Services per page unless `per_page` says otherwise...
pub const PER_PAGE: usize = 50;
/// ...and at most this many.
pub const MAX_PER_PAGE: usize = 1000;
/// Seconds between refreshes unless `refresh` says otherwise.
pub const REFRESH: u32 = 10;
/// Lines of the last applied plan kept.
pub const PLAN_LINES: usize = 500;

/// What a request asks for (`?q=&only=problems&page=&per_page=&refresh=`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Query {
    /// Substring of the service (`tcp://10.0.0.1:80`) or one of its names,
    /// case-insensitive; empty: every service.
    pub q: String,
    /// Only services with a problem (a dest down, draining, or no dest of
    /// weight above 0).
    pub only_problems: bool,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
    /// Seconds; 0: no refresh.
    pub refresh: u32,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            q: String::new(),
            only_problems: false,
            page: 1,
            per_page: PER_PAGE,
            refresh: REFRESH,
        }
    }
}

impl Query {
    /// Parses a URL's query string; a value that does not parse keeps its
    /// default, `per_page` is held to 1..=[`MAX_PER_PAGE`].
    pub fn parse(raw: Option<&str>) -> Query {
        let mut query = Query::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "q" => query.q = value.trim().to_string(),
                "only" => query.only_problems = value == "problems",
                "page" => query.page = value.parse().unwrap_or(1).max(1),
                "per_page" => {
                    query.per_page = value.parse().unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE);
                }
                "refresh" => query.refresh = value.parse().unwrap_or(REFRESH),
                _ => {}
            }
        }
        query
    }

    /// The query string for `page` of this query (`q` percent-encoded).
    pub fn to_url(&self, page: usize) -> String {
        let mut url = format!("?page={page}&per_page={}", self.per_page);
        if !self.q.is_empty() {
            url.push_str("&q=");
            url.push_str(&percent_encode(&self.q));
        }
        if self.only_problems {
            url.push_str("&only=problems");
        }
        if self.refresh != REFRESH {
            url.push_str(&format!("&refresh={}", self.refresh));
        }
        url
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a
/// byte; invalid escapes stay as written, invalid UTF-8 is replaced.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The whole page's data.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub format: u32,
    /// When it was made, Unix milliseconds.
    pub now_ms: u64,
    pub version: String,
    pub query: Query,
    /// Errors to show as a banner: the last pass's failure and an invalid
    /// config's diagnostics (empty when all is well).
    pub problems: Vec<String>,
    pub last_pass: Option<LastPass>,
    pub sources: Vec<SourceRow>,
    /// The services, or `None` while a pass held the daemon's state for
    /// longer than the page waits.
    pub services: Option<ServicePage>,
    /// Where the connection counters come from.
    pub counters: Counters,
    pub health: HealthSummary,
    pub last_plan: Option<PlanText>,
    /// The config's and overlay's current problems, errors and warnings,
    /// as `clusterf validate` prints them.
    pub diagnostics: Vec<String>,
    /// This frontend's fleet status record, as `clusterf status` shows a
    /// row (`None` without `--frontend-id`).
    pub fleet: Option<Fleet>,
    /// The VIP interface (`--vip-interface`), as the last pass left it.
    pub vips: Option<VipSection>,
}

/// The VIPs of the VIP interface: those the owned services want and those
/// on it, as the last pass (or withdrawal) left them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VipSection {
    pub interface: String,
    pub vips: Vec<VipRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VipRow {
    /// `198.51.100.10/32`.
    pub vip: String,
    /// An owned service has this address.
    pub desired: bool,
    /// On the interface.
    pub present: bool,
}

/// The last pass, ok or failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LastPass {
    pub ok: bool,
    /// When it ended, Unix milliseconds.
    pub at_ms: u64,
    pub duration_ms: u64,
    /// Changes applied (0 for a failed pass).
    pub changes: usize,
    /// The config commit it read (Git only).
    pub commit: Option<String>,
    /// The etcd revision of the overlay it read (etcd only).
    pub etcd_revision: Option<String>,
    /// Why it failed, one line.
    pub error: Option<String>,
    /// An invalid config's first errors.
    pub diagnostics: Vec<String>,
    pub passes_ok: u64,
    pub passes_failed: u64,
}

/// One input and how fresh it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceRow {
    /// `config`, `git`, `etcd`, `kernel`.
    pub source: String,
    /// What it reads, credentials redacted.
    pub description: String,
    /// Seconds since its last good read (`None`: never read).
    pub staleness_s: Option<f64>,
    /// Its current error, if any (the etcd watcher's).
    pub error: Option<String>,
}

/// Where the connection counters come from: the last real read of the
/// kernel's table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Milliseconds since that read; `None`: no counters (the copy of the
    /// table was dropped by a failed pass, or no pass read it yet).
    pub age_ms: Option<u64>,
    /// Unix milliseconds of the last read of the traffic counters (`None`:
    /// none read: no traffic reader, or no read yet).
    pub traffic_read_ms: Option<u64>,
}

/// The health checker's table in numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HealthSummary {
    /// Targets checked.
    pub checked: usize,
    /// Targets down (unhealthy or recovering).
    pub down: usize,
}

/// The last applied plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanText {
    pub at_ms: u64,
    /// At most [`PLAN_LINES`] lines.
    pub text: String,
    /// Lines left out.
    pub omitted_lines: usize,
}

impl PlanText {
    /// The plan's text, cut after [`PLAN_LINES`] lines.
    pub fn of(text: &str, at_ms: u64) -> PlanText {
        let total = text.lines().count();
        let kept: Vec<&str> = text.lines().take(PLAN_LINES).collect();
        PlanText {
            at_ms,
            text: kept.join("\n"),
            omitted_lines: total - kept.len(),
        }
    }
}

/// One page of services.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServicePage {
    /// Services in all.
    pub total: usize,
    /// Services with a problem, in all.
    pub with_problems: usize,
    /// Services the query matched.
    pub matched: usize,
    /// The page shown (1-based) and how many there are.
    pub page: usize,
    pub pages: usize,
    /// The last render of the config had errors: the services are what
    /// its valid part gives (or the last health view), while the kernel
    /// keeps what the last successful pass applied.
    pub render_failed: bool,
    pub services: Vec<ServiceRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceRow {
    pub service: String,
    /// The config's service names (empty: kept only for draining dests).
    pub names: Vec<String>,
    pub scheduler: String,
    pub problem: bool,
    /// The kernel's traffic counters of the service, as last read (see
    /// [`Counters::traffic_read_ms`]).
    pub traffic: Option<Traffic>,
    pub dests: Vec<DestRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DestRow {
    pub dest: String,
    pub weight: u32,
    pub method: String,
    /// `up` (or not checked), `draining`, `health-drained`,
    /// `health-removed`, `fail-open`, `fallback` (the service's fallback,
    /// at weight 0), `fallback-serving` (it has the weight: no other dest
    /// has); `kernel`: a dest of a service the invalid config lacks, as the
    /// kernel has it.
    pub state: String,
    /// Which backend, file or etcd key made it.
    pub origins: Vec<Provenance>,
    /// From the last real read of the kernel (see [`Counters`]); `None`
    /// where it had none.
    pub active_conns: Option<u32>,
    pub inactive_conns: Option<u32>,
    /// The kernel's traffic counters of the dest, when they are read per
    /// dest (`--metrics-per-dest`).
    pub traffic: Option<Traffic>,
    /// Why health acted (or did not, fail-open).
    pub health: Option<String>,
    /// A drain in progress.
    pub drain: Option<DrainInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DrainInfo {
    pub since_ms: u64,
    /// Milliseconds until the drain timeout deletes it (idle earlier).
    pub left_ms: u64,
}

/// What a page of services is built from.
pub struct ServiceInput<'a> {
    /// The desired state with health applied (the last one planned).
    pub desired: &'a IpvsState,
    /// While the config is invalid: the kernel's table, whose services the
    /// render lacks are listed from it.
    pub kernel: Option<&'a IpvsState>,
    pub drains: &'a Drains,
    pub drain_timeout: Duration,
    /// Counters of the last real read, if any (in the daemon's copy of
    /// the kernel's table).
    pub stats: Option<&'a crate::reconcile::live::Table>,
    /// What health did to a dest, and why.
    pub health: &'a BTreeMap<(ServiceKey, SocketAddr), (VerdictKind, String)>,
    /// The last read of the traffic counters, if any.
    pub traffic: Option<&'a TrafficTable>,
    pub now_ms: u64,
}

/// The query's page of services: matched by `q` (and `only_problems`), in
/// service order, then cut to the page. Work is one pass over the keys and
/// the matched services' dests, plus the page's rows.
pub fn services(input: &ServiceInput<'_>, query: &Query) -> ServicePage {
    let keys = all_keys(input);
    let flagged = flagged(input);
    let needle = query.q.to_lowercase();
    let mut matched = Vec::new();
    let mut with_problems = 0;
    for key in &keys {
        let problem = has_problem(input, &flagged, key);
        with_problems += usize::from(problem);
        if (query.only_problems && !problem) || !matches(input, key, &needle) {
            continue;
        }
        matched.push((*key, problem));
    }
    let pages = matched.len().div_ceil(query.per_page).max(1);
    let page = query.page.min(pages);
    let rows = matched
        .iter()
        .skip((page - 1) * query.per_page)
        .take(query.per_page)
        .map(|(k, problem)| service_row(input, k, *problem))
        .collect();
    ServicePage {
        total: keys.len(),
        with_problems,
        matched: matched.len(),
        page,
        pages,
        render_failed: false,
        services: rows,
    }
}

/// The desired services, those kept only for draining dests and (config
/// invalid) the kernel's, sorted.
fn all_keys(input: &ServiceInput<'_>) -> Vec<ServiceKey> {
    let mut keys: Vec<ServiceKey> = input.desired.services.keys().copied().collect();
    let kernel = input.kernel.into_iter().flat_map(|k| k.services.keys());
    let extra: BTreeSet<ServiceKey> = input
        .drains
        .records()
        .map(|r| r.service)
        .chain(kernel.copied())
        .filter(|k| !input.desired.services.contains_key(k))
        .collect();
    if !extra.is_empty() {
        keys.extend(extra);
        keys.sort();
    }
    keys
}

fn matches(input: &ServiceInput<'_>, key: &ServiceKey, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if key.to_string().to_lowercase().contains(needle) {
        return true;
    }
    input
        .desired
        .services
        .get(key)
        .is_some_and(|s| s.names.iter().any(|n| n.to_lowercase().contains(needle)))
}

/// The services with a dest draining or down for health.
fn flagged(input: &ServiceInput<'_>) -> BTreeSet<ServiceKey> {
    let drains = input.drains.records().map(|r| r.service);
    drains.chain(input.health.keys().map(|k| k.0)).collect()
}

/// Flagged, or no dest but a fallback of weight above 0 (a service kept
/// only for draining dests, or absent from an invalid config, or serving
/// from its fallback, included).
fn has_problem(input: &ServiceInput<'_>, flagged: &BTreeSet<ServiceKey>, key: &ServiceKey) -> bool {
    flagged.contains(key)
        || input
            .desired
            .services
            .get(key)
            .is_none_or(|s| !fallback::others_serve(s))
}

fn service_row(input: &ServiceInput<'_>, key: &ServiceKey, problem: bool) -> ServiceRow {
    let from_kernel = !input.desired.services.contains_key(key);
    let service = input.desired.services.get(key).or_else(|| {
        input
            .kernel
            .and_then(|k| k.services.get(key))
            .filter(|_| from_kernel)
    });
    let mut dests: BTreeMap<SocketAddr, DestRow> = BTreeMap::new();
    if let Some(service) = service {
        for (addr, d) in &service.dests {
            let verdict = input.health.get(&(*key, *addr));
            let state = match verdict.map(|v| v.0) {
                Some(VerdictKind::Drained) => "health-drained",
                Some(VerdictKind::Removed) => "health-removed",
                Some(VerdictKind::FailOpen) => "fail-open",
                None if fallback::is_fallback(d) && d.attrs.weight > 0 => "fallback-serving",
                None if fallback::is_fallback(d) => "fallback",
                None => "up",
            };
            dests.insert(
                *addr,
                DestRow {
                    dest: addr.to_string(),
                    weight: d.attrs.weight,
                    method: d.attrs.method.as_str().to_string(),
                    state: if from_kernel { "kernel" } else { state }.to_string(),
                    origins: d.provenance.to_vec(),
                    active_conns: None,
                    inactive_conns: None,
                    traffic: None,
                    health: service
                        .health
                        .get(addr)
                        .map(|n| n.to_string())
                        .or_else(|| verdict.map(|v| v.1.clone())),
                    drain: None,
                },
            );
        }
    }
    for (k, addr) in input.health.keys().filter(|(k, _)| k == key) {
        let (kind, why) = &input.health[&(*k, *addr)];
        if *kind == VerdictKind::Removed && !dests.contains_key(addr) {
            dests.insert(*addr, removed_row(addr, why));
        }
    }
    for r in input.drains.records().filter(|r| r.service == *key) {
        let left =
            (r.since_ms + input.drain_timeout.as_millis() as u64).saturating_sub(input.now_ms);
        let row = dests.entry(r.dest).or_insert_with(|| DestRow {
            dest: r.dest.to_string(),
            weight: 0,
            method: r.attrs.method.as_str().to_string(),
            state: String::new(),
            origins: vec![Provenance {
                backend: DRAIN_BACKEND.into(),
                source: "drain state: gone from the desired state".into(),
                weight: r.attrs.weight,
                route: None,
                fallback: false,
            }],
            active_conns: None,
            inactive_conns: None,
            traffic: None,
            health: None,
            drain: None,
        });
        row.weight = 0;
        row.state = "draining".to_string();
        row.drain = Some(DrainInfo {
            since_ms: r.since_ms,
            left_ms: left,
        });
    }
    let dest_traffic = input.traffic.and_then(|t| t.dests.get(key));
    for (addr, row) in &mut dests {
        let s: Option<DestStats> = input.stats.and_then(|t| t.dest_stats(key, addr));
        row.active_conns = s.map(|s| s.active_conns);
        row.inactive_conns = s.map(|s| s.inactive_conns);
        row.traffic = dest_traffic.and_then(|d| d.get(addr)).copied();
    }
    ServiceRow {
        service: key.to_string(),
        names: service.map(|s| s.names.clone()).unwrap_or_default(),
        scheduler: service
            .map(|s| s.attrs.scheduler.clone())
            .unwrap_or_default(),
        problem,
        traffic: input.traffic.and_then(|t| t.services.get(key)).copied(),
        dests: dests.into_values().collect(),
    }
}

fn removed_row(addr: &SocketAddr, why: &str) -> DestRow {
    DestRow {
        dest: addr.to_string(),
        weight: 0,
        method: String::new(),
        state: "health-removed".to_string(),
        origins: Vec::new(),
        active_conns: None,
        inactive_conns: None,
        traffic: None,
        health: Some(why.to_string()),
        drain: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dest, DestAttrs, Method, Service, ServiceAttrs};
    use crate::reconcile::drain::DrainRecord;

    /// `n` services `tcp://10.0.x.y:80`, each with `dests` dests.
    fn state(n: usize, dests: usize) -> IpvsState {
        let mut s = IpvsState::default();
        for i in 0..n {
            let key: ServiceKey = format!("tcp://10.0.{}.{}:80", i / 250, i % 250)
                .parse()
                .unwrap();
            let mut svc = Service::new(ServiceAttrs::with_scheduler("wlc"));
            svc.names = vec![format!("svc-{i}")];
            for d in 0..dests {
                let addr = format!("10.1.{}.{}:8080", i % 250, d).parse().unwrap();
                svc.dests.insert(
                    addr,
                    Dest {
                        attrs: DestAttrs::new(Method::Masq, 10),
                        provenance: Box::default(),
                    },
                );
            }
            s.services.insert(key, svc);
        }
        s
    }

    fn input<'a>(
        desired: &'a IpvsState,
        drains: &'a Drains,
        health: &'a BTreeMap<(ServiceKey, SocketAddr), (VerdictKind, String)>,
    ) -> ServiceInput<'a> {
        ServiceInput {
            desired,
            kernel: None,
            drains,
            drain_timeout: Duration::from_secs(60),
            stats: None,
            health,
            traffic: None,
            now_ms: 100_000,
        }
    }

    #[test]
    fn a_row_carries_the_services_traffic_and_its_dests_where_read_per_dest() {
        let desired = state(2, 2);
        let (drains, health) = (Drains::default(), BTreeMap::new());
        let keys: Vec<ServiceKey> = desired.services.keys().copied().collect();
        let mut t = TrafficTable::default();
        let traffic = |n| Traffic {
            connections: n,
            ..Traffic::default()
        };
        t.services.insert(keys[0], traffic(40));
        t.services.insert(keys[1], traffic(2));
        let d0 = *desired.services[&keys[0]].dests.keys().next().unwrap();
        t.dests.insert(keys[0], BTreeMap::from([(d0, traffic(30))]));
        let mut i = input(&desired, &drains, &health);
        i.traffic = Some(&t);
        let page = services(&i, &Query::default());
        let rows = &page.services;
        assert_eq!(rows[0].traffic, Some(traffic(40)));
        assert_eq!(rows[1].traffic, Some(traffic(2)));
        assert_eq!(rows[0].dests[0].traffic, Some(traffic(30)));
        assert_eq!(rows[0].dests[1].traffic, None, "no per-dest read of it");
        assert_eq!(rows[1].dests[0].traffic, None);
        i.traffic = None;
        assert!(
            services(&i, &Query::default()).services[0]
                .traffic
                .is_none()
        );
    }

    #[test]
    fn a_fallback_dest_is_marked_and_a_service_serving_from_it_is_a_problem() {
        let mut desired = state(2, 1);
        for (i, svc) in desired.services.values_mut().enumerate() {
            let weight = if i == 0 { 10 } else { 0 };
            svc.dests.values_mut().for_each(|d| d.attrs.weight = weight);
            let dest = Dest {
                attrs: DestAttrs::new(Method::Masq, 0),
                provenance: Box::new([Provenance {
                    backend: "fallback".into(),
                    source: "services/web.yaml#fallback".into(),
                    weight: 2,
                    route: None,
                    fallback: true,
                }]),
            };
            svc.dests.insert("10.9.0.1:80".parse().unwrap(), dest);
            fallback::settle(svc);
        }
        let (drains, health) = (Drains::default(), BTreeMap::new());
        let page = services(&input(&desired, &drains, &health), &Query::default());
        let states = |r: &ServiceRow| r.dests.iter().map(|d| d.state.clone()).collect::<Vec<_>>();
        assert_eq!(states(&page.services[0]), ["up", "fallback"]);
        assert!(!page.services[0].problem);
        assert_eq!(states(&page.services[1]), ["up", "fallback-serving"]);
        assert!(page.services[1].problem, "serving from its fallback");
    }

    #[test]
    fn the_query_string_is_decoded_and_bad_values_keep_their_defaults() {
        let q = Query::parse(Some(
            "q=a%20b+c%3C&only=problems&page=3&per_page=99999&refresh=0",
        ));
        assert_eq!(q.q, "a b c<");
        assert!(q.only_problems);
        assert_eq!((q.page, q.per_page, q.refresh), (3, MAX_PER_PAGE, 0));
        let q = Query::parse(Some("page=x&per_page=0&refresh=-1&q=%zz%4"));
        assert_eq!((q.page, q.per_page, q.refresh), (1, 1, REFRESH));
        assert_eq!(q.q, "%zz%4");
        assert_eq!(Query::parse(None), Query::default());
        // A page's link says the same query again.
        let q = Query::parse(Some("q=web%26co&only=problems&per_page=20&refresh=5"));
        assert_eq!(
            Query::parse(Some(&q.to_url(2)[1..])),
            Query { page: 2, ..q }
        );
    }

    #[test]
    fn services_are_paginated_and_the_last_page_is_shown_for_a_page_beyond_it() {
        let (desired, drains, health) = (state(120, 2), Drains::default(), BTreeMap::new());
        let input = input(&desired, &drains, &health);
        let page = |n| {
            services(
                &input,
                &Query {
                    page: n,
                    ..Query::default()
                },
            )
        };
        let first = page(1);
        assert_eq!((first.total, first.matched, first.pages), (120, 120, 3));
        assert_eq!(first.services.len(), PER_PAGE);
        assert_eq!(first.services[0].service, "tcp://10.0.0.0:80");
        let last = page(9);
        assert_eq!((last.page, last.services.len()), (3, 20));
        assert_eq!(last.services[19].service, "tcp://10.0.0.119:80");
    }

    #[test]
    fn the_search_matches_address_or_name_and_problems_can_be_listed_alone() {
        let desired = state(30, 2);
        let mut drains = Drains::default();
        let key: ServiceKey = "tcp://10.0.0.7:80".parse().unwrap();
        drains.insert(DrainRecord {
            service: key,
            dest: "10.9.9.9:8080".parse().unwrap(),
            since_ms: 70_000,
            attrs: DestAttrs::new(Method::Droute, 5),
            service_attrs: ServiceAttrs::with_scheduler("wlc"),
        });
        let mut health = BTreeMap::new();
        let down: SocketAddr = "10.1.12.0:8080".parse().unwrap();
        let twelve: ServiceKey = "tcp://10.0.0.12:80".parse().unwrap();
        health.insert((twelve, down), (VerdictKind::FailOpen, "http 503".into()));
        let input = input(&desired, &drains, &health);
        let found = |q: &str, only: bool| {
            let query = Query {
                q: q.into(),
                only_problems: only,
                ..Query::default()
            };
            let page = services(&input, &query);
            assert_eq!(page.with_problems, 2);
            page.services
                .into_iter()
                .map(|s| s.service)
                .collect::<Vec<_>>()
        };
        assert_eq!(found("SVC-12", false), ["tcp://10.0.0.12:80"]);
        assert_eq!(found("10.0.0.2", false).len(), 11, "2 and 20..29");
        assert_eq!(found("", true), ["tcp://10.0.0.7:80", "tcp://10.0.0.12:80"]);
        // The draining dest joins its service at weight 0 with the time left.
        let page = services(
            &input,
            &Query {
                q: "svc-7".into(),
                ..Query::default()
            },
        );
        let row = &page.services[0]
            .dests
            .iter()
            .find(|d| d.dest == "10.9.9.9:8080")
            .unwrap();
        assert_eq!(
            (row.weight, row.state.as_str(), row.method.as_str()),
            (0, "draining", "droute")
        );
        assert_eq!(row.drain.as_ref().unwrap().left_ms, 30_000);
        let page = services(
            &input,
            &Query {
                q: "svc-12".into(),
                ..Query::default()
            },
        );
        let row = &page.services[0]
            .dests
            .iter()
            .find(|d| d.dest == "10.1.12.0:8080")
            .unwrap();
        assert_eq!(
            (row.state.as_str(), row.health.as_deref()),
            ("fail-open", Some("http 503"))
        );
    }

    #[test]
    fn a_plan_is_kept_to_its_first_lines() {
        let text: String = (0..PLAN_LINES + 7).map(|i| format!("line {i}\n")).collect();
        let p = PlanText::of(&text, 5);
        assert_eq!(p.omitted_lines, 7);
        assert!(p.text.ends_with(&format!("line {}", PLAN_LINES - 1)));
    }
}
