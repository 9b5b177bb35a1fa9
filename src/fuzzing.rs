//! The checks behind the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer):
//! each takes the fuzzer's bytes and panics when a property breaks. Built
//! only with the `fuzzing` feature, so that the fast readers' private
//! entry points stay private in every other build. How to run the targets:
//! docs/fuzzing.md.
//!
//! Must not: do I/O or keep state between calls.

use crate::compile::Options;
use crate::diag::Diagnostics;
use crate::netlink::message::{
    AddrMsg, ErrorMsg, FamilyMsg, IpvsMsg, LinkMsg, NLMSG_ERROR, split_messages,
};
use crate::plan::saved::SavedPlan;
use crate::render::{self, Compiled, Rendered, memo::Memo};
use crate::tree::Tree;
use crate::{config, ipvsadm};

/// A config tree and an overlay tree from records `PATH\0CONTENT`
/// separated by `\0\0`; a path under `overlay/` goes to the overlay tree.
pub fn tree_of(data: &[u8]) -> (Tree, Tree) {
    let mut config = Tree::new("fuzz");
    let mut overlay = Tree::new("fuzz overlay");
    for record in split(data, b"\0\0") {
        let (path, content) = match record.iter().position(|&b| b == 0) {
            Some(i) => (&record[..i], &record[i + 1..]),
            None => (record, &b""[..]),
        };
        let Ok(path) = std::str::from_utf8(path) else {
            continue;
        };
        match path.strip_prefix("overlay/") {
            Some(key) => overlay.insert(key, content),
            None => config.insert(path, content),
        }
    }
    (config, overlay)
}

fn split<'a>(data: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                rest = Some(&r[i + sep.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Parse, compile and render never panic; diagnostics name files of their
/// tree; the incremental renderer equals the full render after an edit; a
/// clean render formats as a dump that parses and formats the same.
pub fn check_render(config: &Tree, overlay: &Tree) {
    let opts = Options::default();
    let full = render::render(config, Some(overlay), &opts);
    names_its_files(&full.diags, config, overlay);
    // The memo from a tree with one file less (an edit), then the tree.
    let mut before = config.clone();
    if let Some(last) = before.files.keys().last() {
        before.files.remove(&last);
    }
    let mut memo = Memo::new(opts.clone());
    memo.render(&before, Some(overlay));
    let incremental = memo.render(config, Some(overlay));
    same(incremental, &full);
    if full.is_ok() {
        let text = ipvsadm::format(&full.state);
        let reread = ipvsadm::parse(&text)
            .unwrap_or_else(|e| panic!("a rendered state's dump does not parse: {e}\n{text}"));
        assert_eq!(ipvsadm::format(&reread), text, "dump round trip");
    }
}

fn names_its_files(diags: &Diagnostics, config: &Tree, overlay: &Tree) {
    for d in &diags.0 {
        // `services/web.yaml#backends.a` names a part of a file; a path may
        // hold a `#` itself.
        let files = std::iter::once(d.file.as_str())
            .chain(d.file.match_indices('#').map(|(i, _)| &d.file[..i]));
        let named = files.into_iter().any(|file| {
            let known = |t: &Tree, f: &str| t.files.contains_key(f) || t.unreadable.contains_key(f);
            known(config, file)
                || file == config.source.description
                || file
                    .strip_prefix("overlay:")
                    .is_some_and(|key| known(overlay, key))
        });
        assert!(named, "diagnostic names no file of the trees: {d}");
    }
}

/// The memo keeps no parsed config or overlay: what it keeps is compared.
fn same(a: &Compiled, b: &Rendered) {
    assert!(a.state == b.state, "incremental state differs");
    assert!(a.health == b.health, "incremental health checks differ");
    // The checks are keyed like the state.
    assert!(
        a.health
            .services
            .keys()
            .all(|k| a.state.services.contains_key(k)),
        "a health check of a service not in the state"
    );
    assert_eq!(a.diags, b.diags, "incremental diagnostics differ");
    assert_eq!(a.config_hash, b.config_hash);
    assert_eq!(a.overlay_hash, b.overlay_hash);
}

