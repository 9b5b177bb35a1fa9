//! Whole trees: [`parse_config`] and [`parse_overlay`] read every file of a
//! tree by its place in the layout and combine them (groups of backends,
//! one layout per service, conflicts between files); [`holds_config_files`]
//! tells a config from no config; [`ServiceReader`] hands a config's
//! services out one at a time, in name order, after its defaults and
//! routes. Reading and validating one file is the readers' (`json`,
//! `yaml`); no file format here.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::ahead::{Ahead, ReadService, YamlFile};
use super::check::{dns_without_udp, fwmark_without_port};
use super::fallback::fits_service;
use super::json::{json_endpoints, json_fallback, json_healthcheck, json_route};
use super::layout::{Entry, classify, misplaced};
use super::types::{Backend, Config, Fallback, HealthCheck, Overlay, Route, RouteClaim, Service};
use super::validate::{EndpointFile, Reporter, check_name};
use super::yaml::{yaml_defaults, yaml_route};
use crate::diag::{Diagnostics, Pos};
use crate::health::Probe;
use crate::model::ServiceKey;
use crate::tree::Tree;

/// Whether a config tree holds any file of the config layout (read or not):
/// `clusterf.yaml`, something under `services/` or `routes/` that the layout
/// reads. A tree without one (empty, only a README) is no config at all,
/// never an empty config that deletes every service.
pub fn holds_config_files(tree: &Tree) -> bool {
    let layout = |path: &str| !matches!(classify(path), Entry::Other | Entry::EditorFile);
    tree.files.iter().any(|f| layout(f.path())) || tree.unreadable.keys().any(|p| layout(p))
}

/// Parses and validates a config repo tree. The config is usable only when
/// the diagnostics hold no errors.
pub fn parse_config(tree: &Tree) -> (Config, Diagnostics) {
    parse_config_ahead(tree, READ_AHEAD, WINDOW)
}

/// [`parse_config`], reading the YAML service files ahead on a helper
/// thread, at most `window` ahead, when there are at least `ahead` of them.
fn parse_config_ahead(tree: &Tree, ahead: usize, window: usize) -> (Config, Diagnostics) {
    let (mut config, reader) = ServiceReader::start_ahead(tree, Vec::new(), ahead, window);
    let mut services = Vec::new();
    let diags = reader.each(|svc| services.push((svc.name.clone(), svc)));
    // In name order and unique: built in bulk.
    config.services = services.into_iter().collect();
    (config, diags)
}

/// Below this many YAML service files, each is read in its turn: the
/// helper costs about what it saves at 2,000 (`render` of 1k, 2k and 4k
/// files on two cores: 19.3, 33.1, 61.3 ms in turn; 20.8, 33.8, 53.5 ms
/// with the helper; docs/benchmarks.md, session 15).
const READ_AHEAD: usize = 2048;

/// How many YAML service files may be read ahead of the service handed
/// out: what is held parsed beside the caller's work.
const WINDOW: usize = 1024;

/// A config tree's services, handed out one at a time in name order, after
/// the rest of the tree ([`ServiceReader::start`] returns the defaults and
/// routes, complete): a caller that compiles each service and drops it
/// never holds the parsed config whole. Services and diagnostics are
/// [`parse_config`]'s (which is this reader, collected).
pub struct ServiceReader<'t> {
    files: ConfigFiles<'t>,
    diags: Diagnostics,
    /// The YAML service files, by name (path order within a name); shared
    /// with the helper thread of [`ServiceReader::each`].
    yaml: Arc<Ahead<'t>>,
    /// Whether [`ServiceReader::each`] reads ahead on a helper thread.
    help: bool,
    /// The last service (name, source) to claim each IPVS service.
    claimed: HashMap<ServiceKey, (&'t str, &'t str), Fixed>,
}

/// Hashed with fixed keys: deterministic.
type Fixed = std::hash::BuildHasherDefault<std::hash::DefaultHasher>;

impl<'t> ServiceReader<'t> {
    /// Reads every file of `tree` but the YAML service files, and returns
    /// the config without its services (defaults, routes) and the reader of
    /// the services. `contents`: the tree's file contents taken out of it,
    /// in path order (each dropped once read), or empty to read the tree's.
    pub fn start(tree: &'t Tree, contents: Vec<Vec<u8>>) -> (Config, ServiceReader<'t>) {
        Self::start_ahead(tree, contents, READ_AHEAD, WINDOW)
    }

