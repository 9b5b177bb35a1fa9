//! The memo of the last render, for the watch loop: a pass finds which
//! parts of the trees changed since the last render, re-parses and
//! recompiles only those services, and splices them into the last
//! [`Compiled`] in place, so a one-backend change costs in proportion to the
//! change, not to the table.
//!
//! A render splits into parts (`render::part`): one per config service
//! (its files and its overlay backend keys) and the global part (defaults,
//! routes, overlay routes, everything else). Parsing a service depends on
//! its own paths only; compiling it on its parse and the global part. So:
//! - a service's paths changed: that service is parsed and compiled again;
//! - the global part's files changed: it is parsed again; if its values
//!   (routes, defaults: rare) changed, every service is parsed and
//!   compiled again from the trees; if not (a README, an editor's
//!   temporary file), only its diagnostics are swapped in;
//! - anything the parts cannot express exactly renders in full, and the
//!   next pass splits again: unreadable entries, an empty config tree, the
//!   overlay appearing or going, two services claiming one IPVS service
//!   (the full render reports the conflict), a diagnostic reported by two
//!   parts (the full render shows it once).
//!
//! The memo keeps no parse: a service's parse lives only while it is
//! compiled (the trees are the one full copy of the inputs, so the
//! overlay is not held twice), and what it keeps per service is small
//! (fingerprints, claims, keys, diagnostics).
//!
//! What changed is found without copies of the trees: the memo keeps each
//! part's [`Fingerprint`] (the sum of its entries'), and a tree keeps the
//! fingerprint of all its files current. Equal tree fingerprints: nothing
//! changed. Otherwise a hint (the overlay paths the etcd watch saw change)
//! names the candidate parts; they are fingerprinted again, and the hint is
//! used only if the old tree's fingerprint, less those parts' old ones plus
//! their new ones, is the new tree's: a change outside the hint would show
//! there. Without a hint, or when the check fails, every entry is hashed
//! once to fingerprint every part. A hint costs time when wrong, never
//! correctness.
//!
//! Holds to ARCHITECTURE.md's "an incremental render is a full render"
//! (checked by `tests/incremental.rs`). Pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::compile::{self, Options};
use crate::config::{self, Backend, Config, Overlay, Service};
use crate::diag::{Diagnostic, Diagnostics};
use crate::health::HealthConfig;
use crate::model::{IpvsState, ServiceKey};
use crate::tree::{File, Fingerprint, Tree};

use super::Compiled;
use super::part::{self, Part};

/// What the last [`Memo::render`] did (for tests, benches and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Neither tree changed: the last render was returned as it is.
    Unchanged,
    /// Only some services' paths changed: those were parsed and compiled
    /// again and spliced in.
    Services(usize),
    /// The global part changed: it was parsed again, and every service
    /// parsed and compiled again from the trees.
    Global,
    /// Everything was parsed and compiled part by part (first render, or
    /// after a full render).
    Split,
    /// Rendered in full with [`super::render`]: the parts could not express
    /// the result exactly.
    Full,
}

/// The last render and what it was made of; see the module doc.
pub struct Memo {
    opts: Options,
    last: Option<Last>,
    /// Increases whenever the rendered state (or its health checks) may
    /// have changed.
    generation: u64,
    work: Work,
    /// The IPVS services the last render may have changed; `None`: any.
    touched: Option<BTreeSet<ServiceKey>>,
}

/// What the memo keeps of the last render's inputs: no copy of the trees
/// (an etcd watcher patches its tree in place when nobody else holds it).
struct Last {
    /// The config tree's description (it shows in a render of a tree
    /// without config files).
    config_description: String,
    config: Seen,
    /// `None` without an overlay.
    overlay: Option<Seen>,
    rendered: Compiled,
    /// `None`: the last render was a full one.
    parts: Option<Parts>,
}

/// What the memo keeps of one input tree.
struct Seen {
    print: Fingerprint,
    unreadable: BTreeMap<String, String>,
}

impl Seen {
    fn of(tree: &Tree) -> Seen {
        Seen {
            print: tree.files.fingerprint(),
            unreadable: tree.unreadable.clone(),
        }
    }

    fn same(&self, tree: &Tree) -> bool {
        self.print == tree.files.fingerprint() && self.unreadable == tree.unreadable
    }
}

/// The fingerprints of one part in each tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Prints {
    config: Fingerprint,
    overlay: Fingerprint,
}

/// The parts of a render, where `rendered` holds their values.
struct Parts {
    services: BTreeMap<String, ServicePart>,
    /// IPVS service key -> the config service whose frontend claims it.
    claims: HashMap<ServiceKey, String>,
    /// Diagnostics of parsing the global part of both trees.
    global_parse_diags: Vec<Diagnostic>,
    /// Diagnostics every compile reports whatever its services (overlay
    /// routes overridden by repo routes); sorted.
    global_compile_diags: Vec<Diagnostic>,
    /// The global part's fingerprints.
    global_prints: Prints,
    /// The IPVS services the update under way changed.
    touched: BTreeSet<ServiceKey>,
    /// The global part alone (routes, defaults; no services, no backends):
    /// one service at a time is moved in to compile it.
    scratch_config: Config,
    scratch_overlay: Overlay,
}

