//! The render step's log of diagnostics: each problem is logged once when
//! it appears and once (info) when it goes, not at every pass, and the
//! `clusterf_diagnostics` gauge follows.
//!
//! Must not: decide whether a pass goes on (the pass does, from the
//! render's errors) or rename paths.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{error, info, warn};

use crate::diag::{Diagnostic, Severity};
use crate::metrics::Metrics;

/// What was logged, across passes.
pub struct DiagnosticLog {
    /// What a diagnostic about the overlay is logged as: `etcd` or
    /// `overlay`.
    overlay_source: &'static str,
    /// The inputs (content hashes) whose diagnostics were logged.
    logged_for: Option<String>,
    /// The diagnostics logged and still present.
    logged: BTreeSet<Diagnostic>,
}

impl DiagnosticLog {
    pub fn new(overlay_source: &'static str) -> DiagnosticLog {
        DiagnosticLog {
            overlay_source,
            logged_for: None,
            logged: BTreeSet::new(),
        }
    }

    /// Whether the diagnostics of `inputs` were reported already.
    pub fn has_reported(&self, inputs: &str) -> bool {
        self.logged_for.as_deref() == Some(inputs)
    }

    /// The diagnostics of the last report (the status page).
    pub fn current(&self) -> impl Iterator<Item = &Diagnostic> {
        self.logged.iter()
    }

    /// Reports the diagnostics of `inputs`: what appeared and what went.
    pub fn report<'a>(
        &mut self,
        inputs: &str,
        diags: impl IntoIterator<Item = &'a Diagnostic>,
        metrics: &Metrics,
    ) {
        report_diagnostics(&mut self.logged, metrics, self.overlay_source, diags);
        self.logged_for = Some(inputs.to_string());
    }
}

/// Where a diagnostic comes from: the overlay (`overlay:` keys; etcd or an
/// overlay directory, as `overlay_source` says) or the config.
fn diag_source(d: &Diagnostic, overlay_source: &'static str) -> &'static str {
    if d.file.starts_with("overlay:") {
        overlay_source
    } else {
        "config"
    }
}

/// The level says warning or error already: not the text again.
fn line(d: &Diagnostic) -> String {
    let s = d.to_string();
    match s.strip_prefix("warning: ") {
        Some(rest) => rest.to_string(),
        None => s,
    }
}

/// Logs the diagnostics that appeared since `logged` (warn or error) and
/// those that went away (info), keeps `logged` equal to `now`, and sets the
/// `clusterf_diagnostics` gauge (files or keys with a problem, by source and
/// severity); (appeared, resolved).
fn report_diagnostics<'a>(
    logged: &mut BTreeSet<Diagnostic>,
    metrics: &Metrics,
    overlay_source: &'static str,
    now: impl IntoIterator<Item = &'a Diagnostic>,
) -> (usize, usize) {
    let now: BTreeSet<&Diagnostic> = now.into_iter().collect();
    // The gauge counts files and keys, not lines: a skipped key has a
    // "skipped" line and the reason.
    let mut files = BTreeSet::new();
    let mut appeared = 0;
    for d in &now {
        let source = diag_source(d, overlay_source);
        let severity = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        files.insert((source, severity, d.file.as_str()));
        if !logged.contains(*d) {
            appeared += 1;
            match d.severity {
                Severity::Error => error!(source, "{}", line(d)),
                Severity::Warning => warn!(source, "{}", line(d)),
            }
        }
    }
    let gone: Vec<Diagnostic> = logged
        .iter()
        .filter(|d| !now.contains(d))
        .cloned()
        .collect();
    for d in &gone {
        info!(
            source = diag_source(d, overlay_source),
            "resolved: {}",
            line(d)
        );
    }
    let mut counts = BTreeMap::new();
    for (source, severity, _) in files {
        *counts.entry((source, severity)).or_insert(0usize) += 1;
    }
    *logged = now.into_iter().cloned().collect();
    metrics.set_diagnostics(&["config", overlay_source], &counts);
    (appeared, gone.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagnostic_is_logged_once_while_it_persists() {
        let metrics = Metrics::new();
        let mut logged = BTreeSet::new();
        let mut bad = crate::diag::Diagnostics::default();
        for i in 0..200 {
            let key = format!("overlay:services/test/backends/b{i}");
            bad.warning(&key, None, "skipped");
            bad.warning(key, None, "invalid json");
        }
        bad.error("services/test/frontend", None, "missing port");
        // The first time: all of them.
        assert_eq!(
            report_diagnostics(&mut logged, &metrics, "etcd", bad.iter()),
            (401, 0)
        );
        // Inputs changed elsewhere, the same problems: nothing logged again.
        for _ in 0..10 {
            assert_eq!(
                report_diagnostics(&mut logged, &metrics, "etcd", bad.iter()),
                (0, 0)
            );
        }
        let text = metrics.render(0.0);
        assert!(
            text.contains("clusterf_diagnostics{source=\"etcd\",severity=\"warning\"} 200"),
            "{text}"
        );
        assert!(
            text.contains("clusterf_diagnostics{source=\"config\",severity=\"error\"} 1"),
            "{text}"
        );
        // One fixed, one new: one line each way.
        let mut next = crate::diag::Diagnostics(bad.0[2..].to_vec());
        next.warning("overlay:services/test/backends/new", None, "invalid json");
        assert_eq!(
            report_diagnostics(&mut logged, &metrics, "etcd", next.iter()),
            (1, 2)
        );
        // All fixed: the gauge goes to 0.
        assert_eq!(
            report_diagnostics(&mut logged, &metrics, "etcd", []),
            (0, 400)
        );
        let text = metrics.render(0.0);
        assert!(
            text.contains("clusterf_diagnostics{source=\"etcd\",severity=\"warning\"} 0"),
            "{text}"
        );
    }
}