/// The fast readers against the full parsers, on one file; its first byte
/// picks the reader (YAML service, YAML route, JSON frontend, JSON backend).
/// A YAML file also checks the lenient reading against serde-saphyr.
pub fn check_fast_readers(data: &[u8]) {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    if which % 4 < 2 {
        config::agree::yaml_shape(text);
    }
    let _took = match which % 4 {
        0 => config::agree::yaml_service(text),
        1 => config::agree::yaml_route(text),
        2 => config::agree::json_endpoints(text, true),
        _ => config::agree::json_endpoints(text, false),
    };
}

/// A dump that parses formats back to one that parses to the same state.
pub fn check_ipvsadm(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(state) = ipvsadm::parse(text) {
        let again = ipvsadm::format(&state);
        let reread = ipvsadm::parse(&again)
            .unwrap_or_else(|e| panic!("a formatted dump does not parse: {e}\n{again}"));
        assert_eq!(reread, state, "dump round trip\n{again}");
    }
}

/// Every layer parses without panicking; an IPVS message, a route netlink
/// link or address message, and an nf_tables table, chain or rule
/// message round-trip.
pub fn check_netlink(data: &[u8]) {
    let Ok(messages) = split_messages(data) else {
        return;
    };
    for m in messages {
        if m.header.kind == NLMSG_ERROR {
            let _ = ErrorMsg::parse(m.header.flags, m.payload);
            continue;
        }
        let _ = FamilyMsg::parse(m.payload);
        if let Ok(msg) = IpvsMsg::parse(m.payload) {
            let bytes = msg.emit();
            let again = IpvsMsg::parse(&bytes).expect("an emitted IPVS message parses");
            assert_eq!(again, msg, "IPVS message round trip");
        }
        if let Ok(link) = LinkMsg::parse(m.payload) {
            let again = LinkMsg::parse(&link.emit()).expect("an emitted link message parses");
            assert_eq!(again, link, "link message round trip");
        }
        if let Ok(addr) = AddrMsg::parse(m.payload) {
            let again = AddrMsg::parse(&addr.emit()).expect("an emitted address message parses");
            assert_eq!(again, addr, "address message round trip");
        }
        check_nft(m.payload);
    }
}

/// An nf_tables table, chain or rule message round-trips.
fn check_nft(p: &[u8]) {
    use crate::netlink::message::{ChainMsg, RuleMsg, TableMsg};
    if let Ok(t) = TableMsg::parse(p) {
        assert_eq!(
            TableMsg::parse(&t.emit()).ok(),
            Some(t),
            "nft table round trip"
        );
    }
    if let Ok(c) = ChainMsg::parse(p) {
        assert_eq!(
            ChainMsg::parse(&c.emit()).ok(),
            Some(c),
            "nft chain round trip"
        );
    }
    if let Ok(r) = RuleMsg::parse(p) {
        assert_eq!(
            RuleMsg::parse(&r.emit()).ok(),
            Some(r),
            "nft rule round trip"
        );
    }
}

/// Reading a saved plan never panics.
pub fn check_saved_plan(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SavedPlan::from_json(text);
    }
}

/// A keepalived.conf: reading never panics (includes resolve to one small
/// fixed file); what reads imports to a repository that renders back to
/// its table, or lists why not.
pub fn check_keepalived(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut include = |pattern: &str, _from: &str| {
        if pattern.len().is_multiple_of(2) {
            Ok(vec![(
                "included.conf".to_string(),
                FUZZ_INCLUDED.to_string(),
            )])
        } else {
            Err("no file matches".to_string())
        }
    };
    let mut input = crate::import::keepalived::syntax::Input {
        config_id: Some("lb1"),
        include: &mut include,
    };
    let Ok(table) = crate::import::keepalived::table("fuzz.conf", text, &mut input) else {
        return;
    };
    // Bounded work per input: a few large groups expand to many services.
    if table.state.services.len() > 512 {
        return;
    }
    let repo = crate::import::repo(&table);
    let invalid = repo
        .skipped
        .iter()
        .any(|s| s.what.starts_with("the written file does not validate"));
    let differ: Vec<_> = repo
        .skipped
        .iter()
        .filter(|s| s.what.contains("renders this service differently"))
        .collect();
    assert!(
        invalid || differ.is_empty(),
        "a valid import renders differently: {differ:?}\n{text}"
    );
}

const FUZZ_INCLUDED: &str =
    "virtual_server 10.9.0.1 80 {\n protocol TCP\n real_server 10.9.1.1 8080 { weight 2 }\n}\n";