    fn start_ahead(
        tree: &'t Tree,
        contents: Vec<Vec<u8>>,
        ahead: usize,
        window: usize,
    ) -> (Config, ServiceReader<'t>) {
        let mut diags = Diagnostics::default();
        for (path, why) in &tree.unreadable {
            diags.error(path.as_str(), None, format!("cannot read: {why}"));
        }
        let mut files = ConfigFiles::default();
        let mut yaml = Vec::new();
        let mut contents = contents.into_iter();
        for (path, bytes) in tree.files.iter_plain() {
            let bytes = match contents.next() {
                Some(taken) => Cow::Owned(taken),
                None => Cow::Borrowed(bytes),
            };
            let mut r = Reporter {
                file: path,
                diags: &mut diags,
                failed: false,
            };
            if let Entry::ServiceYaml(name) = classify(path) {
                check_name(&mut r, "service", name);
                yaml.push(YamlFile { name, path, bytes });
            } else {
                files.read(&mut r, path, &bytes);
            }
        }
        files.end_group();
        // Stable: path order within a name (`.yaml` before `.yml`).
        yaml.sort_by(|a, b| a.name.cmp(b.name));
        check_route_conflicts(&files.config, &mut diags);
        let config = std::mem::take(&mut files.config);
        let reader = ServiceReader {
            help: yaml.len() >= ahead,
            files,
            diags,
            yaml: Arc::new(Ahead::new(yaml, window)),
            claimed: HashMap::default(),
        };
        (config, reader)
    }

    /// Hands every service to `f` in name order, as [`next_service`] would
    /// one at a time, while a helper thread reads the YAML service files
    /// ahead (when there are many); then [`finish`]'s diagnostics.
    ///
    /// [`next_service`]: ServiceReader::next_service
    /// [`finish`]: ServiceReader::finish
    pub fn each(mut self, mut f: impl FnMut(Service)) -> Diagnostics {
        let two = self.help && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        if !two {
            while let Some(svc) = self.next_service() {
                f(svc);
            }
            return self.finish();
        }
        let yaml = Arc::clone(&self.yaml);
        std::thread::scope(|scope| {
            let helper = scope.spawn(|| yaml.help());
            // `f` may panic: the helper stops then too.
            let stop = yaml.stop_on_drop();
            while let Some(svc) = self.next_service() {
                f(svc);
            }
            drop(stop);
            helper.thread().unpark();
            // The helper reads within catch_unwind: it does not panic.
            let _ = helper.join();
        });
        self.finish()
    }

    /// The next service in name order; `None` at the end.
    pub fn next_service(&mut self) -> Option<Service> {
        loop {
            let yaml = self.peek_yaml();
            let json = self.files.frontends.first_key_value().map(|(n, _)| *n);
            let name = match (yaml, json) {
                (Some(y), Some(j)) => y.min(j),
                (Some(n), None) | (None, Some(n)) => n,
                (None, None) => return None,
            };
            if let Some((svc, source)) = self.service(name) {
                self.claim(&svc, name, source);
                return Some(svc);
            }
        }
    }

