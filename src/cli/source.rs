//! Source arguments shared by validate, render, plan and apply, and reading
//! the trees they name.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::compile;
use crate::model::Method;
use crate::render::{self, Rendered};
use crate::source;
use crate::tree::Tree;

/// Where the config repository comes from.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Config repository as a local directory
    #[arg(long, value_name = "DIR", conflicts_with = "config_repo")]
    pub config_path: Option<PathBuf>,

    /// Config repository as a Git repository (path or URL)
    #[arg(long, value_name = "PATH|URL")]
    pub config_repo: Option<String>,

    /// Git ref to render (branch, tag or commit); default HEAD
    #[arg(long = "ref", value_name = "REF", requires = "config_repo")]
    pub git_ref: Option<String>,

    /// Config tree inside the Git repository
    #[arg(long, value_name = "DIR", requires = "config_repo")]
    pub subdir: Option<String>,

    /// Where remote repositories are fetched to
    #[arg(long, value_name = "DIR", requires = "config_repo")]
    pub cache_dir: Option<PathBuf>,

    /// Render only commits whose signature verifies against --allowed-signers
    #[arg(long, requires = "allowed_signers")]
    pub verify_signatures: bool,

    /// SSH allowed-signers file for --verify-signatures
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
}

/// Where the overlay (live backends and routes) comes from.
#[derive(Debug, Clone, Args)]
pub struct OverlayArgs {
    /// Overlay tree in the etcd layout, from a local directory
    #[arg(long, value_name = "DIR", conflicts_with = "etcd")]
    pub overlay_path: Option<PathBuf>,

    /// etcd endpoints, comma-separated (e.g. http://127.0.0.1:2379)
    #[arg(long, value_name = "URL[,URL...]", value_delimiter = ',')]
    pub etcd: Vec<String>,

    /// Key prefix of the clusterf tree in etcd
    #[arg(long, value_name = "PREFIX", default_value = "/clusterf")]
    pub etcd_prefix: String,

    /// CA certificate for etcd TLS
    #[arg(long, value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,

    /// Client certificate for etcd TLS
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,

    /// Client key for etcd TLS
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,

    /// etcd user name (password from --etcd-password-file or CLUSTERF_ETCD_PASSWORD)
    #[arg(long, value_name = "USER")]
    pub etcd_user: Option<String>,

    /// File holding the etcd password
    #[arg(long, value_name = "FILE", requires = "etcd_user")]
    pub etcd_password_file: Option<PathBuf>,
}

/// How the desired state is compiled.
#[derive(Debug, Clone, Args)]
pub struct CompileArgs {
    /// Ignore routes from the overlay (etcd)
    #[arg(long)]
    pub filter_etcd_routes: bool,

    /// Leave out services without dests
    #[arg(long)]
    pub elide_empty: bool,

    /// Scheduler of services that name none (overrides clusterf.yaml)
    #[arg(long, value_name = "SCHED")]
    pub default_scheduler: Option<String>,

    /// Forwarding method where no route matches (overrides clusterf.yaml)
    #[arg(long, value_name = "METHOD", value_parser = parse_method)]
    pub default_method: Option<Method>,
}

fn parse_method(s: &str) -> Result<Method, String> {
    s.parse()
}

impl CompileArgs {
    pub fn options(&self) -> Result<compile::Options> {
        if let Some(s) = &self.default_scheduler
            && !crate::model::SCHEDULERS.contains(&s.as_str())
        {
            bail!(
                "--default-scheduler: unknown scheduler {s:?}, expected one of {}",
                crate::model::SCHEDULERS.join(", ")
            );
        }
        Ok(compile::Options {
            filter_overlay_routes: self.filter_etcd_routes,
            elide_empty: self.elide_empty,
            default_scheduler: self.default_scheduler.clone(),
            default_method: self.default_method,
        })
    }
}

impl ConfigArgs {
    /// Reads the config tree.
    pub fn read(&self) -> Result<Tree> {
        if let Some(path) = &self.config_path {
            return source::dir::read(path);
        }
        if let Some(opts) = self.git_options() {
            return source::git::read(&opts);
        }
        bail!("no config source: give --config-path DIR or --config-repo PATH|URL")
    }