/// One config service's share of the render.
#[derive(Default)]
struct ServicePart {
    /// Parsing its config files and overlay keys; sorted, deduplicated.
    parse_diags: Vec<Diagnostic>,
    /// Everything it reports (parse and compile, less the global compile
    /// diagnostics); sorted, deduplicated, and in `rendered.diags`.
    diags: Vec<Diagnostic>,
    /// The IPVS services its frontend claims.
    claims: Vec<ServiceKey>,
    /// The IPVS services it put in the state.
    keys: Vec<ServiceKey>,
    /// Its files' and keys' fingerprints.
    prints: Prints,
}

/// The parts cannot express the result exactly: render in full.
struct Fallback;

impl Memo {
    /// A memo for renders with these compile options (fixed: other options
    /// need another memo).
    pub fn new(opts: Options) -> Memo {
        Memo {
            opts,
            last: None,
            generation: 0,
            work: Work::Full,
            touched: None,
        }
    }

    /// Renders the trees, reusing what did not change since the last call.
    /// Equal to `render::render(config, overlay, opts)`, less its parsed
    /// config and overlay (`Rendered::into_compiled`).
    pub fn render(&mut self, config: &Tree, overlay: Option<&Tree>) -> &Compiled {
        self.render_hinted(config, overlay, None)
    }

    /// As [`Memo::render`], with a hint: overlay paths that may have
    /// changed since the last call (checked, see the module doc: a wrong or
    /// incomplete hint costs time, never correctness).
    pub fn render_hinted(
        &mut self,
        config: &Tree,
        overlay: Option<&Tree>,
        hint: Option<&BTreeSet<String>>,
    ) -> &Compiled {
        let opts = &self.opts;
        let last = match self.last.take() {
            None => {
                let last = Last::split(config, overlay, opts);
                self.work = last.work_of_split();
                self.generation += 1;
                last
            }
            Some(mut last) => {
                let (work, changed) = last.update(config, overlay, hint, opts);
                self.work = work;
                if changed {
                    self.generation += 1;
                }
                last
            }
        };
        let last = self.last.insert(last);
        let touched = last.parts.as_mut().map(|p| std::mem::take(&mut p.touched));
        self.touched = match self.work {
            Work::Unchanged => Some(BTreeSet::new()),
            Work::Services(_) => touched,
            Work::Global | Work::Split | Work::Full => None,
        };
        &last.rendered
    }

    /// The IPVS services whose state or health check the last render may
    /// have changed (added, edited or gone); `None`: any of them.
    pub fn touched(&self) -> Option<&BTreeSet<ServiceKey>> {
        self.touched.as_ref()
    }

    /// The last render, if any.
    pub fn rendered(&self) -> Option<&Compiled> {
        self.last.as_ref().map(|l| &l.rendered)
    }

    /// Changes whenever the rendered state or its health checks may have
    /// changed: equal generations mean an equal state and checks.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What the last render did.
    pub fn work(&self) -> Work {
        self.work
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }
}

impl Last {
    /// Renders part by part, or in full when the parts cannot.
    fn split(config: &Tree, overlay: Option<&Tree>, opts: &Options) -> Last {
        let (rendered, parts) = match split(config, overlay, opts) {
            Ok((mut rendered, parts)) => {
                rendered.config_hash = config.content_hash();
                rendered.overlay_hash = overlay.map(Tree::content_hash);
                (rendered, Some(parts))
            }
            Err(Fallback) => (super::render(config, overlay, opts).into_compiled(), None),
        };
        Last {
            config_description: config.source.description.clone(),
            config: Seen::of(config),
            overlay: overlay.map(Seen::of),
            rendered,
            parts,
        }
    }