    /// The name of the next YAML service file.
    fn peek_yaml(&self) -> Option<&'t str> {
        self.yaml.peek().map(|(name, _)| name)
    }

    /// The next YAML service file, read.
    fn take_yaml(&mut self) -> Option<(&'t str, ReadService)> {
        self.yaml.take()
    }

    /// The service `name` (YAML layout first, then JSON), with its source;
    /// `None` when neither layout gives one. Its files of the other layout
    /// are reported, or taken out so that none is warned about.
    fn service(&mut self, name: &'t str) -> Option<(Service, &'t str)> {
        let mut found: Option<(Service, &'t str)> = None;
        while self.peek_yaml() == Some(name) {
            let Some((path, (svc, diags))) = self.take_yaml() else {
                break;
            };
            self.diags.extend(diags);
            if let Some(svc) = svc
                && let Some((prev, _)) = found.replace((svc, path))
            {
                let why = format!("service {name:?} is also defined by {}", prev.source);
                self.diags.error(path, None, why);
            }
        }
        let json = match self.files.frontends.first_key_value() {
            Some((n, _)) if *n == name => self.files.frontends.pop_first().map(|(_, f)| f),
            _ => None,
        };
        let files = &mut self.files;
        let svc = match (found, json) {
            (Some((svc, path)), json) => {
                files.check_layout(&svc, json.as_ref().map(|(f, _)| *f), &mut self.diags);
                Some((svc, path))
            }
            (None, Some((path, file))) => {
                Some((files.json_service(name, path, file, &mut self.diags), path))
            }
            (None, None) => None,
        };
        if svc.is_some() {
            files.healthchecks.remove(name);
            files.fallbacks.remove(name);
            files.json_backends.remove(name);
        }
        svc
    }

    /// Two services claiming one IPVS service: the later one (in name
    /// order) is reported.
    fn claim(&mut self, svc: &Service, name: &'t str, source: &'t str) {
        debug_assert_eq!(svc.source, source);
        for key in svc.frontend.service_keys() {
            if let Some((other, other_source)) = self.claimed.insert(key, (name, source)) {
                self.diags.error(
                    source,
                    None,
                    format!(
                        "{key} is claimed by both service {other:?} ({other_source}) and service {name:?} ({source})",
                    ),
                );
            }
        }
    }

    /// The diagnostics of the whole tree, sorted, once every service was
    /// handed out (what is left of the JSON layout has no service).
    pub fn finish(mut self) -> Diagnostics {
        while self.next_service().is_some() {}
        let ConfigFiles {
            fallbacks,
            healthchecks,
            json_backends,
            ..
        } = self.files;
        let diags = &mut self.diags;
        for (name, (file, _)) in fallbacks {
            diags.warning(
                file.as_str(),
                None,
                format!("fallback of service {name:?}, which has no frontend: ignored"),
            );
        }
        for (name, c) in healthchecks {
            diags.warning(
                c.file.as_str(),
                None,
                format!("health check of service {name:?}, which has no frontend: ignored"),
            );
        }
        for (name, backends) in json_backends {
            for b in backends.values() {
                diags.warning(
                    b.source.as_str(),
                    None,
                    format!("backend of service {name:?}, which has no frontend: ignored"),
                );
            }
        }
        self.diags.sort();
        self.diags
    }
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
    frontends: BTreeMap<&'t str, (&'t str, EndpointFile)>,
    /// JSON layout: backends by service.
    json_backends: BTreeMap<&'t str, BTreeMap<String, Backend>>,
    /// JSON layout: health check files by service.
    healthchecks: BTreeMap<&'t str, JsonCheck>,
    /// JSON layout: fallback files by service, with their file (`None`:
    /// the file has errors, reported) and whether they name a port.
    fallbacks: BTreeMap<&'t str, (String, Option<JsonFallback>)>,
    /// The backend files of one service are consecutive in path order: they
    /// are gathered here and added to `json_backends` together.
    group: Option<(&'t str, BTreeMap<String, Backend>)>,
    /// The file the defaults were read from.
    defaults_file: Option<&'t str>,
    /// Entries outside the layout reported as mistakes (`service/`).
    misplaced: BTreeSet<&'t str>,
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
            // Read by `ServiceReader`, in name order.
            Entry::ServiceYaml(_) => {}
            Entry::Frontend(svc) => {
                check_name(r, "service", svc);
                if let Some(file) = json_endpoints(r, bytes, true, true) {
                    self.frontends.insert(svc, (path, file));
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

    /// A YAML service lives in exactly one layout: its name's files of the
    /// JSON layout (`frontend`: the frontend file's path) are an error.
    fn check_layout(&self, svc: &Service, frontend: Option<&str>, diags: &mut Diagnostics) {
        let name = svc.name.as_str();
        let json_files: Vec<String> = frontend
            .map(str::to_string)
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

    /// A JSON layout service: its frontend file (`path`, as read) with its
    /// backends, health check and fallback.
    fn json_service(
        &mut self,
        name: &str,
        path: &str,
        file: EndpointFile,
        diags: &mut Diagnostics,
    ) -> Service {
        let frontend = file.endpoints;
        let healthcheck = self.healthchecks.remove(name).and_then(|c| {
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
        let mut svc = Service {
            name: name.to_string(),
            source: path.to_string(),
            frontend,
            scheduler: file.service.scheduler,
            persistence: file.service.persistence,
            healthcheck,
            backends: self.json_backends.remove(name).unwrap_or_default(),
            ipvs: file.service.ipvs,
            fallback: None,
            default_weight: file.service.default_weight,
        };
        if let Some((file, Some((fallback, ports_given)))) = self.fallbacks.remove(name) {
            let mut r = Reporter {
                file: &file,
                diags,
                failed: false,
            };
            if fits_service(&mut r, None, ports_given, &fallback, &svc) {
                svc.fallback = Some(fallback);
            }
        }
        svc
    }
}

/// Two routes with one prefix.
fn check_route_conflicts(config: &Config, diags: &mut Diagnostics) {
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
    let mut group: Option<(String, BTreeMap<String, Backend>)> = None;
    for f in &tree.files {
        let (path, bytes) = (f.path(), f.data());
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
            if group.as_ref().is_none_or(|(g, _)| g != svc) {
                add_backends(&mut overlay, group.take());
                group = Some((svc.to_string(), BTreeMap::new()));
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
fn add_backends(overlay: &mut Overlay, group: Option<(String, BTreeMap<String, Backend>)>) {
    if let Some((svc, mut backends)) = group {
        match overlay.backends.get_mut(&svc) {
            Some(all) => all.append(&mut backends),
            None => {
                overlay.backends.insert(svc, backends);
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
    fn service_files_read_ahead_on_a_helper_thread_give_what_reading_in_turn_gives() {
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
        let ahead = parse_config_ahead(&t, 2, WINDOW);
        let in_turn = parse_config_ahead(&t, usize::MAX, WINDOW);
        assert!(ahead.1.errors().count() > 10, "{:?}", ahead.1);
        assert_eq!(ahead.0, in_turn.0);
        assert_eq!(ahead.1, in_turn.1);
        // Windows that split a name's two files, and a service's neighbours.
        for window in [1, 2, 3, 7] {
            assert_eq!(parse_config_ahead(&t, 2, window), in_turn);
        }
        // A taker slower than the helper: the helper reads a window ahead
        // and the taker takes what it read.
        for window in [1, 3, 64] {
            let (mut config, reader) = ServiceReader::start_ahead(&t, Vec::new(), 2, window);
            let mut services = Vec::new();
            let diags = reader.each(|svc| {
                std::thread::sleep(std::time::Duration::from_millis(2));
                services.push((svc.name.clone(), svc));
            });
            config.services = services.into_iter().collect();
            assert_eq!((config, diags), in_turn);
        }
        // A taker that panics: the panic comes through, nothing waits on
        // the helper.
        let (_, reader) = ServiceReader::start_ahead(&t, Vec::new(), 2, 1);
        let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reader.each(|_| panic!("the compile failed"))
        }));
        assert!(taken.is_err());
    }

    /// Paths sort `a-b.yaml` < `a.c/frontend` < `a.yaml` < `a.yml`; names
    /// sort `a` < `a-b` < `a.c`.
    fn names_out_of_path_order() -> Tree {
        let mut t = Tree::new("t");
        let web = "frontend: {ipv4: 10.0.0.1, tcp: 80}\n";
        t.insert("services/a-b.yaml", web);
        t.insert("services/a.yaml", web);
        t.insert("services/a.yml", web.replace("80", "80, udp: 53"));
        t.insert(
            "services/a.c/frontend",
            r#"{"IPv4": "10.0.0.1", "UDP": 53}"#,
        );
        t.insert(
            "services/a.c/backends/x",
            r#"{"IPv4": "10.1.0.1", "UDP": 53}"#,
        );
        // Both layouts; a JSON service after a failed YAML one.
        t.insert("services/b.yaml", "frontend: {ipv4: 10.0.0.2, tcp: 80}\n");
        t.insert("services/b/frontend", r#"{"IPv4": "10.0.0.2", "TCP": 81}"#);
        t.insert("services/c.yaml", "frontend: [\n");
        t.insert("services/c/frontend", r#"{"IPv4": "10.0.0.3", "TCP": 80}"#);
        t.insert("services/ghost/healthcheck", r#"{"Type": "tcp"}"#);
        t
    }

    #[test]
    fn services_come_out_in_name_order_whatever_the_order_of_their_paths() {
        let t = names_out_of_path_order();
        let (config, diags) = parse_config(&t);
        let names: Vec<&str> = config.services.keys().map(String::as_str).collect();
        assert_eq!(names, ["a", "a-b", "a.c", "b", "c"]);
        assert_eq!(config.services["a"].source, "services/a.yml");
        assert_eq!(config.services["c"].source, "services/c/frontend");
        let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
        for line in [
            "services/a-b.yaml: tcp://10.0.0.1:80 is claimed by both service \"a\" (services/a.yml) and service \"a-b\" (services/a-b.yaml)",
            "services/a.c/frontend: udp://10.0.0.1:53 is claimed by both service \"a\" (services/a.yml) and service \"a.c\" (services/a.c/frontend)",
            "services/a.yml: service \"a\" is also defined by services/a.yaml",
            "services/b.yaml: service \"b\" is defined in both layouts: services/b.yaml and services/b/frontend",
            "warning: services/ghost/healthcheck: health check of service \"ghost\", which has no frontend: ignored",
        ] {
            assert!(shown.iter().any(|s| s == line), "{line}\n{shown:#?}");
        }
        // One service at a time, with the routes first: the same.
        let (routes, mut reader) = ServiceReader::start(&t, Vec::new());
        assert!(routes.services.is_empty());
        let mut one_by_one = Vec::new();
        while let Some(svc) = reader.next_service() {
            one_by_one.push(svc);
        }
        assert!(one_by_one.iter().eq(config.services.values()));
        assert_eq!(reader.finish(), diags);
    }
}
