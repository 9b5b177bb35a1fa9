//! Diagnostics: problems found in input, each naming the file (relative to
//! the config tree's root, or an overlay key) and, where the format has one,
//! the line and column; named from the repository root for a tree read
//! below `--subdir` ([`Diagnostics::from_root`]).
//!
//! Invariant: collecting diagnostics never stops at the first problem; the
//! caller decides what is fatal (errors) and what is reported (warnings).

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::text;
use crate::tree::Tree;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Path relative to the config root (or overlay key).
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<Pos>,
    pub severity: Severity,
    pub message: String,
}

/// `services/web.yaml:8:5: unknown field ...` (errors) and
/// `warning: services/web/backends/a: ...` (warnings).
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write_escaped(f, &self.file)?;
        if let Some(pos) = self.pos {
            write!(f, ":{}:{}", pos.line, pos.column)?;
        }
        f.write_str(": ")?;
        write_escaped(f, &self.message)
    }
}

/// Writes `text` with control characters escaped as `\u{1b}` or `\n` (the
/// way `{:?}` writes them), so that a file name or key holding terminal escapes
/// cannot reach a terminal raw.
fn write_escaped(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let mut rest = text;
    while let Some(i) = rest.find(char::is_control) {
        f.write_str(&rest[..i])?;
        let c = rest[i..].chars().next().unwrap_or_default();
        write!(f, "{}", c.escape_debug())?;
        rest = &rest[i + c.len_utf8()..];
    }
    f.write_str(rest)
}

/// An ordered collection of diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn error(&mut self, file: impl Into<String>, pos: Option<Pos>, message: impl Into<String>) {
        self.push(file.into(), pos, Severity::Error, message.into());
    }

    pub fn warning(
        &mut self,
        file: impl Into<String>,
        pos: Option<Pos>,
        message: impl Into<String>,
    ) {
        self.push(file.into(), pos, Severity::Warning, message.into());
    }

    fn push(&mut self, file: String, pos: Option<Pos>, severity: Severity, message: String) {
        // Values are cut where they are quoted (`text::quote`); this is the
        // guard for whatever else quotes input, such as a library's message.
        let message = if message.len() > text::MESSAGE_CHARS {
            text::cut_message(&message)
        } else {
            message
        };
        self.0.push(Diagnostic {
            file,
            pos,
            severity,
            message,
        });
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Warning)
    }

    /// Downgrades every error to a warning (overlay input is lenient).
    pub fn into_warnings(mut self) -> Diagnostics {
        for d in &mut self.0 {
            d.severity = Severity::Warning;
        }
        self
    }

    /// Sorts by file, position, then message, for deterministic output.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (&a.file, a.pos, a.severity, &a.message).cmp(&(&b.file, b.pos, b.severity, &b.message))
        });
        self.0.dedup();
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// These diagnostics with the files of the config tree named from the
    /// root of the repository the tree was read from (its source's
    /// `subdir`), so that they can be found there; borrowed when the tree is
    /// the whole repository. Overlay keys are left alone; so is a warning
    /// whose file is both a config path and an overlay key (config problems
    /// are errors, overlay problems warnings).
    pub fn from_root(&self, config: &Tree, overlay: Option<&Tree>) -> Cow<'_, Diagnostics> {
        let Some(subdir) = &config.source.subdir else {
            return Cow::Borrowed(self);
        };
        let holds =
            |t: &Tree, file: &str| t.files.contains_key(file) || t.unreadable.contains_key(file);
        let mut named = self.clone();
        for d in &mut named.0 {
            // `services/web.yaml#backends.a` names a part of a file.
            let file = d.file.split('#').next().unwrap_or_default();
            let in_overlay = overlay.is_some_and(|o| holds(o, file));
            if holds(config, file) && (!in_overlay || d.severity == Severity::Error) {
                d.file = format!("{subdir}/{}", d.file);
            }
        }
        Cow::Owned(named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_paths_and_messages_are_escaped() {
        let mut d = Diagnostics::default();
        d.error(
            "services/x\u{1b}[31m.yaml",
            Some(Pos { line: 1, column: 2 }),
            "bad\u{7}\nthing",
        );
        d.warning("a\tb", None, "plain");
        let shown: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "services/x\\u{1b}[31m.yaml:1:2: bad\\u{7}\\nthing",
                "warning: a\\tb: plain",
            ]
        );
        assert!(!shown.iter().any(|s| s.contains(char::is_control)));
    }

    #[test]
    fn config_files_are_named_from_the_repository_root() {
        let mut config = Tree::new("repo@abc:cfg");
        config.insert("services/web.yaml", "x");
        config.insert("services/both", "x");
        config.unreadable.insert("routes/bad".into(), "no".into());
        let mut overlay = Tree::new("etcd");
        overlay.insert("services/both", "x");
        let mut d = Diagnostics::default();
        d.error("services/web.yaml#backends.a", None, "e");
        d.error("routes/bad", None, "e");
        d.error("repo@abc:cfg", None, "no config files");
        d.warning("overlay:services/web/backends/a", None, "w");
        d.warning("services/both", None, "ambiguous");
        d.error("services/both", None, "a config error");
        assert!(matches!(
            d.from_root(&config, Some(&overlay)),
            Cow::Borrowed(_)
        ));
        config.source.subdir = Some("cfg".into());
        let named: Vec<String> = match d.from_root(&config, Some(&overlay)) {
            Cow::Owned(n) => n.0.into_iter().map(|d| d.file).collect(),
            Cow::Borrowed(_) => panic!("a subdir names files"),
        };
        assert_eq!(
            named,
            [
                "cfg/services/web.yaml#backends.a",
                "cfg/routes/bad",
                "repo@abc:cfg",
                "overlay:services/web/backends/a",
                "services/both",
                "cfg/services/both",
            ]
        );
    }
}