    /// Brings the render up to date with the new trees: what it did, and
    /// whether the state may have changed.
    fn update(
        &mut self,
        config: &Tree,
        overlay: Option<&Tree>,
        hint: Option<&BTreeSet<String>>,
        opts: &Options,
    ) -> (Work, bool) {
        // The overlay's old fingerprint, when it changed.
        let overlay_change = match (&self.overlay, overlay) {
            (None, None) => None,
            (Some(old), Some(new)) => (!old.same(new)).then_some(old.print),
            // The overlay appeared or went.
            _ => return self.resplit(config, overlay, opts),
        };
        // The source's description only shows in a render of a tree without
        // config files (which renders in full below).
        let source_changed = self.config_description != config.source.description;
        let config_same = self.config.same(config);
        if config_same
            && overlay_change.is_none()
            && (config::holds_config_files(config) || !source_changed)
        {
            return (Work::Unchanged, false);
        }
        self.config_description
            .clone_from(&config.source.description);
        if !config_same {
            self.config = Seen::of(config);
            self.rendered.config_hash = config.content_hash();
        }
        if let (Some(_), Some(new)) = (overlay_change, overlay) {
            self.overlay = Some(Seen::of(new));
            self.rendered.overlay_hash = Some(new.content_hash());
        }
        let Some(parts) = self.parts.as_mut().filter(|_| splittable(config, overlay)) else {
            return self.resplit(config, overlay, opts);
        };
        let mut changed = Changed::default();
        if !config_same {
            changed.walk(config, Side::Config, parts);
        }
        if let (Some(old_print), Some(overlay)) = (overlay_change, overlay) {
            match hint.and_then(|h| hinted_services(overlay, old_print, h, parts)) {
                Some(services) => changed.note(services, Side::Overlay, parts),
                None => changed.walk(overlay, Side::Overlay, parts),
            }
        }
        let services: BTreeSet<&str> = changed.services.keys().map(String::as_str).collect();
        let updated = update_parts(
            config,
            overlay,
            &mut self.rendered,
            parts,
            (changed.global, &services),
            opts,
        );
        // Each service's new fingerprints come from its parse.
        match updated {
            Ok(done) => done,
            Err(Fallback) => self.render_in_full(config, overlay, opts),
        }
    }

    /// The parts were partly updated: renders in full; the next change
    /// splits again.
    fn render_in_full(
        &mut self,
        config: &Tree,
        overlay: Option<&Tree>,
        opts: &Options,
    ) -> (Work, bool) {
        self.parts = None;
        self.rendered = super::render(config, overlay, opts).into_compiled();
        (Work::Full, true)
    }

    /// Splits the new trees from scratch.
    fn resplit(&mut self, config: &Tree, overlay: Option<&Tree>, opts: &Options) -> (Work, bool) {
        let old = std::mem::take(&mut self.rendered.state);
        let old_health = std::mem::take(&mut self.rendered.health);
        *self = Last::split(config, overlay, opts);
        let changed = old != self.rendered.state || old_health != self.rendered.health;
        (self.work_of_split(), changed)
    }

    fn work_of_split(&self) -> Work {
        if self.parts.is_some() {
            Work::Split
        } else {
            Work::Full
        }
    }
}

/// Whether the parts can express the trees: config files, and nothing
/// unreadable.
fn splittable(config: &Tree, overlay: Option<&Tree>) -> bool {
    config::holds_config_files(config)
        && config.unreadable.is_empty()
        && overlay.is_none_or(|o| o.unreadable.is_empty())
}

// --- what changed ------------------------------------------------------------

/// One of the two input trees.
#[derive(Clone, Copy)]
enum Side {
    Config,
    Overlay,
}

impl Side {
    fn of(self, prints: &Prints) -> Fingerprint {
        match self {
            Side::Config => prints.config,
            Side::Overlay => prints.overlay,
        }
    }

    fn set(self, prints: &mut Prints, print: Fingerprint) {
        match self {
            Side::Config => prints.config = print,
            Side::Overlay => prints.overlay = print,
        }
    }

    fn classify(self, path: &str) -> Part<'_> {
        match self {
            Side::Config => part::of_config_path(path),
            Side::Overlay => part::of_overlay_path(path),
        }
    }
}

/// Which parts changed since the last render: whether the global part did,
/// and the services that did, with their new fingerprints.
#[derive(Default)]
struct Changed {
    global: bool,
    services: BTreeMap<String, Prints>,
}

impl Changed {
    /// Fingerprints every part of one tree (every entry hashed once) and
    /// notes those that differ from the kept ones.
    fn walk(&mut self, tree: &Tree, side: Side, parts: &Parts) {
        let mut global = Fingerprint::default();
        // Owned names: a compressed tree's paths live only while read.
        let mut services: BTreeMap<String, Fingerprint> = BTreeMap::new();
        for f in &tree.files {
            let print = Fingerprint::of_entry(f.path(), f.data());
            match side.classify(f.path()) {
                Part::Service(svc) => match services.get_mut(svc) {
                    Some(sum) => sum.add(print),
                    None => {
                        services.insert(svc.to_string(), print);
                    }
                },
                Part::Global => global.add(print),
            }
        }
        self.global |= global != side.of(&parts.global_prints);
        // The kept services missing from the tree went.
        let gone = parts
            .services
            .iter()
            .filter(|(s, p)| !side.of(&p.prints).is_empty() && !services.contains_key(s.as_str()))
            .map(|(s, _)| (s.as_str(), Fingerprint::default()));
        let found = services.iter().map(|(s, p)| (s.as_str(), *p));
        self.note(found.chain(gone), side, parts);
    }

    /// Notes the services whose fingerprint on one side differs from the
    /// kept one.
    fn note<'a>(
        &mut self,
        services: impl IntoIterator<Item = (&'a str, Fingerprint)>,
        side: Side,
        parts: &Parts,
    ) {
        for (svc, print) in services {
            let kept = parts
                .services
                .get(svc)
                .map(|p| p.prints)
                .unwrap_or_default();
            if side.of(&kept) == print {
                continue;
            }
            let entry = self.services.entry(svc.to_string()).or_insert(kept);
            side.set(entry, print);
        }
    }
}

