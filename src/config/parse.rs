//! Whole trees: [`parse_config`] and [`parse_overlay`] read every file of a
//! tree by its place in the layout and combine them (groups of backends,
//! one layout per service, conflicts between files); [`holds_config_files`]
//! tells a config from no config. Reading and validating one file is the
//! readers' (`json`, `yaml`); no file format here.

use std::collections::{BTreeMap, BTreeSet};

use super::check::{dns_without_udp, fwmark_without_port};
use super::fallback::fits_service;
use super::json::{json_endpoints, json_fallback, json_healthcheck, json_route};
use super::layout::{Entry, classify, misplaced};
use super::types::{Backend, Config, Fallback, HealthCheck, Overlay, Route, RouteClaim, Service};
use super::validate::{EndpointFile, Reporter, check_name};
use super::yaml::{yaml_defaults, yaml_route, yaml_service};
use crate::diag::{Diagnostics, Pos};
use crate::health::Probe;
use crate::model::ServiceKey;
use crate::tree::Tree;

/// Whether a config tree holds any file of the config layout (read or not):
/// `clusterf.yaml`, something under `services/` or `routes/` that the layout
/// reads. A tree without one (empty, only a README) is no config at all,
/// never an empty config that deletes every service.
pub fn holds_config_files(tree: &Tree) -> bool {
    tree.files
        .keys()
        .chain(tree.unreadable.keys())
        .any(|path| !matches!(classify(path), Entry::Other | Entry::EditorFile))
}

/// Parses and validates a config repo tree. The config is usable only when
/// the diagnostics hold no errors.
pub fn parse_config(tree: &Tree) -> (Config, Diagnostics) {
    parse_config_ahead(tree, READ_AHEAD)
}

/// [`parse_config`], reading the YAML service files ahead when there are
/// at least `ahead` of them.
fn parse_config_ahead(tree: &Tree, ahead: usize) -> (Config, Diagnostics) {
    let mut diags = Diagnostics::default();
    for (path, why) in &tree.unreadable {
        diags.error(path.as_str(), None, format!("cannot read: {why}"));
    }
    let mut files = ConfigFiles {
        ahead: read_services_ahead(tree, ahead).into_iter(),
        ..ConfigFiles::default()
    };
    for (path, bytes) in &tree.files {
        let mut r = Reporter {
            file: path,
            diags: &mut diags,
            failed: false,
        };
        files.read(&mut r, path, bytes);
    }
    files.end_group();
    files.check_layouts(&mut diags);
    let config = files.assemble(&mut diags);
    check_conflicts(&config, &mut diags);
    diags.sort();
    (config, diags)
}

/// Below this many YAML service files, each is read in its turn.
const READ_AHEAD: usize = 512;

/// A YAML service file read on its own: the service, and the file's
/// diagnostics. Boxed: each is moved into the config in its turn and its
/// box freed, where a vector of services would be held whole beside it.
type ReadService = (Option<Box<Service>>, Diagnostics);

/// The YAML layout's service files of `tree`, in path order, read on two
/// threads when there are `at_least` (each file is read alone, its
/// diagnostics kept apart and added in its turn, so the result is the
/// same); empty when there are fewer.
fn read_services_ahead(tree: &Tree, at_least: usize) -> Vec<ReadService> {
    let services: Vec<(&str, &str, &[u8])> = tree
        .files
        .iter()
        .filter_map(|(path, bytes)| match classify(path) {
            Entry::ServiceYaml(name) => Some((path.as_str(), name, bytes.as_slice())),
            _ => None,
        })
        .collect();
    if services.len() < at_least {
        return Vec::new();
    }
    let read = |part: &[(&str, &str, &[u8])]| -> Vec<ReadService> {
        part.iter()
            .map(|&(file, name, bytes)| {
                let mut diags = Diagnostics::default();
                let mut r = Reporter {
                    file,
                    diags: &mut diags,
                    failed: false,
                };
                (yaml_service(&mut r, name, bytes).map(Box::new), diags)
            })
            .collect()
    };
    let (first, second) = services.split_at(services.len() / 2);
    std::thread::scope(|scope| {
        let later = scope.spawn(|| read(second));
        let mut out = read(first);
        match later.join() {
            Ok(rest) => out.extend(rest),
            // A panic is the reader's, not the thread's: read again here.
            Err(_) => out.extend(read(second)),
        }
        out
    })
}

