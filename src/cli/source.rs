//! Source arguments shared by validate, render, plan and apply (and the
//! `--etcd` flags of `etcd` and `docker`), resolved into source settings,
//! and the CLI side of loading them: diagnostics printed, exit 1 on errors.
//!
//! Invariant: flags and their resolution only; reading is `crate::source`,
//! loading `crate::load`. Passwords come from a file or the environment,
//! never from the command line.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;

use super::Exit;
use crate::compile;
use crate::load::{self, Loaded, Sources};
use crate::model::Method;
use crate::source::etcd::{Settings, Tls};
use crate::source::{self, ConfigSource, OverlaySource};
use crate::text::plural;
use crate::tree::Tree;

/// Environment variable holding the etcd password.
pub const PASSWORD_ENV: &str = "CLUSTERF_ETCD_PASSWORD";

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
                "--default-scheduler: unknown scheduler {}, expected one of {}",
                crate::text::quote(s),
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
    /// The config source these flags name.
    pub fn source(&self) -> Result<ConfigSource> {
        if let Some(path) = &self.config_path {
            return Ok(ConfigSource::Dir(path.clone()));
        }
        if let Some(opts) = self.git_options() {
            return Ok(ConfigSource::Git(opts));
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
    /// The overlay source these flags name, if any.
    pub fn source(&self) -> Result<Option<OverlaySource>> {
        if let Some(path) = &self.overlay_path {
            return Ok(Some(OverlaySource::Dir(path.clone())));
        }
        if !self.etcd.is_empty() {
            return self.etcd_settings().map(|s| Some(OverlaySource::Etcd(s)));
        }
        Ok(None)
    }

    /// The validated etcd connection settings of `--etcd ...`: TLS files
    /// read, the password from its file or [`PASSWORD_ENV`].
    pub fn etcd_settings(&self) -> Result<Settings> {
        let mut settings = Settings::new(self.etcd.clone(), &self.etcd_prefix)?;
        if self.etcd_ca.is_some() || self.etcd_cert.is_some() {
            let ca = self
                .etcd_ca
                .as_deref()
                .map(|p| read_file("--etcd-ca", p))
                .transpose()?;
            let identity = match (&self.etcd_cert, &self.etcd_key) {
                (Some(cert), Some(key)) => Some((
                    read_file("--etcd-cert", cert)?,
                    read_file("--etcd-key", key)?,
                )),
                _ => None,
            };
            settings = settings.with_tls(Tls { ca, identity })?;
        }
        if let Some(user) = &self.etcd_user {
            settings = settings.with_user(user.clone(), self.etcd_password(user)?);
        }
        Ok(settings)
    }

    /// The password of `--etcd-user`: from --etcd-password-file (one line),
    /// else the environment; never from the command line.
    fn etcd_password(&self, user: &str) -> Result<String> {
        let Some(path) = &self.etcd_password_file else {
            return std::env::var(PASSWORD_ENV).map_err(|_| {
                anyhow!(
                    "--etcd-user {user}: no password: give --etcd-password-file FILE or set {PASSWORD_ENV}"
                )
            });
        };
        warn_if_shared(path);
        let bytes = read_file("--etcd-password-file", path)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow!("--etcd-password-file {}: not valid UTF-8", path.display()))?;
        Ok(text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text)
            .to_string())
    }
}

/// Warns when the password file is readable by its group or by others: a
/// secret should be readable by clusterf's user alone (`chmod 600`, or
/// systemd's `LoadCredential=`, as examples/systemd does).
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::metadata(path) else {
        return; // the read that follows says why
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        eprintln!(
            "warning: --etcd-password-file {}: readable by {} (mode {mode:04o}): \
             chmod 600 it, or hand it over with systemd's LoadCredential=",
            path.display(),
            if mode & 0o004 != 0 {
                "others"
            } else {
                "its group"
            },
        );
    }
}

fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>> {
    crate::source::file::read(path, crate::source::file::KEY_FILE_LIMIT)
        .with_context(|| format!("{flag} {}: cannot read", path.display()))
}

/// Resolves the source flags and loads the sources ([`crate::load`]),
/// printing every diagnostic to stderr.
pub fn load(config: &ConfigArgs, overlay: &OverlayArgs, compile: &CompileArgs) -> Result<Loaded> {
    let loaded = load::load(&sources(config, overlay, compile)?)?;
    print_loaded(&loaded);
    Ok(loaded)
}

/// [`load`] for a command that needs only the desired state
/// ([`load::load_releasing`]).
pub fn load_releasing(
    config: &ConfigArgs,
    overlay: &OverlayArgs,
    compile: &CompileArgs,
    keep_overlay: bool,
) -> Result<Loaded> {
    let sources = sources(config, overlay, compile)?;
    let loaded = load::load_releasing(&sources, keep_overlay)?;
    print_loaded(&loaded);
    Ok(loaded)
}

/// [`load_releasing`] while `beside` runs on another thread; its result
/// too. Flags are resolved before `beside` starts.
pub fn load_beside<T: Send>(
    config: &ConfigArgs,
    overlay: &OverlayArgs,
    compile: &CompileArgs,
    beside: impl FnOnce() -> T + Send,
) -> Result<(Loaded, T)> {
    let (loaded, other) = load::load_beside(&sources(config, overlay, compile)?, beside);
    let loaded = loaded?;
    print_loaded(&loaded);
    Ok((loaded, other))
}

fn sources(config: &ConfigArgs, overlay: &OverlayArgs, compile: &CompileArgs) -> Result<Sources> {
    let compile = compile.options()?;
    let config = config.source()?;
    let overlay = overlay.source()?;
    Ok(Sources {
        config,
        overlay,
        compile,
    })
}

/// Prints the diagnostics of a load to stderr, under the commit they are of.
pub fn print_loaded(loaded: &Loaded) {
    let diags = &loaded.rendered.diags;
    if let (Some(rev), false) = (&loaded.config.source.revision, diags.is_empty()) {
        eprintln!("in {} (commit {rev}):", loaded.config.source.description);
    }
    print_diagnostics(diags);
}

/// Ends the command (exit 1) when the loaded config has errors, saying
/// `error: N problems found` and what was not done (`, nothing planned`).
pub fn refuse_errors(loaded: &Loaded, nothing: &str) -> Result<()> {
    match loaded.errors() {
        0 => Ok(()),
        n => {
            eprintln!("error: {} found{nothing}", plural(n, "problem"));
            Err(Exit(1).into())
        }
    }
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

    /// Refuse leaving more than this percentage of the owned services that
    /// have dests without any (an empty overlay does that)
    #[arg(long, value_name = "PERCENT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_empty_percent: u32,

    /// Allow plans that delete every owned service, many dests, or empty
    /// many services
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
            max_empty_percent: self.max_empty_percent,
            allow_mass_delete: self.allow_mass_delete,
        }
    }
}
