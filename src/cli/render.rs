//! `clusterf validate`, `clusterf render` and `clusterf schema`.

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use super::source::{CompileArgs, ConfigArgs, OverlayArgs, load, load_releasing, refuse_errors};
use crate::ipvsadm;
use crate::model::IpvsState;

mod yaml;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub overlay: OverlayArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RenderFormat {
    Yaml,
    Json,
    Ipvsadm,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub overlay: OverlayArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
    /// Output format
    #[arg(long, short, value_enum, default_value = "yaml")]
    pub output: RenderFormat,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Write one file per schema into DIR instead of printing them
    #[arg(long, value_name = "DIR")]
    pub write: Option<std::path::PathBuf>,
}

pub fn validate(args: &ValidateArgs) -> Result<u8> {
    let loaded = load(&args.config, &args.overlay, &args.compile)?;
    refuse_errors(&loaded, "")?;
    let rendered = &loaded.rendered;
    eprintln!(
        "ok: {} services, {} routes, {} ipvs services, {} dests",
        rendered.config.services.len(),
        rendered.config.routes.len(),
        rendered.state.services.len(),
        rendered.state.dest_count()
    );
    super::leave_to_exit(loaded);
    Ok(0)
}

pub fn render(args: &RenderArgs) -> Result<u8> {
    let loaded = load_releasing(&args.config, &args.overlay, &args.compile, false)?;
    refuse_errors(&loaded, ", nothing rendered")?;
    let written = write_state(&loaded.rendered.state, args.output);
    super::leave_to_exit(loaded);
    written.map(|()| 0)
}

/// Writes `state` to stdout in `format`.
fn write_state(state: &IpvsState, format: RenderFormat) -> Result<()> {
    let out = match format {
        RenderFormat::Yaml if yaml::all_plain(state) => {
            return Ok(super::emit_with(|w| yaml::write(w, state))?);
        }
        RenderFormat::Yaml => with_newline(serde_saphyr::to_string(state)?),
        RenderFormat::Json => serde_json::to_string_pretty(state)? + "\n",
        RenderFormat::Ipvsadm => ipvsadm::format(state),
    };
    Ok(super::emit(&out)?)
}

pub fn schema(args: &SchemaArgs) -> Result<u8> {
    let schemas = crate::config::schemas();
    match &args.write {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("--write {}: cannot create", dir.display()))?;
            for (name, schema) in schemas {
                let path = dir.join(name);
                std::fs::write(&path, serde_json::to_string_pretty(&schema)? + "\n")
                    .with_context(|| format!("{}: cannot write", path.display()))?;
            }
        }
        None => {
            let all: serde_json::Map<String, serde_json::Value> = schemas
                .into_iter()
                .map(|(n, s)| (n.to_string(), s))
                .collect();
            super::emit(&(serde_json::to_string_pretty(&all)? + "\n"))?;
        }
    }
    Ok(0)
}

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}
