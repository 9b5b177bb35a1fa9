//! The tree layout: what a path is (a service, a frontend, a backend, a
//! route, the defaults, or nothing of the layout), and the keys of the JSON
//! layout's files. Names only: nothing here reads a file's contents.

/// What a path in a tree is, by layout.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Entry<'a> {
    Defaults,
    ServiceYaml(&'a str),
    Frontend(&'a str),
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

/// Keys of a JSON frontend, backend and route file (matched without case).
pub(super) const FRONTEND_KEYS: &[&str] = &["ipv4", "ipv6", "tcp", "udp"];
pub(super) const BACKEND_KEYS: &[&str] = &["ipv4", "ipv6", "tcp", "udp", "weight"];
pub(super) const ROUTE_KEYS: &[&str] = &[
    "Prefix",
    "Prefix4",
    "Prefix6",
    "Gateway",
    "Gateway4",
    "Gateway6",
    "IPVSMethod",
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
}