/// The services a hint names, with their new overlay fingerprints, if the
/// hint holds every change: `None` when it names the global part or misses
/// a change (the old tree's fingerprint, less the named services' old ones
/// plus their new ones, is not the new tree's).
fn hinted_services<'h>(
    overlay: &Tree,
    old_print: Fingerprint,
    hint: &'h BTreeSet<String>,
    parts: &Parts,
) -> Option<Vec<(&'h str, Fingerprint)>> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for path in hint {
        match part::of_overlay_path(path) {
            Part::Service(svc) => names.insert(svc),
            Part::Global => return None,
        };
    }
    let mut expected = old_print;
    let mut services = Vec::with_capacity(names.len());
    for svc in names {
        let old = parts
            .services
            .get(svc)
            .map(|p| p.prints.overlay)
            .unwrap_or_default();
        let mut new = Fingerprint::default();
        for f in service_overlay_entries(overlay, svc) {
            new.add(Fingerprint::of_entry(f.path(), f.data()));
        }
        expected.sub(old);
        expected.add(new);
        services.push((svc, new));
    }
    (expected == overlay.files.fingerprint()).then_some(services)
}

/// Parses and compiles the changed services again, then, if the global
/// part changed, every service. What it did and whether the state changed.
fn update_parts(
    config: &Tree,
    overlay: Option<&Tree>,
    rendered: &mut Compiled,
    parts: &mut Parts,
    (global, services): (bool, &BTreeSet<&str>),
    opts: &Options,
) -> Result<(Work, bool), Fallback> {
    let global = global && reparse_global(config, overlay, rendered, parts)?;
    let mut changed = false;
    for svc in services {
        changed |= update_service(svc, config, overlay, rendered, parts, opts, !global)?;
    }
    if global {
        changed |= compile_all(config, overlay, rendered, parts, opts)?;
        return Ok((Work::Global, changed));
    }
    Ok((Work::Services(services.len()), changed))
}

// --- splitting -------------------------------------------------------------

/// Renders part by part: the global part parsed on its own, then every
/// service parsed and compiled on its own, one at a time.
fn split(
    config: &Tree,
    overlay: Option<&Tree>,
    opts: &Options,
) -> Result<(Compiled, Parts), Fallback> {
    if !splittable(config, overlay) {
        return Err(Fallback);
    }
    let mut parts = Parts {
        services: BTreeMap::new(),
        claims: HashMap::new(),
        global_parse_diags: Vec::new(),
        global_compile_diags: Vec::new(),
        global_prints: Prints::default(),
        touched: BTreeSet::new(),
        scratch_config: Config::default(),
        scratch_overlay: Overlay::default(),
    };
    parse_global(config, overlay, &mut parts)?;
    // Built from sorted names in one go: B-tree nodes full, where one
    // insert at a time in order leaves them about half full.
    parts.services = service_names(config, overlay)
        .into_iter()
        .map(|svc| (svc, ServicePart::default()))
        .collect();
    let mut rendered = Compiled::default();
    compile_all(config, overlay, &mut rendered, &mut parts, opts)?;
    Ok((rendered, parts))
}

/// The services that have a config file or an overlay key.
fn service_names(config: &Tree, overlay: Option<&Tree>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut add = |svc: &str| {
        if !names.contains(svc) {
            names.insert(svc.to_string());
        }
    };
    for f in &config.files {
        if let Part::Service(svc) = part::of_config_path(f.path()) {
            add(svc);
        }
    }
    for f in overlay.into_iter().flat_map(|o| &o.files) {
        if let Part::Service(svc) = part::of_overlay_path(f.path()) {
            add(svc);
        }
    }
    names
}

/// A tree with the same source and no entries.
fn empty_like(tree: &Tree) -> Tree {
    Tree {
        source: tree.source.clone(),
        files: Default::default(),
        unreadable: BTreeMap::new(),
    }
}

/// Parses one service's config files; the result holds that service only.
fn parse_config_service(
    svc: &str,
    tree: &Tree,
) -> Result<(Option<Service>, Vec<Diagnostic>), Fallback> {
    let (mut cfg, diags) = config::parse_config(tree);
    if !cfg.routes.is_empty()
        || cfg.defaults != config::Defaults::default()
        || cfg.services.keys().any(|k| k != svc)
    {
        return Err(Fallback);
    }
    Ok((cfg.services.remove(svc), sorted(diags.0)))
}

/// One service's overlay parse: its backends (none valid: `None`) and
/// diagnostics.
type OverlayService = (Option<BTreeMap<String, Backend>>, Vec<Diagnostic>);

