//! The JSON plan document (docs/plan-format.md) written by hand: byte for
//! byte what `serde_json`'s pretty printer writes of it (two-space indent,
//! `[]` and `{}` when empty, its string escapes), at a fraction of the
//! cost: a plan from empty is ~600 bytes of JSON per change, and serde's
//! per-value calls and escaping of every key were most of `plan -o json`.
//! The head of the document (inputs, live, ownership, summary, refused),
//! a few hundred bytes, still goes through serde.
//!
//! Invariant: the same text as the serde rendering of the same values
//! (held by this module's tests, the golden cases and the plan tests); no
//! I/O of its own (the caller spills the buffer).

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Serialize;

use super::{Fields, before_after};
use crate::model::text::{push_socket_addr, push_u32};
use crate::model::tunnel::Tunnel;
use crate::model::{DestAttrs, IpvsState, Op, Provenance, Service, ServiceAttrs, ServiceKey};
use crate::plan::{Action, Change, Emptied, Unmanaged};

/// Enough for the deepest value of the document (an op's attrs' flags).
const SPACES: &str = "                                ";

fn indent(out: &mut String, depth: usize) {
    out.push_str(&SPACES[..2 * depth]);
}

/// An object or array being written at `depth`: its opening bracket is
/// out, its members go one level deeper.
struct Open {
    depth: usize,
    empty: bool,
}

impl Open {
    fn object(out: &mut String, depth: usize) -> Open {
        out.push('{');
        Open { depth, empty: true }
    }

    fn array(out: &mut String, depth: usize) -> Open {
        out.push('[');
        Open { depth, empty: true }
    }

    /// Starts the next member of an array.
    fn item(&mut self, out: &mut String) {
        out.push_str(if self.empty { "\n" } else { ",\n" });
        indent(out, self.depth + 1);
        self.empty = false;
    }

    /// Starts the next member of an object: `"name": `.
    fn key(&mut self, out: &mut String, name: &str) {
        self.item(out);
        out.push('"');
        out.push_str(name);
        out.push_str("\": ");
    }

    fn close(self, out: &mut String, bracket: char) {
        if !self.empty {
            out.push('\n');
            indent(out, self.depth);
        }
        out.push(bracket);
    }
}

/// A JSON string, escaped as serde_json escapes it.
fn push_str(out: &mut String, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // Rare (a reason or name with a quote or control character).
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

fn push_usize(out: &mut String, n: usize) {
    match u32::try_from(n) {
        Ok(n) => push_u32(out, n),
        Err(_) => {
            let _ = write!(out, "{n}");
        }
    }
}

/// A service key's `Display` text, quoted (never needs escaping).
fn push_key(out: &mut String, key: &ServiceKey) {
    out.push('"');
    match key {
        ServiceKey::Addr { protocol, addr } => {
            out.push_str(protocol.as_str());
            out.push_str("://");
            push_socket_addr(out, addr);
        }
        ServiceKey::Fwmark { .. } => {
            let _ = write!(out, "{key}");
        }
    }
    out.push('"');
}

fn push_addr(out: &mut String, addr: &SocketAddr) {
    out.push('"');
    push_socket_addr(out, addr);
    out.push('"');
}

fn push_strings(out: &mut String, depth: usize, items: &[String]) {
    let mut a = Open::array(out, depth);
    for s in items {
        a.item(out);
        push_str(out, s);
    }
    a.close(out, ']');
}

/// The head of the document as serde writes it, without its closing
/// `\n}`: the rest is appended by hand.
pub(super) fn push_head(out: &mut String, head: &impl Serialize) {
    let text = serde_json::to_string_pretty(head).unwrap_or_default();
    out.push_str(text.strip_suffix("\n}").unwrap_or(&text));
}

/// `,\n  "emptied": [...]` (a member of the document, depth 1).
pub(super) fn push_emptied(out: &mut String, emptied: &[Emptied]) {
    out.push_str(",\n  \"emptied\": ");
    let mut a = Open::array(out, 1);
    for e in emptied {
        a.item(out);
        let mut o = Open::object(out, 2);
        o.key(out, "service");
        push_key(out, &e.service);
        o.key(out, "dests_before");
        push_usize(out, e.dests_before);
        o.key(out, "dests_after");
        push_usize(out, e.dests_after);
        o.close(out, '}');
    }
    a.close(out, ']');
}

/// `,\n  "unmanaged": [...]\n}\n`: the last member and the document's end.
pub(super) fn push_unmanaged_and_end(out: &mut String, unmanaged: &[Unmanaged]) {
    out.push_str(",\n  \"unmanaged\": ");
    let mut a = Open::array(out, 1);
    for u in unmanaged {
        a.item(out);
        let mut o = Open::object(out, 2);
        o.key(out, "service");
        push_key(out, &u.service);
        o.key(out, "dests");
        push_usize(out, u.dests);
        o.close(out, '}');
    }
    a.close(out, ']');
    out.push_str("\n}\n");
}

/// The `"changes"` array, one change at a time: `start`, `change` per
/// change, `end`. Consecutive changes mostly share their service (a
/// service's dests follow it): its text and desired entry are kept from
/// one change to the next.
pub(super) struct ChangesArray<'a> {
    open: Open,
    desired: &'a IpvsState,
    /// The last change's service, its quoted text, its desired entry.
    service: Option<ServiceKey>,
    service_text: String,
    entry: Option<&'a Service>,
    /// The current change's quoted dest.
    dest_text: String,
}

