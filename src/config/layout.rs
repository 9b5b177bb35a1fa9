//! The tree layout: what a path is (a service, a frontend, a backend, a
//! route, the defaults, or nothing of the layout), and the keys of the JSON
//! layout's files. Names only: nothing here reads a file's contents.

/// What a path in a tree is, by layout.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Entry<'a> {
    Defaults,
    ServiceYaml(&'a str),
    Frontend(&'a str),
    /// The JSON layout's `services/<svc>/healthcheck`.
    Healthcheck(&'a str),
    /// The JSON layout's `services/<svc>/fallback`.
    Fallback(&'a str),
    Backend(&'a str, &'a str),
    RouteYaml(&'a str),
    RouteJson(&'a str),
    /// An editor's backup, lock, swap or probe file: skipped silently, so
    /// an open editor never breaks the config.
    EditorFile,
    Other,
}

/// Whether a file name is an editor's leftover: an emacs backup (`api-1~`)
/// or lock (`.#api-1`), a vim swap file (`.swp`, `.swx`) or vim's
/// write-probe `4913`.
fn is_editor_file(name: &str) -> bool {
    name.ends_with('~')
        || name.starts_with(".#")
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name == "4913"
}

/// What `path` is in the layout.
pub(super) fn classify(path: &str) -> Entry<'_> {
    if is_editor_file(path.rsplit('/').next().unwrap_or(path)) {
        return Entry::EditorFile;
    }
    // Up to four components; more is nothing of the layout.
    let mut parts = [None; 4];
    let mut n = 0;
    let mut start = 0;
    for (i, b) in path.bytes().enumerate() {
        if b == b'/' {
            if n == 3 {
                return Entry::Other;
            }
            parts[n] = Some(&path[start..i]);
            n += 1;
            start = i + 1;
        }
    }
    parts[n] = Some(&path[start..]);
    match parts {
        [Some("clusterf.yaml" | "clusterf.yml"), None, ..] => Entry::Defaults,
        [Some("services"), Some(file), None, _] => strip_yaml(file)
            .map(Entry::ServiceYaml)
            .unwrap_or(Entry::Other),
        [Some("services"), Some(svc), Some("frontend"), None] => Entry::Frontend(svc),
        [Some("services"), Some(svc), Some("healthcheck"), None] => Entry::Healthcheck(svc),
        [Some("services"), Some(svc), Some("fallback"), None] => Entry::Fallback(svc),
        [Some("services"), Some(svc), Some("backends"), Some(name)] => Entry::Backend(svc, name),
        [Some("routes"), Some(file), None, _] => match strip_yaml(file) {
            Some(name) => Entry::RouteYaml(name),
            None if !file.contains('.') => Entry::RouteJson(file),
            None => Entry::Other,
        },
        _ => Entry::Other,
    }
}

fn strip_yaml(file: &str) -> Option<&str> {
    file.strip_suffix(".yaml")
        .or_else(|| file.strip_suffix(".yml"))
        .filter(|name| !name.is_empty())
}

/// Why a path outside the layout looks like a mistake that drops part of
/// the config (`service/web.yaml`, a `routes` file, `services/web/backend/a`),
/// with the entry it names (`service/`): `None` for a path nothing of the
/// layout resembles (`README.md`, `docs/`), which is ignored.
pub(super) fn misplaced(path: &str) -> Option<(&str, String)> {
    let (top, below) = match path.split_once('/') {
        Some((top, below)) => (top, Some(below)),
        None => (path, None),
    };
    let dir = below.is_some();
    match (top, below) {
        ("services" | "routes", None) => {
            return Some((
                top,
                format!("a file, but {top} are read from the directory {top}/: not read"),
            ));
        }
        ("clusterf.yaml" | "clusterf.yml", Some(_)) => {
            return Some((
                &path[..top.len() + 1],
                format!(
                    "{top}/ is a directory, but the defaults are read from the file {top}: nothing below it is read"
                ),
            ));
        }
        ("services", Some(below)) => return misplaced_in_service(path, below),
        ("routes", Some(_)) => return None,
        _ => {}
    }
    let lower = top.to_ascii_lowercase();
    let stem = lower.split('.').next().unwrap_or_default();
    // A file is a near miss only with an extension the layout reads (a
    // `services.md` documents; a `services.yaml` is a mistake).
    let ext = lower.rsplit_once('.').map(|(_, e)| e);
    if !dir && !matches!(ext, None | Some("yaml" | "yml" | "json")) {
        return None;
    }
    let meant = if near(stem, "services") {
        "services/"
    } else if near(stem, "routes") {
        "routes/"
    } else if near(stem, "clusterf") {
        "clusterf.yaml"
    } else {
        return None;
    };
    let entry = if dir { &path[..top.len() + 1] } else { top };
    Some(near_miss(path, entry, meant))
}

/// A JSON service directory's entry that misspells `frontend`,
/// `healthcheck`, `fallback` or `backends` (`services/web/backend/a`).
fn misplaced_in_service<'p>(path: &'p str, below: &str) -> Option<(&'p str, String)> {
    let (svc, rest) = below.split_once('/')?;
    let (child, dir) = match rest.split_once('/') {
        Some((child, _)) => (child, true),
        None => (rest, false),
    };
    let lower = child.to_ascii_lowercase();
    let meant = ["frontend", "healthcheck", "fallback", "backends"]
        .into_iter()
        .find(|m| near(&lower, m) && child != *m)?;
    let len = "services/".len() + svc.len() + 1 + child.len() + usize::from(dir);
    let slash = if dir { "/" } else { "" };
    Some(near_miss(
        path,
        &path[..len],
        &format!("services/{svc}/{meant}{slash}"),
    ))
}

/// The entry of `path` that is a near miss of `meant`, and the message.
fn near_miss<'p>(path: &str, entry: &'p str, meant: &str) -> (&'p str, String) {
    let why = if entry == path {
        format!("not part of the config layout, so it is not read: did you mean {meant}?")
    } else {
        format!(
            "{entry} is not part of the config layout, so nothing below it is read: did you mean {meant}?"
        )
    };
    (entry, why)
}

/// Whether `a` is `b` or one edit from it: a letter changed, added,
/// dropped, or two neighbours swapped.
fn near(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    match (a.len(), b.len()) {
        (0, 0) => true,
        (x, y) if x == y => {
            a[1..] == b[1..] || (x >= 2 && a[0] == b[1] && a[1] == b[0] && a[2..] == b[2..])
        }
        (x, y) if x + 1 == y => a == &b[1..],
        (x, y) if x == y + 1 => &a[1..] == b,
        _ => false,
    }
}

/// Keys of a JSON frontend, backend and route file (matched without case).
/// The frontend file is its service's: the YAML frontend's keys and the
/// YAML service's scalar ones.
pub(super) const FRONTEND_KEYS: &[&str] = &[
    "ipv4",
    "ipv6",
    "tcp",
    "udp",
    "fwmark_ipv4",
    "fwmark_ipv6",
    "scheduler",
    "persistence",
    "persistence_netmask_ipv4",
    "persistence_netmask_ipv6",
    "persistence_engine",
    "ops",
    "scheduler_flags",
    "default_weight",
];
pub(super) const BACKEND_KEYS: &[&str] = super::raw::BACKEND_FIELDS;
/// Keys of the JSON layout's `healthcheck` file: the YAML key's.
pub(super) const HEALTHCHECK_KEYS: &[&str] = super::raw::HEALTHCHECK_FIELDS;
/// Keys of the JSON layout's `fallback` file: the YAML key's.
pub(super) const FALLBACK_KEYS: &[&str] = super::raw::FALLBACK_FIELDS;
pub(super) const ROUTE_KEYS: &[&str] = &[
    "Prefix",
    "Prefix4",
    "Prefix6",
    "Gateway",
    "Gateway4",
    "Gateway6",
    "IPVSMethod",
    "IPVSTunnelType",
    "IPVSTunnelPort",
    "IPVSTunnelChecksum",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    /// What `path` is in the layout.
    pub(super) fn classify_paths() {
        assert_eq!(classify("services/web.yaml"), Entry::ServiceYaml("web"));
        assert_eq!(classify("services/web.yml"), Entry::ServiceYaml("web"));
        assert_eq!(classify("services/web/frontend"), Entry::Frontend("web"));
        assert_eq!(
            classify("services/web/healthcheck"),
            Entry::Healthcheck("web")
        );
        assert_eq!(
            classify("services/web/backends/a"),
            Entry::Backend("web", "a")
        );
        assert_eq!(classify("routes/r1"), Entry::RouteJson("r1"));
        assert_eq!(classify("routes/r1.yaml"), Entry::RouteYaml("r1"));
        assert_eq!(classify("routes/r1.txt"), Entry::Other);
        for leftover in [
            "services/web/backends/api-1~",
            "services/web/backends/.#api-1",
            "services/web/backends/api-1.swp",
            "services/web/backends/api-1.swx",
            "services/web/backends/4913",
            "services/web.yaml~",
            "routes/r1~",
            "routes/4913",
            "clusterf.yaml~",
        ] {
            assert_eq!(classify(leftover), Entry::EditorFile, "{leftover}");
        }
        assert_eq!(
            classify("services/web/backends/4914"),
            Entry::Backend("web", "4914")
        );
        assert_eq!(classify("clusterf.yaml"), Entry::Defaults);
        assert_eq!(classify("README.md"), Entry::Other);
    }

    #[test]
    fn near_misses_of_layout_names_are_found_and_others_left_alone() {
        let entry = |p| misplaced(p).map(|(e, _)| e);
        for (path, e) in [
            ("service/web.yaml", "service/"),
            ("Services/web/frontend", "Services/"),
            ("servcies/web.yaml", "servcies/"),
            ("route/r1.yaml", "route/"),
            ("routes", "routes"),
            ("services", "services"),
            ("routes.yaml", "routes.yaml"),
            ("clusterf.json", "clusterf.json"),
            ("Clusterf.yaml", "Clusterf.yaml"),
            ("clusterf.yaml/x", "clusterf.yaml/"),
            ("services/web/backend/a", "services/web/backend/"),
            ("services/web/Frontend", "services/web/Frontend"),
            ("services/web/frontends", "services/web/frontends"),
            ("services/web/healthchecks", "services/web/healthchecks"),
            ("services/web/Healthcheck", "services/web/Healthcheck"),
        ] {
            assert_eq!(entry(path), Some(e), "{path}");
        }
        for path in [
            "README.md",
            "docs/services.md",
            "roles/x",
            "devices/x",
            "router.md",
            "services.md",
            "clusterf.yaml.orig",
            "services/web/notes.txt",
            "services/web/backends/a",
            "services/README.md",
            "routes/r1.txt",
        ] {
            assert_eq!(entry(path), None, "{path}");
        }
        let (_, why) = misplaced("service/web.yaml").unwrap();
        assert_eq!(
            why,
            "service/ is not part of the config layout, so nothing below it is read: did you mean services/?"
        );
    }
}
