//! `clusterf etcd`: dump the overlay tree, put and delete backends. The
//! `--etcd` flags and their settings are `cli::source`'s.
//!
//! Invariant: wiring only. Keys and the snapshot protocol live in
//! `source::etcd`, the meaning of values in `config`.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::source::{OverlayArgs, print_diagnostics};
use crate::config;
use crate::model::MAX_WEIGHT;
use crate::source::etcd::{self as etcd_source, KeyKind, Settings};
use crate::text;
use crate::tree::{Tree, hex};

#[derive(Debug, Args)]
pub struct EtcdArgs {
    #[command(subcommand)]
    pub command: EtcdCommand,
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Write the overlay tree out: as JSON on stdout, or as files in DIR
    Dump(DumpArgs),
    /// Publish a backend of a service (the JSON of the original publishers)
    PutBackend(PutBackendArgs),
    /// Remove a backend of a service
    DelBackend(DelBackendArgs),
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub source: OverlayArgs,
    /// json (to stdout), or tree DIR (one file per key, readable with --overlay-path DIR)
    #[arg(long, short, num_args = 1..=2, value_names = ["FORMAT", "DIR"], default_value = "json")]
    pub output: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PutBackendArgs {
    #[command(flatten)]
    pub source: OverlayArgs,
    /// Service the backend belongs to
    #[arg(long, value_name = "SERVICE")]
    pub service: String,
    /// Backend name (its key below services/SERVICE/backends/)
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// IPv4 address of the backend
    #[arg(long, value_name = "ADDR")]
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address of the backend
    #[arg(long, value_name = "ADDR")]
    pub ipv6: Option<Ipv6Addr>,
    /// TCP port of the backend
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub tcp: Option<u16>,
    /// UDP port of the backend
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub udp: Option<u16>,
    /// Weight, 0..65535 (default 10 when absent); 0 drains
    #[arg(long, value_name = "W")]
    pub weight: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DelBackendArgs {
    #[command(flatten)]
    pub source: OverlayArgs,
    /// Service the backend belongs to
    #[arg(long, value_name = "SERVICE")]
    pub service: String,
    /// Backend name
    #[arg(long, value_name = "NAME")]
    pub name: String,
}

pub fn run(args: &EtcdArgs) -> Result<u8> {
    match &args.command {
        EtcdCommand::Dump(a) => dump(a),
        EtcdCommand::PutBackend(a) => put_backend(a),
        EtcdCommand::DelBackend(a) => del_backend(a),
    }
}

fn require_etcd(args: &OverlayArgs) -> Result<Settings> {
    if args.etcd.is_empty() {
        bail!("no etcd given: --etcd URL[,URL...] is required");
    }
    args.etcd_settings()
}

// --- dump ---

enum DumpTo {
    Json,
    Tree(PathBuf),
}

fn dump_target(output: &[String]) -> Result<DumpTo> {
    match output {
        [f] if f == "json" => Ok(DumpTo::Json),
        [f, dir] if f == "tree" => Ok(DumpTo::Tree(PathBuf::from(dir))),
        [f] if f == "tree" => bail!("--output tree needs a directory: --output tree DIR"),
        [f, _] if f == "json" => bail!("--output json takes no directory"),
        _ => bail!(
            "--output: unknown format {}, expected json or tree DIR",
            text::quote(output.first().map_or("", String::as_str))
        ),
    }
}

fn dump(args: &DumpArgs) -> Result<u8> {
    let target = dump_target(&args.output)?;
    let Some(overlay) = args.source.source()? else {
        bail!("no overlay given: --etcd URL[,URL...] (or --overlay-path DIR) is required")
    };
    let tree = overlay.read()?;
    let (overlay, diags) = config::parse_overlay(&tree);
    print_diagnostics(&diags);
    match target {
        DumpTo::Json => super::emit(&dump_json(&tree)?)?,
        DumpTo::Tree(dir) => write_tree(&tree, &dir)?,
    }
    let backends: usize = overlay.backends.values().map(|b| b.len()).sum();
    eprintln!(
        "dumped {} keys{} from {}: {backends} backends in {} services, {} routes, {} skipped",
        tree.files.len() + tree.unreadable.len(),
        tree.source
            .revision
            .as_deref()
            .map_or(String::new(), |r| format!(" at revision {r}")),
        tree.source.description,
        overlay.backends.len(),
        overlay.routes.len(),
        overlay.skipped
    );
    Ok(0)
}

/// `{"origin", "revision", "keys": {path: value}}`, plus `binary` (hex) for
/// values that are not UTF-8 and `unreadable` for keys that are no path.
pub fn dump_json(tree: &Tree) -> Result<String> {
    let mut keys = serde_json::Map::new();
    let mut binary = serde_json::Map::new();
    for f in &tree.files {
        let (path, value) = (f.path(), f.data());
        match std::str::from_utf8(value) {
            Ok(text) => keys.insert(path.to_string(), text.into()),
            Err(_) => binary.insert(path.to_string(), hex(value).into()),
        };
    }
    let mut out = serde_json::Map::new();
    out.insert("origin".into(), tree.source.description.clone().into());
    if let Some(rev) = &tree.source.revision {
        out.insert("revision".into(), rev.clone().into());
    }
    out.insert("keys".into(), keys.into());
    if !binary.is_empty() {
        out.insert("binary".into(), binary.into());
    }
    if !tree.unreadable.is_empty() {
        let unreadable: BTreeMap<&String, &String> = tree.unreadable.iter().collect();
        out.insert("unreadable".into(), serde_json::to_value(unreadable)?);
    }
    Ok(serde_json::to_string_pretty(&serde_json::Value::Object(out))? + "\n")
}

/// Writes one file per key below `dir`, which must be empty or absent.
pub fn write_tree(tree: &Tree, dir: &Path) -> Result<()> {
    if let Ok(mut entries) = fs::read_dir(dir)
        && entries.next().is_some()
    {
        bail!(
            "{}: not empty: refusing to mix a dump with other files",
            dir.display()
        );
    }
    for f in &tree.files {
        let path = f.path();
        let below = format!("{path}/");
        if let Some(other) = tree.files.iter_from(&below).next()
            && other.path().starts_with(&below)
        {
            let other = other.path();
            bail!(
                "{path} and {other} are both keys: a file cannot also be a directory, cannot write a tree"
            );
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    for f in &tree.files {
        let (path, value) = (f.path(), f.data());
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create", parent.display()))?;
        }
        fs::write(&file, value).with_context(|| format!("{}: cannot write", file.display()))?;
    }
    for (path, why) in &tree.unreadable {
        eprintln!("warning: {path}: not written: {why}");
    }
    Ok(())
}

// --- put-backend / del-backend ---

/// `services/SERVICE/backends/NAME`, checked to be a valid tree path.
fn backend_path(settings: &Settings, service: &str, name: &str) -> Result<String> {
    for (what, value) in [("--service", service), ("--name", name)] {
        if value.is_empty() || value.contains('/') {
            bail!(
                "{what} {}: must be a non-empty name without '/'",
                text::quote(value)
            );
        }
    }
    let path = format!("services/{service}/backends/{name}");
    match settings.keys().classify(&settings.keys().key(&path)) {
        KeyKind::Path(p) if p == path => Ok(path),
        KeyKind::Hidden => bail!("{path}: a name starting with '.' is skipped by every reader"),
        _ => bail!("{path}: not a valid key"),
    }
}

/// The backend's JSON, as the original publishers wrote it.
pub fn backend_json(args: &PutBackendArgs) -> Result<String> {
    if args.ipv4.is_none() && args.ipv6.is_none() {
        bail!("a backend needs an address: --ipv4 ADDR and/or --ipv6 ADDR");
    }
    if let Some(w) = args.weight
        && w > MAX_WEIGHT
    {
        bail!("--weight {w}: out of range 0..{MAX_WEIGHT}");
    }
    let mut obj = serde_json::Map::new();
    if let Some(a) = args.ipv4 {
        obj.insert("ipv4".into(), a.to_string().into());
    }
    if let Some(a) = args.ipv6 {
        obj.insert("ipv6".into(), a.to_string().into());
    }
    if let Some(p) = args.tcp {
        obj.insert("tcp".into(), p.into());
    }
    if let Some(p) = args.udp {
        obj.insert("udp".into(), p.into());
    }
    if let Some(w) = args.weight {
        obj.insert("weight".into(), w.into());
    }
    Ok(serde_json::Value::Object(obj).to_string())
}

fn put_backend(args: &PutBackendArgs) -> Result<u8> {
    let settings = require_etcd(&args.source)?;
    let path = backend_path(&settings, &args.service, &args.name)?;
    let value = backend_json(args)?;
    // Never publish what clusterf itself would skip.
    let mut check = Tree::new("put-backend");
    check.insert(path.clone(), value.clone());
    let (_, diags) = config::parse_overlay(&check);
    if !diags.is_empty() {
        print_diagnostics(&diags);
        bail!("{path}: not written: the value would be skipped");
    }
    let revision = etcd_source::runtime()?.block_on(async {
        let client = etcd_source::connect(&settings).await?;
        etcd_source::put(&client, &settings, &path, value.as_bytes()).await
    })?;
    eprintln!(
        "put {} = {value} at revision {revision}",
        settings.keys().key_display(&path)
    );
    Ok(0)
}

fn del_backend(args: &DelBackendArgs) -> Result<u8> {
    let settings = require_etcd(&args.source)?;
    let path = backend_path(&settings, &args.service, &args.name)?;
    let deleted = etcd_source::runtime()?.block_on(async {
        let client = etcd_source::connect(&settings).await?;
        etcd_source::delete(&client, &settings, &path, false).await
    })?;
    let key = settings.keys().key_display(&path);
    if deleted == 0 {
        bail!("{key}: no such backend");
    }
    eprintln!("deleted {key}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_targets() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(matches!(dump_target(&s(&["json"])), Ok(DumpTo::Json)));
        assert!(
            matches!(dump_target(&s(&["tree", "d"])), Ok(DumpTo::Tree(p)) if p == Path::new("d"))
        );
        assert!(dump_target(&s(&["tree"])).is_err());
        assert!(dump_target(&s(&["json", "d"])).is_err());
        assert!(dump_target(&s(&["yaml"])).is_err());
    }

    #[test]
    fn dump_json_keeps_values_exact() {
        let mut tree = Tree::new("etcd x/clusterf");
        tree.source.revision = Some("7".into());
        tree.insert("routes/a", "{\"Prefix4\": \"10.0.0.0/8\"}");
        tree.insert("routes/b", vec![0xffu8, 0]);
        tree.unreadable
            .insert("routes/\u{fffd}".into(), "key is not valid UTF-8".into());
        let v: serde_json::Value = serde_json::from_str(&dump_json(&tree).unwrap()).unwrap();
        assert_eq!(v["revision"], "7");
        assert_eq!(v["keys"]["routes/a"], "{\"Prefix4\": \"10.0.0.0/8\"}");
        assert_eq!(v["binary"]["routes/b"], "ff00");
        assert_eq!(v["unreadable"]["routes/\u{fffd}"], "key is not valid UTF-8");
    }

    #[test]
    fn write_tree_refuses_file_and_directory_of_one_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = Tree::new("t");
        tree.insert("services/a", "x");
        tree.insert("services/a-b", "x");
        tree.insert("services/a/frontend", "x");
        let err = write_tree(&tree, &dir.path().join("out")).unwrap_err();
        assert!(
            err.to_string()
                .contains("services/a and services/a/frontend"),
            "{err}"
        );
        tree.files.remove("services/a");
        write_tree(&tree, &dir.path().join("out")).unwrap();
        assert_eq!(
            fs::read(dir.path().join("out/services/a/frontend")).unwrap(),
            b"x"
        );
        let err = write_tree(&tree, &dir.path().join("out")).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }
}