/// Parses one service's overlay keys.
fn parse_overlay_service(svc: &str, tree: &Tree) -> Result<OverlayService, Fallback> {
    let (mut overlay, diags) = config::parse_overlay(tree);
    if !overlay.routes.is_empty() || overlay.backends.keys().any(|k| k != svc) {
        return Err(Fallback);
    }
    Ok((overlay.backends.remove(svc), sorted(diags.0)))
}

/// Parses the global part of both trees into the scratch config and
/// overlay.
fn parse_global(config: &Tree, overlay: Option<&Tree>, parts: &mut Parts) -> Result<(), Fallback> {
    let mut global = empty_like(config);
    for f in &config.files {
        if part::of_config_path(f.path()) == Part::Global {
            global.files.insert(f.path(), f.data());
        }
    }
    let (cfg, cfg_diags) = config::parse_config(&global);
    if !cfg.services.is_empty() {
        return Err(Fallback);
    }
    let mut overlay_print = Fingerprint::default();
    let (ov, ov_diags) = match overlay {
        Some(overlay) => {
            let mut global = empty_like(overlay);
            for f in &overlay.files {
                if part::of_overlay_path(f.path()) == Part::Global {
                    global.files.insert(f.path(), f.data());
                }
            }
            overlay_print = global.files.fingerprint();
            config::parse_overlay(&global)
        }
        None => (Overlay::default(), Diagnostics::default()),
    };
    if !ov.backends.is_empty() {
        return Err(Fallback);
    }
    parts.global_prints = Prints {
        config: global.files.fingerprint(),
        overlay: overlay_print,
    };
    parts.global_parse_diags = merge(sorted(cfg_diags.0), sorted(ov_diags.0));
    parts.scratch_config = Config {
        services: BTreeMap::new(),
        routes: cfg.routes,
        defaults: cfg.defaults,
    };
    parts.scratch_overlay = Overlay {
        backends: BTreeMap::new(),
        routes: ov.routes,
        skipped: 0,
    };
    Ok(())
}

/// Parses every service of `parts` again from the trees and compiles it;
/// rebuilds the state, the health checks, the claims and the diagnostics.
/// Whether the state changed. The old state is taken apart as the new one
/// is built (each part's old `keys` out, its new fragment in), so the two
/// are never held whole side by side.
fn compile_all(
    config: &Tree,
    overlay: Option<&Tree>,
    rendered: &mut Compiled,
    parts: &mut Parts,
    opts: &Options,
) -> Result<bool, Fallback> {
    let (_, _, g) = compile::compile(
        &parts.scratch_config,
        &parts.scratch_overlay,
        opts,
        &BTreeSet::new(),
    );
    parts.global_compile_diags = sorted(g.0);
    let mut old = std::mem::take(&mut rendered.state);
    let mut old_health = std::mem::take(&mut rendered.health);
    let mut changed = false;
    let mut all: Vec<Diagnostic> = Vec::new();
    // The new state's services, made a map at the end (see `split`).
    let mut built = Vec::with_capacity(old.services.len().max(parts.services.len()));
    parts.claims.clear();
    for (svc, p) in parts.services.iter_mut() {
        let parse = parse_service(svc, config, overlay)?;
        p.claims = reclaim(svc, &[], parse.service.as_ref(), &mut parts.claims)?;
        p.prints = parse.prints;
        p.parse_diags = parse.parse_diags;
        let (fragment, health, diags) = compile_service(
            svc,
            (parse.service, parse.backends),
            &p.parse_diags,
            (&mut parts.scratch_config, &mut parts.scratch_overlay),
            &parts.global_compile_diags,
            opts,
        );
        p.diags = merge(p.parse_diags.clone(), diags);
        let keys: Vec<ServiceKey> = fragment.services.keys().copied().collect();
        changed |= keys != p.keys;
        for key in &p.keys {
            let (was, was_checked) = (old.services.remove(key), old_health.services.remove(key));
            changed |= was.as_ref() != fragment.services.get(key)
                || was_checked.as_ref() != health.services.get(key);
        }
        p.keys = keys;
        built.extend(fragment.services);
        rendered.health.services.extend(health.services);
        all.extend(p.diags.iter().cloned());
    }
    built.sort_unstable_by_key(|(key, _)| *key);
    if built.windows(2).any(|w| w[0].0 == w[1].0) {
        // Two parts put the same IPVS service.
        return Err(Fallback);
    }
    rendered.state.services = built.into_iter().collect();
    // What is left of the old state was a service's that is gone.
    changed |= !old.services.is_empty() || !old_health.services.is_empty();
    all.extend(parts.global_parse_diags.iter().cloned());
    all.extend(parts.global_compile_diags.iter().cloned());
    all.sort();
    if all.windows(2).any(|w| w[0] == w[1]) {
        // Two parts report the same diagnostic: the full render shows it
        // once, which the parts cannot track.
        return Err(Fallback);
    }
    rendered.diags = Diagnostics(all);
    Ok(changed)
}

/// One service's parsed config service and overlay backends.
type ServiceValues = (Option<Service>, Option<BTreeMap<String, Backend>>);

