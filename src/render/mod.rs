//! Render: config tree + overlay tree -> validated config -> desired IPVS
//! state, with every diagnostic along the way.
//!
//! `memo` keeps the last render for the watch loop (a [`Compiled`]: no
//! parsed config or overlay) and re-renders only the services whose inputs
//! changed; its result equals [`render`]'s.
//!
//! Invariant: pure. Takes trees already read by a source; no I/O.

pub mod memo;
mod part;

use std::collections::BTreeSet;

use crate::compile::{self, Options};
use crate::config::{self, Config, Overlay};
use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::health::HealthConfig;
use crate::model::IpvsState;
use crate::tree::Tree;

/// The result of rendering: usable only when `diags` has no errors.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub config: Config,
    pub overlay: Overlay,
    pub state: IpvsState,
    pub diags: Diagnostics,
    /// Content hash of the config tree.
    pub config_hash: String,
    /// Content hash of the overlay tree, when there is one.
    pub overlay_hash: Option<String>,
    /// The health checks of `state`'s services, keyed like it (filled by
    /// compile; spliced per service by the memo like `state`).
    pub health: HealthConfig,
}

impl Rendered {
    pub fn is_ok(&self) -> bool {
        !self.diags.has_errors()
    }

    /// What was compiled, without the parsed config and overlay.
    pub fn into_compiled(self) -> Compiled {
        Compiled {
            state: self.state,
            diags: self.diags,
            config_hash: self.config_hash,
            overlay_hash: self.overlay_hash,
            health: self.health,
        }
    }
}

/// A [`Rendered`] without the parsed config and overlay: what the memo
/// keeps between passes (the trees hold the inputs).
#[derive(Clone, Debug, Default)]
pub struct Compiled {
    pub state: IpvsState,
    pub diags: Diagnostics,
    pub config_hash: String,
    pub overlay_hash: Option<String>,
    pub health: HealthConfig,
}

impl Compiled {
    pub fn is_ok(&self) -> bool {
        !self.diags.has_errors()
    }
}

/// Parses, validates and compiles. Overlay problems are warnings (a bad key
/// is skipped); config problems are errors.
pub fn render(config_tree: &Tree, overlay_tree: Option<&Tree>, opts: &Options) -> Rendered {
    let hashes = (
        config_tree.content_hash(),
        overlay_tree.map(Tree::content_hash),
    );
    let (config, mut diags) = config::parse_config(config_tree);
    refuse_no_config(config_tree, &mut diags);
    let (overlay, overlay_diags) = parse_overlay(overlay_tree);
    let held = held_back(diags.iter());
    let compiled = compile::compile(&config, &overlay, opts, &held);
    rendered((config, overlay), (diags, overlay_diags), compiled, hashes)
}

/// [`render`], letting go of each tree's file contents once it is parsed
/// (paths, unreadable files and source stay, for naming diagnostics) and
/// of each parsed service once compiled (the services are read one at a
/// time, [`config::ServiceReader`], and compiled as they come): a large
/// repository's bytes and parsed config are never held whole beside the
/// state. The result's `config.services` is empty (its routes and
/// defaults are there). `keep_overlay` keeps the overlay's contents, for a
/// caller that renders it again.
pub fn render_releasing(
    config_tree: &mut Tree,
    overlay_tree: Option<&mut Tree>,
    keep_overlay: bool,
    opts: &Options,
) -> Rendered {
    let hashes = (
        config_tree.content_hash(),
        overlay_tree.as_deref().map(Tree::content_hash),
    );
    let (overlay, overlay_diags) = parse_overlay(overlay_tree.as_deref());
    if let (Some(t), false) = (overlay_tree, keep_overlay) {
        t.files.release_contents();
    }
    let contents = config_tree.files.take_contents();
    let config_tree = &*config_tree;
    let (config, services) = config::ServiceReader::start(config_tree, contents);
    let mut compiler = compile::Compiler::new(&config, &overlay, opts);
    let mut diags = services.each(|svc| compiler.service(&svc));
    refuse_no_config(config_tree, &mut diags);
    let held = held_back(diags.iter());
    let compiled = compiler.finish(&held);
    rendered((config, overlay), (diags, overlay_diags), compiled, hashes)
}

