//! The memo of the last render, for the watch loop: a pass diffs the new
//! trees against the last ones, re-parses and recompiles only the services
//! whose files or overlay keys changed, and splices them into the last
//! [`Rendered`] in place, so a one-backend change costs in proportion to the
//! change, not to the table.
//!
//! A render splits into parts (`render::part`): one per config service
//! (its files and its overlay backend keys) and the global part (defaults,
//! routes, overlay routes, everything else). Parsing a service depends on
//! its own paths only; compiling it on its parse and the global part. So:
//! - a service's paths changed: that service is parsed and compiled again;
//! - the global part changed: it is parsed again and every service compiled
//!   again from its kept parse;
//! - anything the parts cannot express exactly renders in full, and the
//!   next pass splits again: unreadable entries, an empty config tree, the
//!   overlay appearing or going, two services claiming one IPVS service
//!   (the full render reports the conflict), a diagnostic reported by two
//!   parts (the full render shows it once).
//!
//! The content hashes of the trees are kept by `render::digest`, hashed
//! during the same diff walk from the last checkpoint before a change.
//!
//! Holds to ARCHITECTURE.md's "an incremental render is a full render"
//! (checked by `tests/incremental.rs`). Pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use crate::compile::{self, Options};
use crate::config::{self, Backend, Config, Overlay, Service};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{IpvsState, ServiceKey};
use crate::tree::Tree;

use super::Rendered;
use super::digest::{Changes, Digest256};
use super::part::{self, Part};

/// What the last [`Memo::render`] did (for tests, benches and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Neither tree changed: the last render was returned as it is.
    Unchanged,
    /// Only some services' paths changed: those were parsed and compiled
    /// again and spliced in.
    Services(usize),
    /// The global part changed: it was parsed again and every service
    /// compiled again (services were not parsed again).
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
    /// Increases whenever the rendered state may have changed.
    generation: u64,
    work: Work,
}

