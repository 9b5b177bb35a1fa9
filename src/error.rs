//! Error text for people: an `anyhow` chain as one line. Used by the CLI and
//! the edges (netlink, the daemon) alike.
//!
//! Invariant: formatting only; knows nothing of the command line.

/// `outer: inner: innermost`, lowercase as written by the callers.
pub fn format_error(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if parts.last().is_none_or(|last| !last.ends_with(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