/// A config tree without a file of the config layout is an error.
fn refuse_no_config(config_tree: &Tree, diags: &mut Diagnostics) {
    if !config::holds_config_files(config_tree) {
        diags.error(
            config_tree.source.description.as_str(),
            None,
            "no config files found (clusterf.yaml, services/, routes/): refusing to treat that as an empty config",
        );
    }
}

fn parse_overlay(overlay_tree: Option<&Tree>) -> (Overlay, Diagnostics) {
    match overlay_tree {
        Some(t) => config::parse_overlay(t),
        None => (Overlay::default(), Diagnostics::default()),
    }
}

/// The render of a parsed config and overlay, their diagnostics, the
/// compile's result and the content hashes (config, overlay).
fn rendered(
    (config, overlay): (Config, Overlay),
    (mut diags, overlay_diags): (Diagnostics, Diagnostics),
    (state, health, compile_diags): (IpvsState, HealthConfig, Diagnostics),
    (config_hash, overlay_hash): (String, Option<String>),
) -> Rendered {
    diags.extend(overlay_diags);
    diags.extend(compile_diags);
    diags.sort();
    Rendered {
        config,
        overlay,
        state,
        diags,
        config_hash,
        overlay_hash,
        health,
    }
}

/// The services whose own config files have errors, among `diags` (a
/// config's): the config lacks them until the files are fixed, and their
/// overlay backends are held back meanwhile (see `compile::compile`).
fn held_back<'a>(diags: impl IntoIterator<Item = &'a Diagnostic>) -> BTreeSet<&'a str> {
    diags
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .filter_map(|d| {
            // `services/web.yaml#backends.a` names a part of a file.
            let file = d.file.split('#').next().unwrap_or_default();
            match part::of_config_path(file) {
                part::Part::Service(svc) => Some(svc),
                part::Part::Global => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::memo::{Memo, Work};
    use super::*;

    const WEB: &str = "frontend: {ipv4: 10.0.0.1, tcp: 80}\n";

    #[test]
    fn a_releasing_render_equals_a_render_and_keeps_the_paths_but_not_the_contents_or_the_parsed_services()
     {
        let mut config = Tree::new("cfg");
        config.insert("services/web.yaml", WEB);
        config.insert(
            "services/bad.yaml",
            "frontend: {ipv4: 10.0.0.2, tcp: 99999}\n",
        );
        let mut overlay = Tree::new("etcd");
        overlay.insert(
            "services/web/backends/a",
            r#"{"ipv4": "10.1.0.1", "tcp": 80}"#,
        );
        // Warned about from the services taken out of the config.
        overlay.insert(
            "services/ghost/backends/x",
            r#"{"ipv4": "10.1.0.2", "tcp": 80}"#,
        );
        let opts = Options::default();
        let full = render(&config, Some(&overlay), &opts);
        assert_eq!(full.diags.iter().count(), 2, "{:?}", full.diags);
        for keep_overlay in [false, true] {
            let (mut c, mut o) = (config.clone(), overlay.clone());
            let released = render_releasing(&mut c, Some(&mut o), keep_overlay, &opts);
            assert_eq!(released.state, full.state);
            assert_eq!(released.diags, full.diags);
            assert_eq!(released.config_hash, full.config_hash);
            assert_eq!(released.overlay_hash, full.overlay_hash);
            assert!(released.config.services.is_empty());
            assert_eq!(released.config.routes, full.config.routes);
            let paths = |t: &Tree| {
                t.files
                    .iter()
                    .map(|f| f.path().to_string())
                    .collect::<Vec<_>>()
            };
            assert_eq!(paths(&c), paths(&config));
            assert!(c.files.iter().all(|f| f.data().is_empty()));
            assert_eq!(o == overlay, keep_overlay);
        }
    }

    #[test]
    fn a_releasing_render_equals_a_render_when_paths_and_names_sort_apart_and_files_disagree() {
        let mut config = Tree::new("cfg");
        config.insert("clusterf.yaml", "method: droute\n");
        config.insert("routes/r.yaml", "prefix: 10.2.0.0/16\nmethod: masq\n");
        let svc = |ip: &str| {
            format!(
                "frontend: {{ipv4: 10.0.0.1, tcp: 80}}\nbackends:\n  x: {{ipv4: {ip}, tcp: 8080}}\n"
            )
        };
        // Paths sort a-b.yaml < a.c/... < a.yaml < a.yml, names a < a-b < a.c.
        config.insert("services/a-b.yaml", svc("10.2.0.2"));
        config.insert("services/a.yaml", svc("10.1.0.1"));
        config.insert("services/a.yml", svc("10.2.0.1"));
        config.insert(
            "services/a.c/frontend",
            r#"{"IPv4": "10.0.0.1", "TCP": 80}"#,
        );
        config.insert(
            "services/a.c/backends/y",
            r#"{"IPv4": "10.2.0.3", "TCP": 80}"#,
        );
        config.insert("services/b.yaml", "frontend: {ipv4: 10.0.0.2, udp: 53}\n");
        config.insert("services/bad.yaml", "frontend: [\n");
        config.insert("services/c/frontend", r#"{"IPv4": "10.0.0.3", "TCP": 80}"#);
        config.insert("services/d/fallback", r#"{"IPv4": "10.9.0.1"}"#);
        let mut overlay = Tree::new("etcd");
        for (key, ip) in [
            ("services/a-b/backends/o", "10.2.0.9"),
            ("services/b/backends/o", "10.3.0.1"),
            ("services/bad/backends/o", "10.3.0.2"),
            ("services/ghost/backends/o", "10.3.0.3"),
        ] {
            overlay.insert(key, format!(r#"{{"ipv4": "{ip}", "tcp": 80, "udp": 53}}"#));
        }
        overlay.insert(
            "routes/o",
            r#"{"Prefix": "10.3.0.0/16", "IPVSMethod": "tunnel"}"#,
        );
        for elide_empty in [false, true] {
            let opts = Options {
                elide_empty,
                ..Options::default()
            };
            let full = render(&config, Some(&overlay), &opts);
            assert!(full.diags.errors().count() >= 4, "{:?}", full.diags);
            let (mut c, mut o) = (config.clone(), overlay.clone());
            let released = render_releasing(&mut c, Some(&mut o), false, &opts);
            assert_eq!(released.diags, full.diags);
            assert_eq!(released.state, full.state);
            assert_eq!(released.health, full.health);
            assert_eq!(released.overlay, full.overlay);
            assert_eq!(released.config.routes, full.config.routes);
            assert_eq!(released.config.defaults, full.config.defaults);
        }
    }

    #[test]
    fn a_service_whose_file_does_not_parse_holds_its_overlay_backends_back_silently() {
        let opts = Options::default();
        let mut config = Tree::new("cfg");
        config.insert("services/web.yaml", WEB);
        config.insert("services/db.yaml", "frontend: {ipv4: 10.0.0.2, tcp: 53}\n");
        let mut overlay = Tree::new("etcd");
        for (key, ip) in [
            ("services/web/backends/a", "10.1.0.1"),
            ("services/web/backends/b", "10.1.0.2"),
            ("services/ghost/backends/x", "10.6.0.1"),
        ] {
            overlay.insert(key, format!(r#"{{"ipv4": "{ip}", "tcp": 80}}"#));
        }
        let mut memo = Memo::new(opts.clone());
        assert_eq!(memo.render(&config, Some(&overlay)).state.dest_count(), 2);

        // A YAML syntax error: one config error; ghost's key (no file names
        // that service) is still warned about, web's are held back.
        config.insert("services/web.yaml", WEB.replace('}', ""));
        let full = render(&config, Some(&overlay), &opts);
        let shown: Vec<String> = full.diags.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "warning: overlay:services/ghost/backends/x: overlay backend for service \"ghost\", which the config repo does not define: ignored",
                "services/web.yaml:1:11: unclosed bracket '{'",
            ]
        );
        let incremental = memo.render(&config, Some(&overlay)).clone();
        assert_eq!(memo.work(), Work::Services(1));
        assert_eq!(incremental.diags, full.diags);
        assert_eq!(incremental.state, full.state);

        // Fixed: web's backends are back, in both.
        config.insert("services/web.yaml", WEB);
        let full = render(&config, Some(&overlay), &opts);
        assert_eq!(full.state.dest_count(), 2);
        assert_eq!(memo.render(&config, Some(&overlay)).diags, full.diags);
    }
}