impl<'a> ChangesArray<'a> {
    pub(super) fn start(out: &mut String, desired: &'a IpvsState) -> Self {
        out.push_str(",\n  \"changes\": ");
        ChangesArray {
            open: Open::array(out, 1),
            desired,
            service: None,
            service_text: String::with_capacity(64),
            entry: None,
            dest_text: String::with_capacity(64),
        }
    }

    pub(super) fn change(&mut self, out: &mut String, c: &Change) {
        self.open.item(out);
        if self.service.as_ref() != Some(c.service()) {
            self.service = Some(*c.service());
            self.service_text.clear();
            push_key(&mut self.service_text, c.service());
            self.entry = self.desired.services.get(c.service());
        }
        self.dest_text.clear();
        match c.dest() {
            Some(d) => push_addr(&mut self.dest_text, &d),
            None => self.dest_text.push_str("null"),
        }
        self.push_change(out, c);
    }

    pub(super) fn end(self, out: &mut String) {
        self.open.close(out, ']');
    }

    /// One change, an object at depth 2 (docs/plan-format.md's field
    /// order), its fixed keys and indents written as literals.
    fn push_change(&self, out: &mut String, c: &Change) {
        let action = c.action();
        out.push_str("{\n      \"action\": ");
        out.push_str(action_text(action));
        out.push_str(",\n      \"service\": ");
        out.push_str(&self.service_text);
        out.push_str(",\n      \"dest\": ");
        out.push_str(&self.dest_text);
        let (before, after) = before_after(c);
        out.push_str(",\n      \"before\": ");
        push_optional_fields(out, 3, before.as_ref());
        out.push_str(",\n      \"after\": ");
        push_optional_fields(out, 3, after.as_ref());
        // What the desired state says of the service or dest added or
        // edited (as `names`, `provenance_of` and `health_of`).
        let (names, dest, note) = match (action, c.dest(), self.entry) {
            (Action::Add | Action::Edit, None, Some(s)) => (s.names.as_slice(), None, None),
            (Action::Add | Action::Edit, Some(d), Some(s)) => {
                (&[][..], s.dests.get(&d), s.health.get(&d))
            }
            _ => (&[][..], None, None),
        };
        if !names.is_empty() {
            out.push_str(",\n      \"names\": ");
            push_strings(out, 3, names);
        }
        if matches!(c.op, Op::DelService { .. }) {
            out.push_str(",\n      \"dests_removed\": ");
            push_usize(out, c.dests_removed());
        }
        out.push_str(",\n      \"provenance\": ");
        push_provenance(out, dest.map_or(&[], |d| &d.provenance));
        if let Some(reason) = note.filter(|_| dest.is_some()) {
            out.push_str(",\n      \"health\": ");
            push_str(out, reason);
        }
        out.push_str(",\n      \"op\": ");
        self.push_op(out, &c.op);
        out.push_str("\n    }");
    }

    /// An [`Op`] as its own `Serialize` writes it (`{"op": "add_dest",
    /// "service", "dest", "attrs"}`), at depth 3: the same service and
    /// dest as the change's.
    fn push_op(&self, out: &mut String, op: &Op) {
        let tag = match op {
            Op::AddService { .. } => "{\n        \"op\": \"add_service\"",
            Op::EditService { .. } => "{\n        \"op\": \"edit_service\"",
            Op::DelService { .. } => "{\n        \"op\": \"del_service\"",
            Op::AddDest { .. } => "{\n        \"op\": \"add_dest\"",
            Op::EditDest { .. } => "{\n        \"op\": \"edit_dest\"",
            Op::DelDest { .. } => "{\n        \"op\": \"del_dest\"",
        };
        out.push_str(tag);
        out.push_str(",\n        \"service\": ");
        out.push_str(&self.service_text);
        if matches!(
            op,
            Op::AddDest { .. } | Op::EditDest { .. } | Op::DelDest { .. }
        ) {
            out.push_str(",\n        \"dest\": ");
            out.push_str(&self.dest_text);
        }
        match op {
            Op::AddService { attrs, .. } | Op::EditService { attrs, .. } => {
                out.push_str(",\n        \"attrs\": ");
                push_service_attrs(out, attrs);
            }
            Op::AddDest { attrs, .. } | Op::EditDest { attrs, .. } => {
                out.push_str(",\n        \"attrs\": ");
                push_dest_attrs(out, attrs);
            }
            Op::DelService { .. } | Op::DelDest { .. } => {}
        }
        out.push_str("\n      }");
    }
}