    /// The Git source options, when the config comes from --config-repo.
    pub fn git_options(&self) -> Option<source::git::Options> {
        let repo = self.config_repo.clone()?;
        Some(source::git::Options {
            repo,
            git_ref: self.git_ref.clone(),
            subdir: self.subdir.clone(),
            cache_dir: self.cache_dir.clone(),
            allowed_signers: if self.verify_signatures {
                self.allowed_signers.clone()
            } else {
                None
            },
        })
    }
}

impl ConfigArgs {
    /// Reads the config tree at another ref of the same Git repository (the
    /// base of a pull request, `plan --base-ref`).
    pub fn read_at(&self, git_ref: &str) -> Result<Tree> {
        let Some(mut opts) = self.git_options() else {
            bail!("--base-ref needs --config-repo")
        };
        opts.git_ref = Some(git_ref.to_string());
        source::git::read(&opts)
    }
}

impl OverlayArgs {
    /// Reads the overlay tree, if an overlay source was given.
    pub fn read(&self) -> Result<Option<Tree>> {
        if let Some(path) = &self.overlay_path {
            return source::dir::read(path).map(Some);
        }
        if !self.etcd.is_empty() {
            return super::etcd::read_overlay(self).map(Some);
        }
        Ok(None)
    }
}

/// Reads config and overlay and renders the desired state, printing every
/// diagnostic to stderr.
pub fn render_sources(
    config: &ConfigArgs,
    overlay: &OverlayArgs,
    compile: &CompileArgs,
) -> Result<Rendered> {
    let opts = compile.options()?;
    let config_tree = config.read()?;
    let overlay_tree = overlay.read()?;
    Ok(render_trees(
        config,
        &config_tree,
        overlay_tree.as_ref(),
        &opts,
    ))
}

/// Renders trees already read (as `render_sources` does), printing every
/// diagnostic to stderr; for callers that need the trees too (`plan`).
pub fn render_trees(
    config: &ConfigArgs,
    config_tree: &Tree,
    overlay_tree: Option<&Tree>,
    opts: &compile::Options,
) -> Rendered {
    let mut rendered = render::render(config_tree, overlay_tree, opts);
    if let Some(sub) = config.git_options().and_then(|o| o.normalized_subdir()) {
        source::git::name_from_root(&mut rendered.diags, &sub, config_tree, overlay_tree);
    }
    if let (Some(rev), false) = (&config_tree.origin.revision, rendered.diags.is_empty()) {
        eprintln!("in {} (commit {rev}):", config_tree.origin.description);
    }
    print_diagnostics(&rendered.diags);
    rendered
}

/// Diagnostics go to stderr, one per line.
pub fn print_diagnostics(diags: &crate::diag::Diagnostics) {
    for d in diags.iter() {
        eprintln!("{d}");
    }
}

/// What plan and apply may touch, and the mass-delete guards: shared by
/// `plan`, `apply` and `apply --watch`.
#[derive(Debug, Clone, Args)]
pub struct SafetyArgs {
    /// Own only services whose address is in CIDR (repeatable); default: the
    /// whole table
    #[arg(long = "own", value_name = "CIDR")]
    pub own: Vec<String>,

    /// Own only fwmark services with a mark in RANGE (42 or 100-200; repeatable)
    #[arg(long = "own-fwmark", value_name = "RANGE")]
    pub own_fwmark: Vec<String>,

    /// Refuse deleting more than this percentage of the owned dests...
    #[arg(long, value_name = "PERCENT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_delete_percent: u32,

    /// ...when that is more than this many dests
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_delete_min: usize,

    /// Allow plans that delete every owned service or many dests
    #[arg(long)]
    pub allow_mass_delete: bool,
}

impl SafetyArgs {
    pub fn ownership(&self) -> Result<crate::plan::Ownership> {
        crate::plan::Ownership::parse(&self.own, &self.own_fwmark).map_err(anyhow::Error::msg)
    }

    pub fn guards(&self) -> crate::plan::Guards {
        crate::plan::Guards {
            max_delete_percent: self.max_delete_percent,
            max_delete_min: self.max_delete_min,
            allow_mass_delete: self.allow_mass_delete,
        }
    }
}