struct Last {
    /// Copies of the last input trees, patched path by path: the memo never
    /// holds the caller's trees (an etcd watcher mutates its tree in place
    /// when nobody else holds it).
    config: Tree,
    overlay: Option<Tree>,
    /// Their content hashes, kept up to date by the diff walk.
    config_digest: Digest256,
    overlay_digest: Option<Digest256>,
    rendered: Rendered,
    /// `None`: the last render was a full one.
    parts: Option<Parts>,
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
    /// Overlay keys skipped in the global part (routes, frontends).
    global_skipped: usize,
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
    /// Its overlay keys skipped as malformed.
    skipped: usize,
    /// The IPVS services its frontend claims.
    claims: Vec<ServiceKey>,
    /// The IPVS services it put in the state.
    keys: Vec<ServiceKey>,
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
        }
    }

    /// Renders the trees, reusing what did not change since the last call.
    /// Equal to `render::render(config, overlay, opts)`.
    pub fn render(&mut self, config: &Tree, overlay: Option<&Tree>) -> &Rendered {
        let opts = &self.opts;
        let last = match self.last.take() {
            None => {
                let last = Last::split(config.clone(), overlay.cloned(), opts);
                self.work = if last.parts.is_some() {
                    Work::Split
                } else {
                    Work::Full
                };
                self.generation += 1;
                last
            }
            Some(mut last) => {
                let (work, changed) = last.update(config, overlay, opts);
                self.work = work;
                if changed {
                    self.generation += 1;
                }
                last
            }
        };
        &self.last.insert(last).rendered
    }

    /// The last render, if any.
    pub fn rendered(&self) -> Option<&Rendered> {
        self.last.as_ref().map(|l| &l.rendered)
    }

    /// Changes whenever the rendered state may have changed: equal
    /// generations mean an equal state.
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
    fn split(config: Tree, overlay: Option<Tree>, opts: &Options) -> Last {
        let (config_digest, config_hash) = Digest256::new(&config);
        let (overlay_digest, overlay_hash) = match &overlay {
            Some(o) => {
                let (d, h) = Digest256::new(o);
                (Some(d), Some(h))
            }
            None => (None, None),
        };
        let (rendered, parts) = match split(&config, overlay.as_ref(), opts) {
            Ok((mut rendered, parts)) => {
                rendered.config_hash = config_hash;
                rendered.overlay_hash = overlay_hash;
                (rendered, Some(parts))
            }
            Err(Fallback) => (super::render(&config, overlay.as_ref(), opts), None),
        };
        Last {
            config,
            overlay,
            config_digest,
            overlay_digest,
            rendered,
            parts,
        }
    }

    /// Brings the render up to date with the new trees: what it did, and
    /// whether the state may have changed.
    fn update(&mut self, config: &Tree, overlay: Option<&Tree>, opts: &Options) -> (Work, bool) {
        // The source's description only shows in a render of a tree without
        // config files (which renders in full below).
        let source_changed = self.config.source.description != config.source.description;
        self.config.source.clone_from(&config.source);
        if self.overlay.is_some() != overlay.is_some() {
            return self.split_anew(config, overlay, opts);
        }
        let mut changes = self.diff_trees(config, overlay);
        if changes.config.hash.is_none()
            && changes.overlay.hash.is_none()
            && (config::holds_config_files(config) || !source_changed)
        {
            return (Work::Unchanged, false);
        }
        self.patch_copies(config, overlay, &mut changes);
        let splittable = self.splittable();
        let Some(parts) = self.parts.as_mut().filter(|_| splittable) else {
            return self.resplit(opts);
        };
        let (global, services) = changes.parts();
        let updated = update_parts(
            &self.config,
            self.overlay.as_ref(),
            &mut self.rendered,
            parts,
            (global, &services),
            opts,
        );
        match updated {
            Ok(done) => done,
            Err(Fallback) => self.render_in_full(opts),
        }
    }

    /// The overlay appeared or went: splits the new trees from scratch.
    fn split_anew(
        &mut self,
        config: &Tree,
        overlay: Option<&Tree>,
        opts: &Options,
    ) -> (Work, bool) {
        let old = std::mem::take(&mut self.rendered.state);
        *self = Last::split(config.clone(), overlay.cloned(), opts);
        let changed = old != self.rendered.state;
        (self.work_of_split(), changed)
    }

    /// One walk over each tree against its copy: the changed paths and the
    /// new hashes.
    fn diff_trees(&mut self, config: &Tree, overlay: Option<&Tree>) -> TreeChanges {
        let config_unreadable = self.config.unreadable != config.unreadable;
        let config_changes =
            self.config_digest
                .diff(&self.config.files, &self.config.unreadable, config);
        let (overlay_changes, overlay_unreadable) =
            match (&mut self.overlay, &mut self.overlay_digest, overlay) {
                (Some(old), Some(digest), Some(new)) => {
                    old.source.clone_from(&new.source);
                    let changes = digest.diff(&old.files, &old.unreadable, new);
                    (changes, old.unreadable != new.unreadable)
                }
                _ => (
                    Changes {
                        paths: Vec::new(),
                        hash: None,
                    },
                    false,
                ),
            };
        TreeChanges {
            config: config_changes,
            config_unreadable,
            overlay: overlay_changes,
            overlay_unreadable,
        }
    }

    /// Patches the copies, and moves the new hashes into the render.
    fn patch_copies(&mut self, config: &Tree, overlay: Option<&Tree>, changes: &mut TreeChanges) {
        patch(
            &mut self.config,
            config,
            &changes.config.paths,
            changes.config_unreadable,
        );
        if let Some(h) = changes.config.hash.take() {
            self.rendered.config_hash = h;
        }
        if let (Some(old), Some(new)) = (&mut self.overlay, overlay) {
            patch(old, new, &changes.overlay.paths, changes.overlay_unreadable);
        }
        if let Some(h) = changes.overlay.hash.take() {
            self.rendered.overlay_hash = Some(h);
        }
    }

    /// Whether the parts can express the copies: config files, and nothing
    /// unreadable.
    fn splittable(&self) -> bool {
        config::holds_config_files(&self.config)
            && self.config.unreadable.is_empty()
            && self
                .overlay
                .as_ref()
                .is_none_or(|o| o.unreadable.is_empty())
    }

    /// The parts were partly updated: renders in full; the next change
    /// splits again.
    fn render_in_full(&mut self, opts: &Options) -> (Work, bool) {
        self.parts = None;
        self.rendered = super::render(&self.config, self.overlay.as_ref(), opts);
        (Work::Full, true)
    }

    /// Splits the (patched) copies again, keeping the hashes.
    fn resplit(&mut self, opts: &Options) -> (Work, bool) {
        let old = std::mem::take(&mut self.rendered.state);
        let (config_hash, overlay_hash) = (
            std::mem::take(&mut self.rendered.config_hash),
            self.rendered.overlay_hash.take(),
        );
        let (rendered, parts) = match split(&self.config, self.overlay.as_ref(), opts) {
            Ok((r, p)) => (r, Some(p)),
            Err(Fallback) => (
                super::render(&self.config, self.overlay.as_ref(), opts),
                None,
            ),
        };
        self.rendered = rendered;
        self.parts = parts;
        self.rendered.config_hash = config_hash;
        self.rendered.overlay_hash = overlay_hash;
        let changed = old != self.rendered.state;
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

/// What one diff walk over both trees found.
struct TreeChanges {
    config: Changes,
    config_unreadable: bool,
    /// Empty without an overlay.
    overlay: Changes,
    overlay_unreadable: bool,
}

impl TreeChanges {
    /// Which parts changed: the global part, and the services.
    fn parts(&self) -> (bool, BTreeSet<&str>) {
        let mut global = false;
        let mut services: BTreeSet<&str> = BTreeSet::new();
        let config = self.config.paths.iter().map(|p| part::of_config_path(p));
        let overlay = self.overlay.paths.iter().map(|p| part::of_overlay_path(p));
        for part in config.chain(overlay) {
            match part {
                Part::Service(s) => {
                    services.insert(s);
                }
                Part::Global => global = true,
            }
        }
        (global, services)
    }
}

/// Parses and compiles the changed services again, then, if the global
/// part changed, every service. What it did and whether the state changed.
fn update_parts(
    config: &Tree,
    overlay: Option<&Tree>,
    rendered: &mut Rendered,
    parts: &mut Parts,
    (global, services): (bool, &BTreeSet<&str>),
    opts: &Options,
) -> Result<(Work, bool), Fallback> {
    let mut changed = false;
    for svc in services {
        changed |= update_service(svc, config, overlay, rendered, parts, opts, !global)?;
    }
    if global {
        changed |= update_global(config, overlay, rendered, parts, opts)?;
        return Ok((Work::Global, changed));
    }
    Ok((Work::Services(services.len()), changed))
}

/// Makes `copy` equal to `new`, given the paths that differ.
fn patch(copy: &mut Tree, new: &Tree, paths: &[String], unreadable: bool) {
    for path in paths {
        match new.files.get(path) {
            Some(bytes) => {
                copy.files.insert(path.clone(), bytes.clone());
            }
            None => {
                copy.files.remove(path);
            }
        }
    }
    if unreadable {
        copy.unreadable.clone_from(&new.unreadable);
    }
}

// --- splitting -------------------------------------------------------------

/// Renders part by part: every service parsed on its own, the global part
/// on its own, then everything compiled.
fn split(
    config: &Tree,
    overlay: Option<&Tree>,
    opts: &Options,
) -> Result<(Rendered, Parts), Fallback> {
    if !config::holds_config_files(config)
        || !config.unreadable.is_empty()
        || overlay.is_some_and(|o| !o.unreadable.is_empty())
    {
        return Err(Fallback);
    }
    let mut parts = Parts {
        services: BTreeMap::new(),
        claims: HashMap::new(),
        global_parse_diags: Vec::new(),
        global_compile_diags: Vec::new(),
        global_skipped: 0,
        scratch_config: Config::default(),
        scratch_overlay: Overlay::default(),
    };
    let mut rendered = Rendered {
        config: Config::default(),
        overlay: Overlay::default(),
        state: IpvsState::default(),
        diags: Diagnostics::default(),
        config_hash: String::new(),
        overlay_hash: None,
    };

    // Config services first: a conflict between them is found before the
    // (larger) overlay is parsed.
    for (svc, tree) in group_by_service(config, part::of_config_path) {
        let (service, diags) = parse_config_service(svc, &tree)?;
        let p = parts.services.entry(svc.to_string()).or_default();
        p.parse_diags = diags;
        if let Some(service) = service {
            p.claims = service.frontend.service_keys();
            for key in &p.claims {
                if parts.claims.insert(*key, svc.to_string()).is_some() {
                    return Err(Fallback);
                }
            }
            rendered.config.services.insert(svc.to_string(), service);
        }
    }
    if let Some(overlay) = overlay {
        for (svc, tree) in group_by_service(overlay, part::of_overlay_path) {
            let (backends, diags, skipped) = parse_overlay_service(svc, &tree)?;
            let p = parts.services.entry(svc.to_string()).or_default();
            p.parse_diags = merge(std::mem::take(&mut p.parse_diags), diags);
            p.skipped = skipped;
            if let Some(b) = backends {
                rendered.overlay.backends.insert(svc.to_string(), b);
            }
        }
    }
    parse_global(config, overlay, &mut rendered, &mut parts)?;
    compile_all(&mut rendered, &mut parts, opts)?;
    Ok((rendered, parts))
}

/// The files of `tree` that belong to one service, as one sub-tree per
/// service (`classify` says which path is whose).
fn group_by_service<'t>(
    tree: &'t Tree,
    classify: impl Fn(&'t str) -> Part<'t>,
) -> BTreeMap<&'t str, Tree> {
    let mut groups: BTreeMap<&str, Tree> = BTreeMap::new();
    for (path, bytes) in &tree.files {
        if let Part::Service(svc) = classify(path) {
            groups
                .entry(svc)
                .or_insert_with(|| empty_like(tree))
                .files
                .insert(path.clone(), bytes.clone());
        }
    }
    groups
}