/// Compiles one service: its parse is moved into the scratch config and
/// overlay (the global part) for the compile and dropped after; held back
/// as the full render would, from its parse diagnostics. Its state
/// fragment, the health checks of that fragment, and its diagnostics (less
/// the global ones).
fn compile_service(
    svc: &str,
    (service, backends): ServiceValues,
    parse_diags: &[Diagnostic],
    (scratch_config, scratch_overlay): (&mut Config, &mut Overlay),
    global: &[Diagnostic],
    opts: &Options,
) -> (IpvsState, HealthConfig, Vec<Diagnostic>) {
    if let Some(s) = service {
        scratch_config.services.insert(svc.to_string(), s);
    }
    if let Some(b) = backends {
        scratch_overlay.backends.insert(svc.to_string(), b);
    }
    let held = super::held_back(parse_diags);
    let (state, health, diags) = compile::compile(scratch_config, scratch_overlay, opts, &held);
    scratch_config.services.clear();
    scratch_overlay.backends.clear();
    (state, health, minus(sorted(diags.0), global))
}

// --- updating ----------------------------------------------------------------

/// Parses and compiles one service again and splices it in. `compile`:
/// whether to compile it now (a global update parses and compiles every
/// service after). Whether the state changed.
fn update_service(
    svc: &str,
    config: &Tree,
    overlay: Option<&Tree>,
    rendered: &mut Compiled,
    parts: &mut Parts,
    opts: &Options,
    compile: bool,
) -> Result<bool, Fallback> {
    let parse = parse_service(svc, config, overlay)?;
    let exists = parse.exists;
    let old = parts.services.remove(svc).unwrap_or_default();
    let claims = reclaim(svc, &old.claims, parse.service.as_ref(), &mut parts.claims)?;
    remove_diags(&mut rendered.diags.0, &old.diags)?;
    let mut new = ServicePart {
        parse_diags: parse.parse_diags,
        diags: Vec::new(),
        claims,
        keys: Vec::new(),
        prints: parse.prints,
    };
    if !compile {
        // The global update compiles it, with every other service; if it
        // is gone, its state goes with that recompile.
        new.keys = old.keys;
        if exists {
            parts.services.insert(svc.to_string(), new);
        }
        return Ok(false);
    }
    let values = (parse.service, parse.backends);
    let changed = compile_and_splice(svc, values, old.keys, &mut new, rendered, parts, opts)?;
    if exists {
        parts.services.insert(svc.to_string(), new);
    } else if !new.keys.is_empty() || !new.diags.is_empty() {
        return Err(Fallback);
    }
    Ok(changed)
}

/// One service parsed on its own.
struct ServiceParse {
    service: Option<Service>,
    backends: Option<BTreeMap<String, Backend>>,
    /// Sorted, deduplicated.
    parse_diags: Vec<Diagnostic>,
    /// The fingerprints of its files and keys.
    prints: Prints,
    /// Whether it has any config file or overlay key.
    exists: bool,
}

/// Parses one service's config files and overlay keys.
fn parse_service(
    svc: &str,
    config: &Tree,
    overlay: Option<&Tree>,
) -> Result<ServiceParse, Fallback> {
    let config_tree = service_config_tree(config, svc);
    let overlay_tree = overlay.map(|o| service_overlay_tree(o, svc));
    let (service, mut parse_diags) = if config_tree.files.is_empty() {
        (None, Vec::new())
    } else {
        parse_config_service(svc, &config_tree)?
    };
    let backends = match &overlay_tree {
        Some(t) if !t.files.is_empty() => {
            let (b, d) = parse_overlay_service(svc, t)?;
            parse_diags = merge(parse_diags, d);
            b
        }
        _ => None,
    };
    let overlay_print = overlay_tree
        .as_ref()
        .map(|t| t.files.fingerprint())
        .unwrap_or_default();
    Ok(ServiceParse {
        service,
        backends,
        parse_diags,
        prints: Prints {
            config: config_tree.files.fingerprint(),
            overlay: overlay_print,
        },
        exists: !config_tree.files.is_empty() || !overlay_print.is_empty(),
    })
}

/// Moves a service's claims from its old frontend to its new one; the new
/// claims. Another service claiming one of them: fall back.
fn reclaim(
    svc: &str,
    old: &[ServiceKey],
    service: Option<&Service>,
    claims: &mut HashMap<ServiceKey, String>,
) -> Result<Vec<ServiceKey>, Fallback> {
    for key in old {
        claims.remove(key);
    }
    let new = service
        .map(|s| s.frontend.service_keys())
        .unwrap_or_default();
    for key in &new {
        if claims.insert(*key, svc.to_string()).is_some() {
            return Err(Fallback);
        }
    }
    Ok(new)
}

