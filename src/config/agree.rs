//! The fast readers against the full parsers: whatever a fast reader takes,
//! the full parser reads the same way and reports nothing. Each check
//! panics on a disagreement and says whether the fast reader took the
//! file. Used by the unit tests and the `fast_readers` fuzz target.
//!
//! Must not: be called on a path that serves users (it parses twice).

use super::fast::{fast_json_endpoints, fast_yaml_route, fast_yaml_service};
use super::json::full_json_endpoints;
use super::validate::Reporter;
use super::yaml::{full_yaml_route, full_yaml_service};
use crate::diag::Diagnostics;

/// A reporter for `file` into `diags`.
fn reporter<'a>(file: &'a str, diags: &'a mut Diagnostics) -> Reporter<'a> {
    Reporter {
        file,
        diags,
        failed: false,
    }
}

/// A YAML service file (`services/s.yaml`).
pub fn yaml_service(text: &[u8]) -> bool {
    let Some(fast) = fast_yaml_service("services/s.yaml", "s", text) else {
        return false;
    };
    let mut diags = Diagnostics::default();
    let full = full_yaml_service(&mut reporter("services/s.yaml", &mut diags), "s", text);
    agree(text, diags, Some(fast) == full);
    true
}

/// A YAML route file (`routes/r.yaml`).
pub fn yaml_route(text: &[u8]) -> bool {
    let Some(fast) = fast_yaml_route("routes/r.yaml", "r", text) else {
        return false;
    };
    let mut diags = Diagnostics::default();
    let full = full_yaml_route(&mut reporter("routes/r.yaml", &mut diags), "r", text);
    agree(text, diags, Some(fast) == full);
    true
}

/// A JSON-layout frontend or backend file, read strictly and not.
pub fn json_endpoints(text: &[u8], frontend: bool) -> bool {
    let Some(fast) = fast_json_endpoints("f", text, frontend) else {
        return false;
    };
    for strict in [true, false] {
        let mut diags = Diagnostics::default();
        let full = full_json_endpoints(&mut reporter("f", &mut diags), text, frontend, strict);
        agree(text, diags, Some(fast.clone()) == full);
    }
    true
}

fn agree(text: &[u8], diags: Diagnostics, same: bool) {
    let text = String::from_utf8_lossy(text);
    assert!(
        diags.is_empty(),
        "fast path took {text:?}; full path: {diags:?}"
    );
    assert!(same, "fast and full differ on {text:?}");
}
