//! Which part of a render a tree path feeds: one config service (its own
//! files in the config tree, its backend keys in the overlay tree) or the
//! global part (defaults, routes, overlay routes, anything else). The memo
//! re-renders a service part alone when only that service's paths changed.
//!
//! Invariant: a path is a service's only when `config` surely reads it as
//! part of that service and nothing else (`services/<svc>.yaml` or `.yml`,
//! `services/<svc>/frontend`, `services/<svc>/healthcheck`,
//! `services/<svc>/backends/<id>`; in the
//! overlay only the backend keys). Anything else is global. This module
//! reads paths, never contents.

/// The part a path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// Feeds only the named config service.
    Service(&'a str),
    /// Feeds every service (defaults, routes) or is outside the layout.
    Global,
}

/// The part of a config tree path.
pub fn of_config_path(path: &str) -> Part<'_> {
    let mut parts = path.split('/');
    let (Some("services"), Some(second)) = (parts.next(), parts.next()) else {
        return Part::Global;
    };
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => match strip_yaml(second) {
            Some(name) => Part::Service(name),
            None => Part::Global,
        },
        (Some("frontend" | "healthcheck" | "fallback"), None, _) => Part::Service(second),
        (Some("backends"), Some(_), None) => Part::Service(second),
        _ => Part::Global,
    }
}

/// The part of an overlay tree key: only backend keys belong to a service
/// (an overlay frontend is ignored with a warning: global).
pub fn of_overlay_path(path: &str) -> Part<'_> {
    let mut parts = path.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("services"), Some(svc), Some("backends"), Some(_), None) => Part::Service(svc),
        _ => Part::Global,
    }
}

/// `web.yaml` or `web.yml` -> `web`; an empty name is no service file.
fn strip_yaml(file: &str) -> Option<&str> {
    file.strip_suffix(".yaml")
        .or_else(|| file.strip_suffix(".yml"))
        .filter(|name| !name.is_empty())
}

/// The config paths that may belong to service `svc`, as key ranges of a
/// sorted tree: the two YAML files and everything below `services/<svc>/`
/// (filter with [`of_config_path`]).
pub fn config_paths(svc: &str) -> [String; 3] {
    [
        format!("services/{svc}.yaml"),
        format!("services/{svc}.yml"),
        format!("services/{svc}/"),
    ]
}

/// The overlay key prefix of service `svc`'s backends.
pub fn overlay_prefix(svc: &str) -> String {
    format!("services/{svc}/backends/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_paths_are_classified_like_config_reads_them() {
        assert_eq!(of_config_path("services/web.yaml"), Part::Service("web"));
        assert_eq!(of_config_path("services/web.yml"), Part::Service("web"));
        assert_eq!(of_config_path("services/a.b.yaml"), Part::Service("a.b"));
        assert_eq!(of_config_path("services/.yaml"), Part::Global);
        assert_eq!(of_config_path("services/web"), Part::Global);
        assert_eq!(of_config_path("services/web.json"), Part::Global);
        assert_eq!(
            of_config_path("services/web/frontend"),
            Part::Service("web")
        );
        assert_eq!(
            of_config_path("services/web/backends/a"),
            Part::Service("web")
        );
        assert_eq!(
            of_config_path("services/web/healthcheck"),
            Part::Service("web")
        );
        assert_eq!(of_config_path("services/web/backends"), Part::Global);
        assert_eq!(of_config_path("services/web/backends/a/b"), Part::Global);
        assert_eq!(of_config_path("services/web/frontend/x"), Part::Global);
        assert_eq!(of_config_path("services/web/other"), Part::Global);
        assert_eq!(of_config_path("routes/r.yaml"), Part::Global);
        assert_eq!(of_config_path("clusterf.yaml"), Part::Global);
        assert_eq!(of_config_path("README.md"), Part::Global);
        assert_eq!(of_config_path("services"), Part::Global);
    }

    #[test]
    fn overlay_paths_only_backends_belong_to_a_service() {
        assert_eq!(
            of_overlay_path("services/web/backends/a"),
            Part::Service("web")
        );
        assert_eq!(of_overlay_path("services/web/frontend"), Part::Global);
        assert_eq!(of_overlay_path("services/web.yaml"), Part::Global);
        assert_eq!(of_overlay_path("services/web/backends/a/b"), Part::Global);
        assert_eq!(of_overlay_path("routes/r"), Part::Global);
    }
}
