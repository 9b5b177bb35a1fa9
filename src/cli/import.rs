//! `clusterf import --from ipvsadm|keepalived FILE --out DIR`: reads the
//! file (and keepalived's includes), calls `import`, writes the repository
//! and says on stderr what it wrote and what it did not import.
//!
//! Exit codes: 0 everything imported; 3 the repository is written but
//! something was not imported (each listed); 1 nothing written (the input
//! has errors, or `--out` is not empty without `--force`).
//!
//! Invariant: no semantics here; the table and the files are `import`'s.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::import::{self, Repo, Table};
use crate::source::file;
use crate::text::plural;

/// Exit code when the repository is written but not everything imported.
pub const PARTIAL: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// An `ipvsadm -S -n` dump
    Ipvsadm,
    /// A keepalived.conf (its virtual_server blocks)
    Keepalived,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What FILE is
    #[arg(long, value_enum)]
    pub from: From,
    /// The file to import; `-` reads stdin
    pub file: String,
    /// The directory to write the config repository (YAML layout) into
    #[arg(long)]
    pub out: PathBuf,
    /// Write into a non-empty --out (files of the same name are replaced;
    /// nothing is deleted)
    #[arg(long)]
    pub force: bool,
    /// keepalived's config id: lines `@ID ...` apply when it is ID (default:
    /// none, so `@ID` lines are listed as not imported, `@^ID` lines apply)
    #[arg(long, value_name = "ID")]
    pub config_id: Option<String>,
}

pub fn run(args: &ImportArgs) -> Result<u8> {
    check_out(&args.out, args.force)?;
    let text = read_input(&args.file)?;
    let name = if args.file == "-" {
        "<stdin>"
    } else {
        args.file.as_str()
    };
    let table = match args.from {
        From::Ipvsadm => {
            import::ipvsadm::table(name, &text).map_err(|e| anyhow::anyhow!("{name}:{e}"))?
        }
        From::Keepalived => keepalived(name, &text, args.config_id.as_deref())?,
    };
    let repo = import::repo(&table);
    write(&args.out, &repo)?;
    for s in &repo.skipped {
        eprintln!("{s}");
    }
    let services = table.state.services.len();
    eprintln!(
        "read {} from {name}; wrote {} ({})",
        plural(services, "service"),
        args.out.display(),
        plural(repo.files.len(), "file")
    );
    if repo.skipped.is_empty() {
        return Ok(0);
    }
    eprintln!(
        "{} not imported (listed above): exit {PARTIAL}",
        plural(repo.skipped.len(), "thing")
    );
    Ok(PARTIAL)
}

fn check_out(out: &Path, force: bool) -> Result<()> {
    match std::fs::read_dir(out).map(|mut e| e.next().is_some()) {
        Ok(true) if !force => {
            bail!(
                "{} is not empty: nothing written (--force writes into it)",
                out.display()
            )
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("reading {}", out.display())),
    }
}

fn read_input(path: &str) -> Result<String> {
    let bytes = if path == "-" {
        file::read_from(std::io::stdin().lock(), file::DUMP_LIMIT, 0).context("reading stdin")?
    } else {
        file::read(Path::new(path), file::DUMP_LIMIT).with_context(|| format!("reading {path}"))?
    };
    String::from_utf8(bytes).with_context(|| format!("reading {path}: not valid UTF-8"))
}

fn keepalived(name: &str, text: &str, config_id: Option<&str>) -> Result<Table> {
    let mut include = |pattern: &str, from: &str| include(pattern, from);
    let mut input = import::keepalived::syntax::Input {
        config_id,
        include: &mut include,
    };
    match import::keepalived::table(name, text, &mut input) {
        Ok(t) => Ok(t),
        Err(diags) => {
            for d in diags.iter() {
                eprintln!("{d}");
            }
            bail!(
                "{name}: {}: nothing written",
                plural(diags.len(), "problem")
            )
        }
    }
}

/// keepalived's `include`: a path relative to the including file's
/// directory, with `*` and `?` wildcards in its last part (matches sorted).
fn include(pattern: &str, from: &str) -> Result<Vec<(String, String)>, String> {
    let base = match Path::new(from).parent() {
        Some(dir) if from != "<stdin>" => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let full = base.join(pattern);
    let (dir, last) = match (full.parent(), full.file_name().and_then(|f| f.to_str())) {
        (Some(d), Some(l)) => (d.to_path_buf(), l.to_string()),
        _ => return Err("not a file name".to_string()),
    };
    let mut paths = Vec::new();
    if last.contains(['*', '?']) {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if wildcard(&last, &n) && !n.starts_with('.') {
                paths.push(dir.join(n));
            }
        }
        paths.sort();
    } else {
        paths.push(full);
    }
    if paths.is_empty() {
        return Err("no file matches".to_string());
    }
    paths
        .into_iter()
        .map(|p| {
            let text = file::read_text(&p, file::FILE_LIMIT)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// Shell-style `*` and `?` matching (no classes).
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn write(out: &Path, repo: &Repo) -> Result<()> {
    for (path, text) in &repo.files {
        let full = out.join(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&full, text).with_context(|| format!("writing {}", full.display()))?;
        eprintln!("wrote {}", full.display());
    }
    Ok(())
}