/// A tree with the same source and no entries.
fn empty_like(tree: &Tree) -> Tree {
    Tree {
        source: tree.source.clone(),
        files: BTreeMap::new(),
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

/// One service's overlay parse: its backends (none valid: `None`),
/// diagnostics and skipped count.
type OverlayService = (Option<BTreeMap<String, Backend>>, Vec<Diagnostic>, usize);

/// Parses one service's overlay keys.
fn parse_overlay_service(svc: &str, tree: &Tree) -> Result<OverlayService, Fallback> {
    let (mut overlay, diags) = config::parse_overlay(tree);
    if !overlay.routes.is_empty() || overlay.backends.keys().any(|k| k != svc) {
        return Err(Fallback);
    }
    Ok((
        overlay.backends.remove(svc),
        sorted(diags.0),
        overlay.skipped,
    ))
}

/// Parses the global part of both trees into `rendered` and the scratch
/// config and overlay.
fn parse_global(
    config: &Tree,
    overlay: Option<&Tree>,
    rendered: &mut Rendered,
    parts: &mut Parts,
) -> Result<(), Fallback> {
    let mut global = empty_like(config);
    for (path, bytes) in &config.files {
        if part::of_config_path(path) == Part::Global {
            global.files.insert(path.clone(), bytes.clone());
        }
    }
    let (cfg, cfg_diags) = config::parse_config(&global);
    if !cfg.services.is_empty() {
        return Err(Fallback);
    }
    let (ov, ov_diags) = match overlay {
        Some(overlay) => {
            let mut global = empty_like(overlay);
            for (path, bytes) in &overlay.files {
                if part::of_overlay_path(path) == Part::Global {
                    global.files.insert(path.clone(), bytes.clone());
                }
            }
            config::parse_overlay(&global)
        }
        None => (Overlay::default(), Diagnostics::default()),
    };
    if !ov.backends.is_empty() {
        return Err(Fallback);
    }
    parts.global_parse_diags = merge(sorted(cfg_diags.0), sorted(ov_diags.0));
    parts.global_skipped = ov.skipped;
    parts.scratch_config = Config {
        services: BTreeMap::new(),
        routes: cfg.routes.clone(),
        defaults: cfg.defaults.clone(),
    };
    parts.scratch_overlay = Overlay {
        backends: BTreeMap::new(),
        routes: ov.routes.clone(),
        skipped: 0,
    };
    rendered.config.routes = cfg.routes;
    rendered.config.defaults = cfg.defaults;
    rendered.overlay.routes = ov.routes;
    Ok(())
}

/// Compiles every service from its kept parse; rebuilds the state, the
/// diagnostics and the skipped count. Whether the state changed.
fn compile_all(
    rendered: &mut Rendered,
    parts: &mut Parts,
    opts: &Options,
) -> Result<bool, Fallback> {
    let (_, g) = compile::compile(
        &parts.scratch_config,
        &parts.scratch_overlay,
        opts,
        &BTreeSet::new(),
    );
    parts.global_compile_diags = sorted(g.0);
    let mut state = IpvsState::default();
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut skipped = parts.global_skipped;
    for (svc, p) in parts.services.iter_mut() {
        let (fragment, diags) = compile_service(
            svc,
            &p.parse_diags,
            rendered,
            (&mut parts.scratch_config, &mut parts.scratch_overlay),
            &parts.global_compile_diags,
            opts,
        );
        p.diags = merge(p.parse_diags.clone(), diags);
        p.keys = fragment.services.keys().copied().collect();
        for (key, service) in fragment.services {
            if state.services.insert(key, service).is_some() {
                return Err(Fallback);
            }
        }
        all.extend(p.diags.iter().cloned());
        skipped += p.skipped;
    }
    all.extend(parts.global_parse_diags.iter().cloned());
    all.extend(parts.global_compile_diags.iter().cloned());
    all.sort();
    if all.windows(2).any(|w| w[0] == w[1]) {
        // Two parts report the same diagnostic: the full render shows it
        // once, which the parts cannot track.
        return Err(Fallback);
    }
    rendered.diags = Diagnostics(all);
    rendered.overlay.skipped = skipped;
    let changed = rendered.state != state;
    rendered.state = state;
    Ok(changed)
}

/// Compiles one service: its config service and overlay backends are moved
/// from `rendered` into the scratch config and overlay for the compile, and
/// back; held back as the full render would, from its parse diagnostics.
/// Its state fragment and diagnostics (less the global ones).
fn compile_service(
    svc: &str,
    parse_diags: &[Diagnostic],
    rendered: &mut Rendered,
    (scratch_config, scratch_overlay): (&mut Config, &mut Overlay),
    global: &[Diagnostic],
    opts: &Options,
) -> (IpvsState, Vec<Diagnostic>) {
    let service = rendered.config.services.remove_entry(svc);
    let backends = rendered.overlay.backends.remove_entry(svc);
    if let Some((k, v)) = service {
        scratch_config.services.insert(k, v);
    }
    if let Some((k, v)) = backends {
        scratch_overlay.backends.insert(k, v);
    }
    let held = super::held_back(parse_diags);
    let (state, diags) = compile::compile(scratch_config, scratch_overlay, opts, &held);
    if let Some((k, v)) = scratch_config.services.pop_first() {
        rendered.config.services.insert(k, v);
    }
    if let Some((k, v)) = scratch_overlay.backends.pop_first() {
        rendered.overlay.backends.insert(k, v);
    }
    (state, minus(sorted(diags.0), global))
}

// --- updating ----------------------------------------------------------------

/// Parses and compiles one service again and splices it in. `compile`:
/// whether to compile it now (a global update compiles every service
/// after). Whether the state changed.
fn update_service(
    svc: &str,
    config: &Tree,
    overlay: Option<&Tree>,
    rendered: &mut Rendered,
    parts: &mut Parts,
    opts: &Options,
    compile: bool,
) -> Result<bool, Fallback> {
    let parse = parse_service(svc, config, overlay)?;
    let exists = parse.exists;
    let old = parts.services.remove(svc).unwrap_or_default();
    let claims = reclaim(svc, &old.claims, parse.service.as_ref(), &mut parts.claims)?;
    let mut new = splice_parse(svc, parse, claims, &old, rendered)?;
    if !compile {
        // The global update compiles it, with every other service; if it
        // is gone, its state goes with that recompile.
        new.keys = old.keys;
        if exists {
            parts.services.insert(svc.to_string(), new);
        }
        return Ok(false);
    }
    let changed = compile_and_splice(svc, old.keys, &mut new, rendered, parts, opts)?;
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
    skipped: usize,
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
    let (backends, skipped) = match &overlay_tree {
        Some(t) if !t.files.is_empty() => {
            let (b, d, s) = parse_overlay_service(svc, t)?;
            parse_diags = merge(parse_diags, d);
            (b, s)
        }
        _ => (None, 0),
    };
    let exists =
        !config_tree.files.is_empty() || overlay_tree.as_ref().is_some_and(|t| !t.files.is_empty());
    Ok(ServiceParse {
        service,
        backends,
        parse_diags,
        skipped,
        exists,
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

/// Puts a service's new parse in place of its old one in `rendered` (the
/// config service, the overlay backends, the skipped count) and takes its
/// old diagnostics out. Its new part, not compiled yet.
fn splice_parse(
    svc: &str,
    parse: ServiceParse,
    claims: Vec<ServiceKey>,
    old: &ServicePart,
    rendered: &mut Rendered,
) -> Result<ServicePart, Fallback> {
    match parse.service {
        Some(s) => rendered.config.services.insert(svc.to_string(), s),
        None => rendered.config.services.remove(svc),
    };
    match parse.backends {
        Some(b) => rendered.overlay.backends.insert(svc.to_string(), b),
        None => rendered.overlay.backends.remove(svc),
    };
    rendered.overlay.skipped = rendered.overlay.skipped + parse.skipped - old.skipped;
    remove_diags(&mut rendered.diags.0, &old.diags)?;
    Ok(ServicePart {
        parse_diags: parse.parse_diags,
        diags: Vec::new(),
        skipped: parse.skipped,
        claims,
        keys: Vec::new(),
    })
}

/// Compiles a service and splices its diagnostics and state fragment in
/// place of the old ones (`old_keys`); whether the state changed.
fn compile_and_splice(
    svc: &str,
    old_keys: Vec<ServiceKey>,
    new: &mut ServicePart,
    rendered: &mut Rendered,
    parts: &mut Parts,
    opts: &Options,
) -> Result<bool, Fallback> {
    let (fragment, diags) = compile_service(
        svc,
        &new.parse_diags,
        rendered,
        (&mut parts.scratch_config, &mut parts.scratch_overlay),
        &parts.global_compile_diags,
        opts,
    );
    new.diags = merge(new.parse_diags.clone(), diags);
    insert_diags(&mut rendered.diags.0, &new.diags)?;
    let same = old_keys.len() == fragment.services.len()
        && old_keys
            .iter()
            .zip(fragment.services.iter())
            .all(|(k, (nk, ns))| k == nk && rendered.state.services.get(k) == Some(ns));
    if same {
        new.keys = old_keys;
        return Ok(false);
    }
    for key in &old_keys {
        rendered.state.services.remove(key);
    }
    new.keys = fragment.services.keys().copied().collect();
    for (key, service) in fragment.services {
        if rendered.state.services.insert(key, service).is_some() {
            return Err(Fallback);
        }
    }
    Ok(true)
}

/// The global part changed: parses it again and compiles every service.
fn update_global(
    config: &Tree,
    overlay: Option<&Tree>,
    rendered: &mut Rendered,
    parts: &mut Parts,
    opts: &Options,
) -> Result<bool, Fallback> {
    parse_global(config, overlay, rendered, parts)?;
    compile_all(rendered, parts, opts)
}

/// One service's config files.
fn service_config_tree(config: &Tree, svc: &str) -> Tree {
    let mut t = empty_like(config);
    let [yaml, yml, dir] = part::config_paths(svc);
    for p in [yaml, yml] {
        if let Some(bytes) = config.files.get(&p) {
            t.files.insert(p, bytes.clone());
        }
    }
    for (p, bytes) in config
        .files
        .range::<str, _>((Bound::Included(dir.as_str()), Bound::Unbounded))
        .take_while(|(p, _)| p.starts_with(&dir))
    {
        if part::of_config_path(p) == Part::Service(svc) {
            t.files.insert(p.clone(), bytes.clone());
        }
    }
    t
}

/// One service's overlay backend keys.
fn service_overlay_tree(overlay: &Tree, svc: &str) -> Tree {
    let mut t = empty_like(overlay);
    let prefix = part::overlay_prefix(svc);
    for (p, bytes) in overlay
        .files
        .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .take_while(|(p, _)| p.starts_with(&prefix))
    {
        if part::of_overlay_path(p) == Part::Service(svc) {
            t.files.insert(p.clone(), bytes.clone());
        }
    }
    t
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