/// A JSON layout `healthcheck` file as read.
struct JsonCheck {
    file: String,
    /// `None`: `type: none`, or the file has errors (reported).
    check: Option<HealthCheck>,
    /// Where its type is.
    type_pos: Option<Pos>,
}

/// A JSON layout `fallback` file's fallback, and whether it names a port.
type JsonFallback = (Fallback, bool);

/// A config tree's files as read, before the services are assembled.
#[derive(Default)]
struct ConfigFiles<'t> {
    /// Defaults and routes; services come in `assemble`.
    config: Config,
    /// JSON layout: frontends by service, with their file.
    frontends: BTreeMap<&'t str, (String, EndpointFile)>,
    /// JSON layout: backends by service.
    json_backends: BTreeMap<&'t str, BTreeMap<String, Backend>>,
    /// JSON layout: health check files by service.
    healthchecks: BTreeMap<&'t str, JsonCheck>,
    /// JSON layout: fallback files by service, with their file (`None`:
    /// the file has errors, reported) and whether they name a port.
    fallbacks: BTreeMap<&'t str, (String, Option<JsonFallback>)>,
    yaml_services: BTreeMap<&'t str, Service>,
    /// The backend files of one service are consecutive in path order: they
    /// are gathered here and added to `json_backends` together.
    group: Option<(&'t str, BTreeMap<String, Backend>)>,
    /// The file the defaults were read from.
    defaults_file: Option<&'t str>,
    /// Entries outside the layout reported as mistakes (`service/`).
    misplaced: BTreeSet<&'t str>,
    /// The YAML service files read ahead, in path order (none: each is
    /// read in its turn).
    ahead: std::vec::IntoIter<ReadService>,
}

impl<'t> ConfigFiles<'t> {
    /// Reads one file by what its path is in the layout.
    fn read(&mut self, r: &mut Reporter, path: &'t str, bytes: &[u8]) {
        match classify(path) {
            Entry::Defaults => {
                if let Some(first) = self.defaults_file.replace(path) {
                    // `clusterf.yaml` and `clusterf.yml`: neither may win silently.
                    r.error(
                        None,
                        format!("the defaults are also defined by {first}: keep one of the two"),
                    );
                } else if let Some(d) = yaml_defaults(r, bytes) {
                    self.config.defaults = d;
                }
            }
            Entry::ServiceYaml(name) => self.read_service_yaml(r, name, bytes),
            Entry::Frontend(svc) => {
                check_name(r, "service", svc);
                if let Some(file) = json_endpoints(r, bytes, true, true) {
                    self.frontends.insert(svc, (path.to_string(), file));
                }
            }
            Entry::Healthcheck(svc) => {
                check_name(r, "service", svc);
                let (check, type_pos) = json_healthcheck(r, bytes).unwrap_or((None, None));
                let file = path.to_string();
                let check = JsonCheck {
                    file,
                    check,
                    type_pos,
                };
                self.healthchecks.insert(svc, check);
            }
            Entry::Fallback(svc) => {
                check_name(r, "service", svc);
                let fallback = json_fallback(r, bytes);
                self.fallbacks.insert(svc, (path.to_string(), fallback));
            }
            Entry::Backend(svc, name) => self.read_backend(r, path, svc, name, bytes),
            Entry::RouteYaml(name) | Entry::RouteJson(name) => {
                check_name(r, "route", name);
                let route = if matches!(classify(path), Entry::RouteYaml(_)) {
                    yaml_route(r, name, bytes)
                } else {
                    json_route(r, name, bytes, true)
                };
                if let Some(route) = route {
                    self.add_route(r, name, route);
                }
            }
            Entry::EditorFile => {}
            Entry::Other => self.read_other(r, path),
        }
    }