fn action_text(action: Action) -> &'static str {
    match action {
        Action::Add => "\"add\"",
        Action::Edit => "\"edit\"",
        Action::Delete => "\"delete\"",
    }
}

fn push_optional_fields(out: &mut String, depth: usize, fields: Option<&Fields>) {
    let Some(f) = fields else {
        out.push_str("null");
        return;
    };
    let mut o = Open::object(out, depth);
    if let Some(s) = &f.scheduler {
        o.key(out, "scheduler");
        push_str(out, s);
    }
    let numbers = [
        ("persistence", f.persistence),
        ("netmask", f.netmask.map(u32::from)),
    ];
    for (name, n) in numbers {
        if let Some(n) = n {
            o.key(out, name);
            push_u32(out, n);
        }
    }
    if let Some(flags) = &f.flags {
        o.key(out, "flags");
        push_strings(out, depth + 1, flags);
    }
    if let Some(m) = f.method {
        o.key(out, "method");
        push_str(out, m.as_str());
    }
    let numbers = [
        ("weight", f.weight),
        ("upper_threshold", f.upper_threshold),
        ("lower_threshold", f.lower_threshold),
    ];
    for (name, n) in numbers {
        if let Some(n) = n {
            o.key(out, name);
            push_u32(out, n);
        }
    }
    if let Some(t) = &f.tunnel {
        o.key(out, "tunnel");
        push_tunnel(out, depth + 1, t);
    }
    o.close(out, '}');
}

/// A [`Tunnel`] as its `Serialize` writes it, an object at `depth`.
fn push_tunnel(out: &mut String, depth: usize, t: &Tunnel) {
    let mut o = Open::object(out, depth);
    o.key(out, "type");
    match t.type_name() {
        Some(name) => push_str(out, name),
        None => push_u32(out, u32::from(t.kind)),
    }
    if t.has_port() {
        o.key(out, "port");
        push_u32(out, u32::from(t.port));
    }
    if t.has_checksum() {
        o.key(out, "checksum");
        match t.checksum_name() {
            Some(name) => push_str(out, name),
            None => push_u32(out, u32::from(t.flags)),
        }
    }
    o.close(out, '}');
}

/// A change's provenance, an array at depth 3.
fn push_provenance(out: &mut String, provenance: &[Provenance]) {
    if provenance.is_empty() {
        out.push_str("[]");
        return;
    }
    out.push('[');
    for (i, p) in provenance.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        out.push_str("        {\n          \"backend\": ");
        push_str(out, &p.backend);
        out.push_str(",\n          \"source\": ");
        match p.source_parts() {
            (source, "") => push_str(out, source),
            (prefix, name) => push_str(out, &[prefix, name].concat()),
        }
        out.push_str(",\n          \"weight\": ");
        push_u32(out, p.weight);
        if let Some(route) = &p.route {
            out.push_str(",\n          \"route\": ");
            push_str(out, route);
        }
        if p.fallback {
            out.push_str(",\n          \"fallback\": true");
        }
        out.push_str("\n        }");
    }
    out.push_str("\n      ]");
}

/// [`ServiceAttrs`] as its derived `Serialize` writes it, at depth 4.
fn push_service_attrs(out: &mut String, attrs: &ServiceAttrs) {
    let mut o = Open::object(out, 4);
    o.key(out, "scheduler");
    push_str(out, &attrs.scheduler);
    if let Some(p) = attrs.persistence {
        o.key(out, "persistence");
        push_u32(out, p);
    }
    if let Some(n) = attrs.netmask {
        o.key(out, "netmask");
        push_u32(out, u32::from(n));
    }
    if !attrs.flags.is_empty() {
        o.key(out, "flags");
        push_strings(out, 5, &attrs.flags);
    }
    o.close(out, '}');
}

/// [`DestAttrs`] as its derived `Serialize` writes it, at depth 4.
fn push_dest_attrs(out: &mut String, attrs: &DestAttrs) {
    out.push_str("{\n          \"method\": \"");
    out.push_str(attrs.method.as_str());
    out.push_str("\",\n          \"weight\": ");
    push_u32(out, attrs.weight);
    if attrs.upper_threshold != 0 {
        out.push_str(",\n          \"upper_threshold\": ");
        push_u32(out, attrs.upper_threshold);
    }
    if attrs.lower_threshold != 0 {
        out.push_str(",\n          \"lower_threshold\": ");
        push_u32(out, attrs.lower_threshold);
    }
    if attrs.tunnel != Tunnel::IPIP {
        out.push_str(",\n          \"tunnel\": ");
        push_tunnel(out, 5, &attrs.tunnel);
    }
    out.push_str("\n        }");
}