/// Compiles a service and splices its diagnostics and state fragment in
/// place of the old ones (`old_keys`); whether the state changed.
fn compile_and_splice(
    svc: &str,
    values: ServiceValues,
    old_keys: Vec<ServiceKey>,
    new: &mut ServicePart,
    rendered: &mut Compiled,
    parts: &mut Parts,
    opts: &Options,
) -> Result<bool, Fallback> {
    let (fragment, health, diags) = compile_service(
        svc,
        values,
        &new.parse_diags,
        (&mut parts.scratch_config, &mut parts.scratch_overlay),
        &parts.global_compile_diags,
        opts,
    );
    new.diags = merge(new.parse_diags.clone(), diags);
    insert_diags(&mut rendered.diags.0, &new.diags)?;
    // The health checks are keyed like the state: the same keys with the
    // same states and checks are the same fragment.
    let same = old_keys.len() == fragment.services.len()
        && old_keys
            .iter()
            .zip(fragment.services.iter())
            .all(|(k, (nk, ns))| {
                k == nk
                    && rendered.state.services.get(k) == Some(ns)
                    && rendered.health.services.get(k) == health.services.get(k)
            });
    if same {
        new.keys = old_keys;
        return Ok(false);
    }
    parts.touched.extend(old_keys.iter().copied());
    parts.touched.extend(fragment.services.keys().copied());
    for key in &old_keys {
        rendered.state.services.remove(key);
        rendered.health.services.remove(key);
    }
    new.keys = fragment.services.keys().copied().collect();
    for (key, service) in fragment.services {
        if rendered.state.services.insert(key, service).is_some() {
            return Err(Fallback);
        }
    }
    rendered.health.services.extend(health.services);
    Ok(true)
}

/// The global part's files changed: parses it again. When its values
/// (defaults, routes, the overlay's routes) are as before, only files the
/// parse ignores (a README, an editor's temporary file) or its diagnostics
/// changed: the diagnostics are swapped in and no service compiles again.
/// Whether the values changed (then every service is parsed and compiled
/// again from the trees, `compile_all`: the memo keeps no parse).
fn reparse_global(
    config: &Tree,
    overlay: Option<&Tree>,
    rendered: &mut Compiled,
    parts: &mut Parts,
) -> Result<bool, Fallback> {
    let old_config = std::mem::take(&mut parts.scratch_config);
    let old_overlay = std::mem::take(&mut parts.scratch_overlay);
    let old_diags = std::mem::take(&mut parts.global_parse_diags);
    parse_global(config, overlay, parts)?;
    if parts.scratch_config != old_config || parts.scratch_overlay != old_overlay {
        return Ok(true);
    }
    remove_diags(&mut rendered.diags.0, &old_diags)?;
    insert_diags(&mut rendered.diags.0, &parts.global_parse_diags)?;
    Ok(false)
}

/// One service's config files.
fn service_config_tree(config: &Tree, svc: &str) -> Tree {
    let mut t = empty_like(config);
    let [yaml, yml, dir] = part::config_paths(svc);
    for p in [yaml, yml] {
        if let Some(f) = config.files.get(&p) {
            t.files.insert(&p, f.data());
        }
    }
    for f in config.files.prefixed(&dir) {
        if part::of_config_path(f.path()) == Part::Service(svc) {
            t.files.insert(f.path(), f.data());
        }
    }
    t
}

/// One service's overlay backend keys.
fn service_overlay_tree(overlay: &Tree, svc: &str) -> Tree {
    let mut t = empty_like(overlay);
    for f in service_overlay_entries(overlay, svc) {
        t.files.insert(f.path(), f.data());
    }
    t
}

/// One service's overlay backend keys, in the tree.
fn service_overlay_entries<'t>(overlay: &'t Tree, svc: &str) -> impl Iterator<Item = File<'t>> {
    let prefix = part::overlay_prefix(svc);
    overlay
        .files
        .iter_from(&prefix)
        .take_while(move |f| f.path().starts_with(&prefix))
        .filter(move |f| part::of_overlay_path(f.path()) == Part::Service(svc))
}

// --- sorted diagnostic sets --------------------------------------------------

/// Sorted and deduplicated, as `Diagnostics::sort` leaves them.
fn sorted(mut d: Vec<Diagnostic>) -> Vec<Diagnostic> {
    d.sort();
    d.dedup();
    d
}

/// The union of two sorted sets.
fn merge(a: Vec<Diagnostic>, b: Vec<Diagnostic>) -> Vec<Diagnostic> {
    if b.is_empty() {
        return a;
    }
    let mut all = a;
    all.extend(b);
    sorted(all)
}

/// `a` without the members of the sorted set `b`.
fn minus(a: Vec<Diagnostic>, b: &[Diagnostic]) -> Vec<Diagnostic> {
    if b.is_empty() {
        return a;
    }
    a.into_iter()
        .filter(|d| b.binary_search(d).is_err())
        .collect()
}