    /// A path outside the layout: an error when it looks like a mistake
    /// that drops part of the config (once per entry: `service/`), a
    /// warning below `services/` and `routes/`, else nothing.
    fn read_other(&mut self, r: &mut Reporter, path: &'t str) {
        if let Some((entry, why)) = misplaced(path) {
            if self.misplaced.insert(entry) {
                r.error(None, why);
            }
        } else if path.starts_with("services/") || path.starts_with("routes/") {
            r.warning(None, "ignored: not part of the config layout");
        }
    }

    fn read_service_yaml(&mut self, r: &mut Reporter, name: &'t str, bytes: &[u8]) {
        check_name(r, "service", name);
        let read = match self.ahead.next() {
            Some((svc, diags)) => {
                r.failed |= diags.has_errors();
                r.diags.extend(diags);
                svc.map(|svc| *svc)
            }
            None => yaml_service(r, name, bytes),
        };
        if let Some(svc) = read
            && let Some(prev) = self.yaml_services.insert(name, svc)
        {
            r.error(
                None,
                format!("service {name:?} is also defined by {}", prev.source),
            );
        }
    }

    fn read_backend(
        &mut self,
        r: &mut Reporter,
        path: &str,
        svc: &'t str,
        name: &str,
        bytes: &[u8],
    ) {
        check_name(r, "backend", name);
        // A service is known even when its backend fails, so it is not
        // reported as missing.
        if self.group.as_ref().is_none_or(|(g, _)| *g != svc) {
            self.end_group();
            self.group = Some((svc, BTreeMap::new()));
        }
        if let Some(file) = json_endpoints(r, bytes, false, true)
            && let Some((_, backends)) = &mut self.group
        {
            backends.insert(
                name.to_string(),
                Backend {
                    name: name.to_string(),
                    source: path.to_string(),
                    endpoints: file.endpoints,
                    weight: file.weight,
                    weight_given: file.weight_given,
                    healthcheck: file.healthcheck,
                    thresholds: file.thresholds,
                },
            );
        }
    }

    fn add_route(&mut self, r: &mut Reporter, name: &str, route: Route) {
        if let Some(prev) = self.config.routes.get(name) {
            r.error(
                None,
                format!("route {name:?} is also defined by {}", prev.source),
            );
        } else {
            self.config.routes.insert(name.to_string(), route);
        }
    }

    /// Adds the gathered backends of one service to `json_backends`.
    fn end_group(&mut self) {
        if let Some((g, mut backends)) = self.group.take() {
            self.json_backends
                .entry(g)
                .or_default()
                .append(&mut backends);
        }
    }

    /// A service lives in exactly one layout.
    fn check_layouts(&self, diags: &mut Diagnostics) {
        for (name, svc) in &self.yaml_services {
            let json_files: Vec<String> = self
                .frontends
                .get(name)
                .map(|(f, _)| f.clone())
                .into_iter()
                .chain(self.healthchecks.get(name).map(|c| c.file.clone()))
                .chain(self.fallbacks.get(name).map(|(f, _)| f.clone()))
                .chain(
                    self.json_backends
                        .get(name)
                        .into_iter()
                        .flat_map(|b| b.values().map(|b| b.source.clone())),
                )
                .collect();
            if !json_files.is_empty() {
                diags.error(
                    svc.source.as_str(),
                    None,
                    format!(
                        "service {name:?} is defined in both layouts: {} and {}",
                        svc.source,
                        json_files.join(", ")
                    ),
                );
            }
        }
    }

