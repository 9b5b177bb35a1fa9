//! The fast readers against the full parsers: whatever a fast reader takes,
//! the full parser reads the same way and reports nothing. And `lenient`
//! against serde-saphyr: whatever file serde-saphyr refuses for its shape,
//! `lenient` reports that problem too, worded and placed alike. Each check
//! panics on a disagreement and says whether it applied to the file. Used
//! by the unit tests and the `fast_readers` fuzz target.
//!
//! Must not: be called on a path that serves users (it parses twice).

use super::fast::{fast_json_endpoints, fast_yaml_route, fast_yaml_service};
use super::json::full_json_endpoints;
use super::lenient;
use super::raw::{RawDefaultsFile, RawRouteFile, RawServiceFile};
use super::validate::Reporter;
use super::yaml::{full_yaml_route, full_yaml_service, shape_readings};
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

/// A YAML file as a service, a route and `clusterf.yaml`: wherever
/// serde-saphyr refuses it for its shape, `lenient` reports serde-saphyr's
/// problem among its own. Whether any of the three applied.
pub fn yaml_shape(text: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(text) else {
        return false;
    };
    let readings = [
        shape_readings::<RawServiceFile>(text, |r, t, o| lenient::service(r, t, o).is_ok()),
        shape_readings::<RawRouteFile>(text, |r, t, o| lenient::route(r, t, o).is_ok()),
        shape_readings::<Option<RawDefaultsFile>>(text, |r, t, o| {
            lenient::defaults(r, t, o).is_ok()
        }),
    ];
    let mut applied = false;
    for (serde, lenient) in readings.into_iter().flatten() {
        applied = true;
        assert!(
            lenient.iter().any(|d| *d == serde),
            "serde-saphyr: {serde}; lenient: {lenient:?}; on {text:?}"
        );
    }
    applied
}

fn agree(text: &[u8], diags: Diagnostics, same: bool) {
    let text = String::from_utf8_lossy(text);
    assert!(
        diags.is_empty(),
        "fast path took {text:?}; full path: {diags:?}"
    );
    assert!(same, "fast and full differ on {text:?}");
}