/// Removes each of `gone` from the sorted `all`; each must be there.
fn remove_diags(all: &mut Vec<Diagnostic>, gone: &[Diagnostic]) -> Result<(), Fallback> {
    for d in gone {
        match all.binary_search(d) {
            Ok(i) => {
                all.remove(i);
            }
            Err(_) => return Err(Fallback),
        }
    }
    Ok(())
}

/// Inserts each of `new` into the sorted `all`; none may be there already
/// (another part reports it: the full render would show it once).
fn insert_diags(all: &mut Vec<Diagnostic>, new: &[Diagnostic]) -> Result<(), Fallback> {
    for d in new {
        match all.binary_search(d) {
            Ok(_) => return Err(Fallback),
            Err(i) => all.insert(i, d.clone()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An overlay path: mostly backends of the config's services, some of
    /// a service the config lacks, some global.
    fn overlay_path() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => (0u8..4, 0u8..4).prop_map(|(s, b)| format!("services/s{s}/backends/b{b}")),
            1 => (0u8..2).prop_map(|b| format!("services/ghost/backends/b{b}")),
            1 => prop::sample::select(vec![
                "routes/r1".to_string(),
                "services/s1/backends/b0/deeper".to_string(),
            ]),
        ]
    }

    fn overlay_value() -> impl Strategy<Value = String> {
        prop_oneof![
            (1u8..50, 0u8..3).prop_map(|(ip, w)| format!(
                r#"{{"ipv4": "10.1.0.{ip}", "tcp": 80, "weight": {w}}}"#
            )),
            Just("not json".to_string()),
        ]
    }

    /// One step: overlay edits, then what the hint says about them.
    #[derive(Clone, Debug)]
    struct Step {
        edits: Vec<(String, Option<String>)>,
        /// 0: no hint; 1: exact; 2: exact less one; 3: exact plus noise.
        hint: u8,
        noise: Vec<String>,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            prop::collection::vec((overlay_path(), prop::option::of(overlay_value())), 0..5),
            0u8..4,
            prop::collection::vec(overlay_path(), 0..3),
        )
            .prop_map(|(edits, hint, noise)| Step { edits, hint, noise })
    }

    fn config() -> Tree {
        let mut t = Tree::new("config");
        for s in 0..4 {
            t.insert(
                format!("services/s{s}/frontend"),
                format!(r#"{{"ipv4": "10.0.0.{s}", "tcp": 80}}"#),
            );
        }
        t
    }

    proptest! {
        #[test]
        fn hints_right_wrong_or_missing_never_change_the_render(
            initial in prop::collection::vec((overlay_path(), overlay_value()), 0..12),
            steps in prop::collection::vec(step(), 1..8),
        ) {
            let opts = Options::default();
            let config = config();
            let mut overlay = Tree::new("etcd");
            for (p, v) in initial {
                overlay.insert(p, v);
            }
            let mut memo = Memo::new(opts.clone());
            memo.render(&config, Some(&overlay));
            for step in steps {
                let mut exact = BTreeSet::new();
                for (path, value) in &step.edits {
                    match value {
                        Some(v) => overlay.insert(path.clone(), v.clone()),
                        None => {
                            overlay.files.remove(path);
                        }
                    }
                    exact.insert(path.clone());
                }
                let hint = match step.hint {
                    0 => None,
                    1 => Some(exact),
                    2 => {
                        let mut less = exact;
                        less.pop_first();
                        Some(less)
                    }
                    _ => Some(exact.into_iter().chain(step.noise.clone()).collect()),
                };
                let got = memo.render_hinted(&config, Some(&overlay), hint.as_ref()).clone();
                let full = super::super::render(&config, Some(&overlay), &opts);
                prop_assert_eq!(&got.state, &full.state);
                prop_assert_eq!(&got.diags, &full.diags);
                prop_assert_eq!(&got.config_hash, &full.config_hash);
                prop_assert_eq!(&got.overlay_hash, &full.overlay_hash);
            }
        }
    }

    #[test]
    fn a_hint_that_misses_a_change_is_not_trusted() {
        let opts = Options::default();
        let config = config();
        let mut overlay = Tree::new("etcd");
        overlay.insert(
            "services/s0/backends/a",
            r#"{"ipv4": "10.1.0.1", "tcp": 80}"#,
        );
        overlay.insert(
            "services/s1/backends/a",
            r#"{"ipv4": "10.1.0.2", "tcp": 80}"#,
        );
        let mut memo = Memo::new(opts.clone());
        memo.render(&config, Some(&overlay));
        overlay.insert(
            "services/s1/backends/a",
            r#"{"ipv4": "10.1.0.2", "tcp": 80, "weight": 7}"#,
        );
        // The hint names s0 only: the change to s1 shows in the sums.
        let hint = BTreeSet::from(["services/s0/backends/a".to_string()]);
        let got = memo
            .render_hinted(&config, Some(&overlay), Some(&hint))
            .clone();
        assert_eq!(memo.work(), Work::Services(1));
        assert_eq!(
            got.state,
            super::super::render(&config, Some(&overlay), &opts).state
        );
    }
}