    /// The config: YAML services first, then JSON ones (a frontend with its
    /// backends) under names still free; backends without a frontend are
    /// reported and dropped.
    fn assemble(self, diags: &mut Diagnostics) -> Config {
        let ConfigFiles {
            mut config,
            frontends,
            mut json_backends,
            mut healthchecks,
            mut fallbacks,
            yaml_services,
            ..
        } = self;
        // Sorted and unique: built in bulk (the map is empty until here).
        debug_assert!(config.services.is_empty());
        config.services = yaml_services
            .into_iter()
            .map(|(name, svc)| (name.to_string(), svc))
            .collect();
        for (name, (source, file)) in frontends {
            let frontend = file.endpoints;
            let std::collections::btree_map::Entry::Vacant(slot) =
                config.services.entry(name.to_string())
            else {
                continue;
            };
            let healthcheck = healthchecks.remove(name).and_then(|c| {
                let check = &c.check.as_ref()?.check;
                let dns = matches!(check.probe, Probe::Dns { .. });
                let why = dns_without_udp(dns, &frontend)
                    .or_else(|| fwmark_without_port(check.port.is_some(), &frontend));
                match why {
                    Some(why) => {
                        diags.error(c.file.as_str(), c.type_pos, why);
                        None
                    }
                    None => c.check,
                }
            });
            let svc = slot.insert(Service {
                name: name.to_string(),
                source,
                frontend,
                scheduler: file.service.scheduler,
                persistence: file.service.persistence,
                healthcheck,
                backends: json_backends.remove(name).unwrap_or_default(),
                ipvs: file.service.ipvs,
                fallback: None,
                default_weight: file.service.default_weight,
            });
            if let Some((file, Some((fallback, ports_given)))) = fallbacks.remove(name) {
                let mut r = Reporter {
                    file: &file,
                    diags,
                    failed: false,
                };
                if fits_service(&mut r, None, ports_given, &fallback, svc) {
                    svc.fallback = Some(fallback);
                }
            }
        }
        for (name, (file, _)) in fallbacks {
            if !config.services.contains_key(name) {
                diags.warning(
                    file.as_str(),
                    None,
                    format!("fallback of service {name:?}, which has no frontend: ignored"),
                );
            }
        }
        for (name, c) in healthchecks {
            // A YAML service of that name is reported as in both layouts.
            if !config.services.contains_key(name) {
                diags.warning(
                    c.file.as_str(),
                    None,
                    format!("health check of service {name:?}, which has no frontend: ignored"),
                );
            }
        }
        for (name, backends) in json_backends {
            if config.services.contains_key(name) {
                continue;
            }
            for b in backends.values() {
                diags.warning(
                    b.source.as_str(),
                    None,
                    format!("backend of service {name:?}, which has no frontend: ignored"),
                );
            }
        }
        config
    }
}

/// Two services claiming one IPVS service, two routes with one prefix.
fn check_conflicts(config: &Config, diags: &mut Diagnostics) {
    // Hashed with fixed keys: deterministic, and no ordered map is needed to
    // find who claimed a key before.
    type Fixed = std::hash::BuildHasherDefault<std::hash::DefaultHasher>;
    let mut claimed: std::collections::HashMap<ServiceKey, &Service, Fixed> =
        std::collections::HashMap::with_capacity_and_hasher(
            4 * config.services.len(),
            Fixed::default(),
        );
    for svc in config.services.values() {
        for key in svc.frontend.service_keys() {
            if let Some(other) = claimed.insert(key, svc) {
                diags.error(
                    svc.source.as_str(),
                    None,
                    format!(
                        "{key} is claimed by both service {:?} ({}) and service {:?} ({})",
                        other.name, other.source, svc.name, svc.source
                    ),
                );
            }
        }
    }
    let mut prefixes: BTreeMap<RouteClaim, &Route> = BTreeMap::new();
    for route in config.routes.values() {
        let mut reported = Vec::new();
        for claim in route.claims() {
            if let Some(other) = prefixes.insert(claim, route) {
                if reported.contains(&other.name) {
                    continue;
                }
                reported.push(other.name.clone());
                let what = match claim {
                    RouteClaim::Default(_)
                        if other.gateway.is_none() && route.gateway.is_none() =>
                    {
                        "the default route".to_string()
                    }
                    claim => claim.to_string(),
                };
                diags.error(
                    route.source.as_str(),
                    None,
                    format!(
                        "routes {:?} ({}) and {:?} ({}) both claim {what}",
                        other.name, other.source, route.name, route.source
                    ),
                );
            }
        }
    }
}

/// Parses an overlay tree (the etcd layout). Overlay input is lenient: a
/// malformed key is skipped with a warning naming it, and counted, so one bad
/// publisher cannot take down every service. Frontends in the overlay are
/// ignored (the repo defines services).
pub fn parse_overlay(tree: &Tree) -> (Overlay, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut overlay = Overlay::default();
    for (path, why) in &tree.unreadable {
        diags.warning(overlay_name(path), None, format!("cannot read: {why}"));
        overlay.skipped += 1;
    }
    // The backends of one service are consecutive in path order: they are
    // gathered here and added to `overlay.backends` together.
    let mut group: Option<(&str, BTreeMap<String, Backend>)> = None;
    for (path, bytes) in &tree.files {
        // Overlay keys are named `overlay:<key>` in diagnostics and
        // provenance, so they never read as a config repo file.
        let file = overlay_name(path);
        let mut local = Diagnostics::default();
        let mut r = Reporter {
            file: &file,
            diags: &mut local,
            failed: false,
        };
        let backend = read_overlay_key(&mut r, &mut overlay, path, bytes);
        let failed = r.failed;
        if failed {
            overlay.skipped += 1;
            local.warning(file.as_str(), None, "skipped");
        }
        diags.extend(local.into_warnings());
        if let Some((svc, name, b)) = backend {
            if group.as_ref().is_none_or(|(g, _)| *g != svc) {
                add_backends(&mut overlay, group.take());
                group = Some((svc, BTreeMap::new()));
            }
            if let Some((_, backends)) = &mut group {
                backends.insert(
                    name.to_string(),
                    Backend {
                        name: name.to_string(),
                        source: file,
                        endpoints: b.endpoints,
                        weight: b.weight,
                        weight_given: b.weight_given,
                        healthcheck: b.healthcheck,
                        thresholds: b.thresholds,
                    },
                );
            }
        }
    }
    add_backends(&mut overlay, group);
    diags.sort();
    (overlay, diags)
}

/// Reads one overlay key: a route goes into `overlay`, a backend is returned
/// (service, name, what its file holds); anything else is warned about.
fn read_overlay_key<'t>(
    r: &mut Reporter,
    overlay: &mut Overlay,
    path: &'t str,
    bytes: &[u8],
) -> Option<(&'t str, &'t str, EndpointFile)> {
    match classify(path) {
        Entry::Backend(svc, name) => {
            check_name(r, "backend", name);
            if let Some(file) = json_endpoints(r, bytes, false, false)
                && !r.failed
            {
                return Some((svc, name, file));
            }
        }
        Entry::Healthcheck(svc) => {
            r.warning(
                None,
                format!(
                    "overlay health check for service {svc:?} ignored: the config repo defines health checks"
                ),
            );
        }
        Entry::Fallback(svc) => {
            r.warning(
                None,
                format!(
                    "overlay fallback for service {svc:?} ignored: the config repo defines fallbacks"
                ),
            );
        }
        Entry::RouteJson(name) => {
            check_name(r, "route", name);
            if let Some(route) = json_route(r, name, bytes, false)
                && !r.failed
            {
                overlay.routes.insert(name.to_string(), route);
            }
        }
        Entry::Frontend(svc) => {
            r.warning(
                None,
                format!(
                    "overlay frontend for service {svc:?} ignored: the config repo defines services"
                ),
            );
        }
        Entry::EditorFile => {}
        Entry::Defaults => {
            r.warning(
                None,
                "ignored: the defaults come from the config repo, never from the overlay",
            );
        }
        _ => r.warning(None, "ignored: not part of the overlay layout"),
    }
    None
}

/// Adds the gathered backends of one service to `overlay.backends`.
fn add_backends(overlay: &mut Overlay, group: Option<(&str, BTreeMap<String, Backend>)>) {
    if let Some((svc, mut backends)) = group {
        match overlay.backends.get_mut(svc) {
            Some(all) => all.append(&mut backends),
            None => {
                overlay.backends.insert(svc.to_string(), backends);
            }
        }
    }
}

/// How an overlay key is named in diagnostics and provenance.
fn overlay_name(key: &str) -> String {
    let mut name = String::with_capacity(8 + key.len());
    name.push_str("overlay:");
    name.push_str(key);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_yaml_route_with_a_bad_name_is_left_out() {
        let mut t = Tree::new("t");
        t.insert("routes/bad name.yaml", "prefix: 10.0.0.0/8\nmethod: masq\n");
        t.insert(
            "routes/bad name2",
            r#"{"Prefix": "10.0.0.0/8", "IPVSMethod": "masq"}"#,
        );
        let (config, diags) = parse_config(&t);
        assert!(config.routes.is_empty(), "{:?}", config.routes);
        assert_eq!(diags.errors().count(), 2, "{diags:?}");
    }

    #[test]
    fn service_files_read_ahead_on_two_threads_give_what_reading_in_turn_gives() {
        let mut t = Tree::new("t");
        t.insert("clusterf.yaml", "scheduler: wlc\nmethod: masq\n");
        for i in 0..40 {
            let text = match i % 8 {
                // Valid, through the fast reader and through serde-saphyr.
                0 => format!(
                    "frontend: {{ipv4: 10.0.0.{i}, tcp: 80}}\nbackends:\n  a: {{ipv4: 10.1.0.{i}, tcp: 8080}}\n"
                ),
                1 => format!(
                    "frontend: {{ipv4: \"10.0.0.{i}\", tcp: 80}} # q\nbackends: {{a: {{ipv4: 10.1.0.{i}, tcp: 81}}}}\n"
                ),
                // Errors with positions, several per file.
                2 => format!(
                    "frontend: {{ipv4: 10.0.0.{i}, tcp: 70000}}\nbackends:\n  a: {{ipv4: 10.1.0.999, tcp: 8080, weight: -1}}\n"
                ),
                3 => "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbogus: 1\nother: 2\n".to_string(),
                4 => "frontend: [unclosed\n".to_string(),
                // The same frontend as another file.
                5 => "frontend: {ipv4: 10.0.0.0, tcp: 80}\n".to_string(),
                6 => "\u{ff}not utf-8".to_string(),
                _ => format!("frontend: {{ipv4: 10.0.0.{i}, udp: 53}}\nscheduler: nosuch\n"),
            };
            t.insert(format!("services/s{i:02}.yaml"), text);
        }
        // One service defined twice, a bad name, a JSON-layout service.
        t.insert("services/s00.yml", "frontend: {ipv4: 10.0.1.1, tcp: 80}\n");
        t.insert(
            "services/bad name.yaml",
            "frontend: {ipv4: 10.0.1.2, tcp: 80}\n",
        );
        t.insert("services/j/frontend", r#"{"IPv4": "10.0.1.3", "TCP": 80}"#);
        assert_eq!(read_services_ahead(&t, 2).len(), 42);
        let ahead = parse_config_ahead(&t, 2);
        let in_turn = parse_config_ahead(&t, usize::MAX);
        assert!(ahead.1.errors().count() > 10, "{:?}", ahead.1);
        assert_eq!(ahead.0, in_turn.0);
        assert_eq!(ahead.1, in_turn.1);
    }
}
