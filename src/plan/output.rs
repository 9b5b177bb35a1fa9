//! Renderings of a plan: text for a terminal, markdown for a pull-request
//! comment, and the versioned JSON document (docs/plan-format.md), which is
//! also the saved-plan file.
//!
//! Text and markdown group the changes by service for reading (within a
//! service: its own change, then its dest changes in execution order); JSON
//! lists them all in execution order. A plan a guard refused says so in
//! every format, and so does a plan that empties services (names them).
//! Provenance (which backends, files and routes
//! made a dest) is looked up in the desired state.
//!
//! Each rendering is written as it is made, in chunks, to a writer the
//! caller passes (`write_*`): a plan of a million changes is never held
//! whole in memory (nor, by `write_outline_json`, the plan's adds).
//! `text`, `markdown` and `json` return the same as a `String`.
//!
//! Invariant: pure text building. This module does not decide whether to
//! colour (the caller passes that in), and opens no files or streams.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use super::saved::{FORMAT_VERSION, Inputs, LiveFingerprint};
use super::{
    Action, Before, Change, Emptied, Outline, Ownership, OwnershipDoc, Plan, Summary,
    canonical_service_attrs,
};
use crate::model::text::{push_socket_addr, push_u32};
use crate::model::tunnel::Tunnel;
use crate::model::{Dest, DestAttrs, IpvsState, Method, Op, Provenance, ServiceAttrs, ServiceKey};
use crate::text::plural;

mod json;

/// Changed or full attributes of a service or dest, as in the JSON
/// document. Service fields: `scheduler`, `persistence` (seconds, 0 = not
/// persistent), `netmask` (prefix length, only when persistent), `flags`.
/// Dest fields: `method`, `weight`, `upper_threshold`, `lower_threshold`
/// (0 = none), `tunnel` (a tunnel dest's encapsulation, unless ipip; both
/// sides of an edit that changes it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Fields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netmask: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
}

/// Every field of a service, canonical.
fn service_fields(key: &ServiceKey, attrs: &ServiceAttrs) -> Fields {
    let c = canonical_service_attrs(key, attrs);
    Fields {
        scheduler: Some(c.scheduler),
        persistence: Some(c.persistence.unwrap_or(0)),
        netmask: c
            .persistence
            .map(|_| c.netmask.unwrap_or(key.family().max_prefix_len())),
        flags: Some(c.flags),
        ..Fields::default()
    }
}

fn dest_fields(attrs: &DestAttrs) -> Fields {
    Fields {
        method: Some(attrs.method),
        weight: Some(attrs.weight),
        upper_threshold: Some(attrs.upper_threshold),
        lower_threshold: Some(attrs.lower_threshold),
        tunnel: Some(attrs.tunnel),
        ..Fields::default()
    }
}

/// All fields of a dest added or deleted: an ipip tunnel says nothing.
fn all_dest_fields(attrs: &DestAttrs) -> Fields {
    let mut f = dest_fields(attrs);
    f.tunnel = f.tunnel.filter(|t| *t != Tunnel::IPIP);
    f
}

/// Keeps in `a` and `b` only the fields whose values differ.
fn only_changed(mut a: Fields, mut b: Fields) -> (Fields, Fields) {
    macro_rules! keep_diff {
        ($($f:ident),*) => {$(
            if a.$f == b.$f {
                a.$f = None;
                b.$f = None;
            }
        )*};
    }
    keep_diff!(
        scheduler,
        persistence,
        netmask,
        flags,
        method,
        weight,
        upper_threshold,
        lower_threshold,
        tunnel
    );
    (a, b)
}

/// Before/after fields of a change, as the JSON document shows them: adds
/// have all fields after, deletes all fields before, edits the changed ones.
fn before_after(change: &Change) -> (Option<Fields>, Option<Fields>) {
    match (&change.op, &change.before) {
        (Op::AddService { service, attrs }, _) => (None, Some(service_fields(service, attrs))),
        (Op::AddDest { attrs, .. }, _) => (None, Some(all_dest_fields(attrs))),
        (Op::EditService { service, attrs }, Some(Before::Service(old))) => {
            let (a, b) = only_changed(
                service_fields(service, &old.attrs),
                service_fields(service, attrs),
            );
            (Some(a), Some(b))
        }
        (Op::EditDest { attrs, .. }, Some(Before::Dest(old))) => {
            let (a, b) = only_changed(dest_fields(old), dest_fields(attrs));
            (Some(a), Some(b))
        }
        (Op::DelService { service }, Some(Before::Service(old))) => {
            (Some(service_fields(service, &old.attrs)), None)
        }
        (Op::DelDest { .. }, Some(Before::Dest(old))) => (Some(all_dest_fields(old)), None),
        _ => (None, None),
    }
}

/// The desired dest a dest add or edit makes, and why health checks
/// changed it, if they did.
fn dest_of<'a>(desired: &'a IpvsState, change: &Change) -> Option<(&'a Dest, Option<&'a str>)> {
    match (change.action(), change.dest()) {
        (Action::Add | Action::Edit, Some(dest)) => {
            let service = desired.services.get(change.service())?;
            let d = service.dests.get(&dest)?;
            Some((d, service.health.get(&dest).map(|n| &**n)))
        }
        _ => None,
    }
}

#[cfg(test)]
fn provenance_of<'a>(desired: &'a IpvsState, change: &Change) -> &'a [Provenance] {
    dest_of(desired, change).map_or(&[], |(d, _)| &d.provenance)
}

/// Why health checks changed the dest, if they did.
#[cfg(test)]
fn health_of<'a>(desired: &'a IpvsState, change: &Change) -> Option<&'a str> {
    dest_of(desired, change)?.1
}

/// ` (unhealthy: http 503, 3 of 3 failed since 12:00:01)` for a dest
/// health changed, else its provenance.
fn origin_text(desired: &IpvsState, change: &Change) -> String {
    origin_text_of(dest_of(desired, change))
}

/// [`origin_text`] of the change's dest, looked up already.
fn origin_text_of(found: Option<(&Dest, Option<&str>)>) -> String {
    match found {
        Some((_, Some(reason))) => format!(" (unhealthy: {reason})"),
        _ => provenance_text(found.map_or(&[], |(d, _)| &d.provenance)),
    }
}

// ---------------------------------------------------------------------------
// JSON

/// The document's members before its lists, which serde writes.
#[derive(Serialize)]
struct Head<'a> {
    format_version: u32,
    inputs: &'a Inputs,
    live: &'a LiveFingerprint,
    ownership: OwnershipDoc,
    summary: Summary,
    /// `null`, or why a guard refused the plan (it is shown, never applied).
    refused: Option<&'a str>,
}

/// The JSON plan document (also the saved-plan file), with a final newline.
/// `refused` is the reason a guard refused the plan (`"refused"`; `null`
/// when it passed).
pub fn json(
    plan: &Plan,
    desired: &IpvsState,
    inputs: &Inputs,
    live: &LiveFingerprint,
    ownership: &Ownership,
    refused: Option<&str>,
) -> String {
    let doc = Document {
        desired,
        inputs,
        live,
        ownership,
        refused,
    };
    collect(|w| doc.write(w, plan, plan.changes.iter()))
}

/// [`json`] of an [`Outline`], written to `w` as it is made: the same
/// document, its adds made from `doc.desired` one at a time as they are
/// written ([`json`]'s module writes it by hand: the same text as serde's
/// pretty printer).
pub fn write_outline_json(
    w: &mut impl io::Write,
    outline: &Outline,
    doc: &Document<'_>,
) -> io::Result<()> {
    doc.write(w, &outline.rest, outline.changes(doc.desired))
}

/// What the plan document says besides the plan: the state it was planned
/// toward, its inputs, the live table's fingerprint, the ownership, and
/// why a guard refused it (`None`: it passed).
#[derive(Clone, Copy)]
pub struct Document<'a> {
    pub desired: &'a IpvsState,
    pub inputs: &'a Inputs,
    pub live: &'a LiveFingerprint,
    pub ownership: &'a Ownership,
    pub refused: Option<&'a str>,
}

impl Document<'_> {
    /// The document of `plan`'s counts and lists and of `changes` (all of
    /// the plan's, in order).
    fn write<C: Borrow<Change>>(
        &self,
        w: &mut impl io::Write,
        plan: &Plan,
        changes: impl Iterator<Item = C>,
    ) -> io::Result<()> {
        let head = Head {
            format_version: FORMAT_VERSION,
            inputs: self.inputs,
            live: self.live,
            ownership: self.ownership.doc(),
            summary: plan.summary,
            refused: self.refused,
        };
        let mut out = Chunks::new(w);
        json::push_head(&mut out.buf, &head);
        // Owned services left without a dest that takes connections.
        json::push_emptied(&mut out.buf, &plan.emptied);
        let mut array = json::ChangesArray::start(&mut out.buf, self.desired);
        for c in changes {
            array.change(&mut out.buf, c.borrow());
            out.spill()?;
        }
        array.end(&mut out.buf);
        json::push_unmanaged_and_end(&mut out.buf, &plan.unmanaged);
        out.finish()
    }
}

// ---------------------------------------------------------------------------
// Writing

/// How much text is built before it is handed to the writer.
const CHUNK: usize = 64 << 10;

/// Text built in a `String` and handed to a writer whenever it holds a
/// [`CHUNK`]: the `push_*` helpers keep appending to a `String`.
struct Chunks<'w, W: io::Write> {
    buf: String,
    w: &'w mut W,
}

impl<'w, W: io::Write> Chunks<'w, W> {
    fn new(w: &'w mut W) -> Self {
        Chunks {
            buf: String::with_capacity(CHUNK + CHUNK / 4),
            w,
        }
    }

    /// Writes out the text so far once it holds a chunk.
    fn spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.w.write_all(self.buf.as_bytes())?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes out the rest.
    fn finish(self) -> io::Result<()> {
        self.w.write_all(self.buf.as_bytes())
    }
}

/// What `write` writes, as a `String` (writing to memory does not fail;
/// every rendering is UTF-8).
fn collect(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
    let mut bytes = Vec::new();
    let _ = write(&mut bytes);
    String::from_utf8(bytes).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Text

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn sign(action: Action) -> char {
    match action {
        Action::Add => '+',
        Action::Edit => '~',
        Action::Delete => '-',
    }
}

fn netmask_text(key: &ServiceKey, netmask: Option<u8>) -> String {
    format!("/{}", netmask.unwrap_or(key.family().max_prefix_len()))
}

fn flags_text(flags: &[String]) -> String {
    if flags.is_empty() {
        "none".to_string()
    } else {
        flags.join(",")
    }
}

fn persistence_text(p: Option<u32>) -> String {
    p.map_or_else(|| "off".to_string(), |t| t.to_string())
}

/// `wlc persistence 300 netmask /24 flags ops`.
fn service_desc(key: &ServiceKey, attrs: &ServiceAttrs) -> String {
    let c = canonical_service_attrs(key, attrs);
    let mut s = c.scheduler.clone();
    if let Some(p) = c.persistence {
        let _ = write!(s, " persistence {p}");
        if c.netmask.is_some() {
            let _ = write!(s, " netmask {}", netmask_text(key, c.netmask));
        }
    }
    if !c.flags.is_empty() {
        let _ = write!(s, " flags {}", flags_text(&c.flags));
    }
    s
}

/// `scheduler wlc -> rr, persistence off -> 300`.
fn service_diff(key: &ServiceKey, old: &ServiceAttrs, new: &ServiceAttrs) -> String {
    let (a, b) = (
        canonical_service_attrs(key, old),
        canonical_service_attrs(key, new),
    );
    let mut parts = Vec::new();
    if a.scheduler != b.scheduler {
        parts.push(format!("scheduler {} -> {}", a.scheduler, b.scheduler));
    }
    if a.persistence != b.persistence {
        parts.push(format!(
            "persistence {} -> {}",
            persistence_text(a.persistence),
            persistence_text(b.persistence)
        ));
    }
    if a.netmask != b.netmask {
        parts.push(format!(
            "netmask {} -> {}",
            netmask_text(key, a.netmask),
            netmask_text(key, b.netmask)
        ));
    }
    if a.flags != b.flags {
        parts.push(format!(
            "flags {} -> {}",
            flags_text(&a.flags),
            flags_text(&b.flags)
        ));
    }
    parts.join(", ")
}

/// `masq weight 10 upper threshold 100`, `tunnel gue port 6080 weight 10`.
fn dest_desc(a: &DestAttrs) -> String {
    let mut s = format!("{} weight {}", a.method_text(), a.weight);
    if a.upper_threshold != 0 {
        let _ = write!(s, " upper threshold {}", a.upper_threshold);
    }
    if a.lower_threshold != 0 {
        let _ = write!(s, " lower threshold {}", a.lower_threshold);
    }
    s
}

/// `droute weight 20 -> 30` (the method leads when it does not change);
/// `tunnel gue port 6080 -> gue port 6081` (a tunnel's encapsulation, and
/// `method masq -> tunnel gre` when the method changes too).
fn dest_diff(a: &DestAttrs, b: &DestAttrs) -> String {
    let mut parts = Vec::new();
    let same_method = a.method == b.method;
    if !same_method {
        parts.push(format!("method {} -> {}", a.method_text(), b.method_text()));
    } else if a.tunnel != b.tunnel {
        parts.push(format!("tunnel {} -> {}", a.tunnel, b.tunnel));
    }
    if a.weight != b.weight {
        parts.push(format!("weight {} -> {}", a.weight, b.weight));
    }
    if a.upper_threshold != b.upper_threshold {
        parts.push(format!(
            "upper threshold {} -> {}",
            a.upper_threshold, b.upper_threshold
        ));
    }
    if a.lower_threshold != b.lower_threshold {
        parts.push(format!(
            "lower threshold {} -> {}",
            a.lower_threshold, b.lower_threshold
        ));
    }
    let changes = parts.join(", ");
    match (same_method, parts.first()) {
        // `tunnel ipip -> gre` names the method already.
        (true, Some(first)) if first.starts_with("tunnel ") => changes,
        (true, _) => format!("{} {changes}", b.method_text()),
        (false, _) => changes,
    }
}

/// `(test3-1 from services/test/backends/test3-1 via route test3)`,
/// `(merged: a=10, b=10 via route r)` or `(fallback from services/web.yaml)`.
fn provenance_text(provenance: &[Provenance]) -> String {
    match provenance {
        [] => String::new(),
        [o] if o.fallback => format!(" (fallback from {})", o.source()),
        [o] => {
            let mut s = format!(" ({} from {}", o.backend, o.source());
            if let Some(r) = &o.route {
                let _ = write!(s, " via route {r}");
            }
            s.push(')');
            s
        }
        many => {
            let shared_route = many
                .iter()
                .all(|o| o.route == many[0].route)
                .then(|| many[0].route.clone())
                .flatten();
            let parts: Vec<String> = many
                .iter()
                .map(|o| {
                    let mut p = format!("{}={}", o.backend, o.weight);
                    if let (None, Some(r)) = (&shared_route, &o.route) {
                        let _ = write!(p, " via route {r}");
                    }
                    p
                })
                .collect();
            let mut s = format!(" (merged: {}", parts.join(", "));
            if let Some(r) = shared_route {
                let _ = write!(s, " via route {r}");
            }
            s.push(')');
            s
        }
    }
}

/// Appends the line of one change, without colour or newline: dest adds and
/// deletes (nearly all of a large plan) piece by piece, the rest as
/// [`change_line`] writes it.
fn push_change_line(out: &mut String, change: &Change, desired: &IpvsState) {
    match &change.op {
        Op::AddDest { dest, attrs, .. } => {
            out.push_str("+   dest ");
            push_socket_addr(out, dest);
            out.push(' ');
            out.push_str(attrs.method.as_str());
            if attrs.tunnel != Tunnel::IPIP {
                let _ = write!(out, " {}", attrs.tunnel);
            }
            out.push_str(" weight ");
            push_u32(out, attrs.weight);
            if attrs.upper_threshold != 0 {
                out.push_str(" upper threshold ");
                push_u32(out, attrs.upper_threshold);
            }
            if attrs.lower_threshold != 0 {
                out.push_str(" lower threshold ");
                push_u32(out, attrs.lower_threshold);
            }
            // The dest looked up once: a line a dest (issue 15).
            let found = dest_of(desired, change);
            match found.map_or(&[][..], |(d, _)| &d.provenance) {
                _ if found.is_some_and(|(_, note)| note.is_some()) => {
                    out.push_str(&origin_text_of(found));
                }
                [o] if o.fallback => out.push_str(&provenance_text(std::slice::from_ref(o))),
                [o] => {
                    out.push_str(" (");
                    out.push_str(&o.backend);
                    out.push_str(" from ");
                    let (source, name) = o.source_parts();
                    out.push_str(source);
                    out.push_str(name);
                    if let Some(r) = &o.route {
                        out.push_str(" via route ");
                        out.push_str(r);
                    }
                    out.push(')');
                }
                many => out.push_str(&provenance_text(many)),
            }
        }
        Op::DelDest { dest, .. } => {
            out.push_str("-   dest ");
            push_socket_addr(out, dest);
        }
        _ => out.push_str(&change_line(change, desired)),
    }
}

/// The line for one change, without colour or newline.
fn change_line(change: &Change, desired: &IpvsState) -> String {
    let key = change.service();
    let s = sign(change.action());
    match (&change.op, &change.before) {
        (Op::AddService { attrs, .. }, _) => {
            format!("{s} service {key} {}", service_desc(key, attrs))
        }
        (Op::EditService { attrs, .. }, Some(Before::Service(old))) => {
            format!("{s} service {key} {}", service_diff(key, &old.attrs, attrs))
        }
        (Op::EditService { attrs, .. }, _) => {
            format!("{s} service {key} {}", service_desc(key, attrs))
        }
        (Op::DelService { .. }, _) => match change.dests_removed() {
            0 => format!("{s} service {key}"),
            n => format!("{s} service {key} (with its {})", plural(n, "dest")),
        },
        (Op::AddDest { dest, attrs, .. }, _) => format!(
            "{s}   dest {dest} {}{}",
            dest_desc(attrs),
            origin_text(desired, change)
        ),
        (Op::EditDest { dest, attrs, .. }, Some(Before::Dest(old))) => format!(
            "{s}   dest {dest} {}{}",
            dest_diff(old, attrs),
            origin_text(desired, change)
        ),
        (Op::EditDest { dest, attrs, .. }, _) => format!(
            "{s}   dest {dest} {}{}",
            dest_desc(attrs),
            origin_text(desired, change)
        ),
        (Op::DelDest { dest, .. }, _) => format!("{s}   dest {dest}"),
    }
}

/// Changes grouped by service (sorted), the service change first, then the
/// dest changes in execution order: adds, edits, deletes (each by address),
/// so that a service reads make-before-break as it runs.
fn grouped(plan: &Plan) -> BTreeMap<ServiceKey, Vec<&Change>> {
    let mut groups: BTreeMap<ServiceKey, Vec<&Change>> = BTreeMap::new();
    for c in &plan.changes {
        groups.entry(*c.service()).or_default().push(c);
    }
    for changes in groups.values_mut() {
        // Stable: the dest changes keep the plan's (execution) order.
        changes.sort_by_key(|c| c.dest().is_some());
    }
    groups
}

/// The lines of one service group: a context header when the service itself
/// does not change.
fn group_lines(
    key: &ServiceKey,
    changes: &[&Change],
    desired: &IpvsState,
) -> Vec<(Action, String)> {
    let mut lines = Vec::new();
    if changes.first().is_some_and(|c| c.dest().is_some()) {
        // A context line: it starts with a space, so it is never coloured.
        lines.push((Action::Edit, format!("  service {key}")));
    }
    for c in changes {
        lines.push((c.action(), change_line(c, desired)));
    }
    lines
}

fn unmanaged_text(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.unmanaged.is_empty() {
        return out;
    }
    out.push_str("Unmanaged (outside --own/--own-fwmark, left untouched):\n");
    for u in &plan.unmanaged {
        let _ = writeln!(out, "  {} ({})", u.service, plural(u.dests, "dest"));
    }
    out.push('\n');
    out
}

/// `tcp://10.0.0.1:80 (had 2 dests, keeps none)`.
fn emptied_line(e: &Emptied) -> String {
    let had = plural(e.dests_before, "dest");
    match e.dests_after {
        0 => format!("{} (had {had}, keeps none)", e.service),
        n => format!(
            "{} (had {had} taking connections, keeps {n} at weight 0)",
            e.service
        ),
    }
}

/// What the text says when the plan empties services.
const EMPTIED_TEXT: &str = "left without a dest that takes connections (new connections fail)";

fn emptied_text(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    if plan.emptied.is_empty() {
        return out;
    }
    let heading = format!(
        "Emptied: {}, {EMPTIED_TEXT}:",
        plural(plan.emptied.len(), "service")
    );
    if color {
        let _ = writeln!(out, "{BOLD}{RED}{heading}{RESET}");
    } else {
        let _ = writeln!(out, "{heading}");
    }
    for e in &plan.emptied {
        let _ = writeln!(out, "  {}", emptied_line(e));
    }
    out.push('\n');
    out
}

/// The terraform-like plan for a terminal; `color` adds ANSI colours (the
/// caller decides: a terminal and no `NO_COLOR`).
pub fn text(plan: &Plan, desired: &IpvsState, color: bool) -> String {
    text_refused(plan, desired, color, None)
}

/// [`text`] of a plan a guard refused (`refused`: the reason, which the
/// caller also reports as the error): a last line says it is not applied,
/// so that a plan read from a file or a pipe says so too.
pub fn text_refused(
    plan: &Plan,
    desired: &IpvsState,
    color: bool,
    refused: Option<&str>,
) -> String {
    collect(|w| write_text(w, plan, desired, color, refused))
}

/// Writes [`text_refused`] to `w`, a chunk at a time.
pub fn write_text(
    w: &mut impl io::Write,
    plan: &Plan,
    desired: &IpvsState,
    color: bool,
    refused: Option<&str>,
) -> io::Result<()> {
    let mut out = Chunks::new(w);
    for (key, changes) in grouped(plan) {
        push_group(&mut out.buf, &key, &changes, desired, color);
        out.spill()?;
    }
    push_text_tail(&mut out.buf, plan, plan.changes.is_empty(), color, refused);
    out.finish()
}

/// [`write_text`] of an [`Outline`] planned toward `desired`: the same
/// text, each service's adds made from `desired` as its lines are written.
pub fn write_outline_text(
    w: &mut impl io::Write,
    outline: &Outline,
    desired: &IpvsState,
    color: bool,
    refused: Option<&str>,
) -> io::Result<()> {
    let mut out = Chunks::new(w);
    let mut rest = grouped(&outline.rest).into_iter().peekable();
    let mut adds = outline.adds_by_service(desired).peekable();
    loop {
        // The services in key order; a service's adds come before the
        // rest of its changes in the plan.
        let (key, added) = match (adds.peek(), rest.peek()) {
            (None, None) => break,
            (Some((a, _)), Some((r, _))) if r < a => (*r, Vec::new()),
            (Some(_), _) => adds.next().expect("peeked"),
            (None, Some((r, _))) => (*r, Vec::new()),
        };
        let mut changes: Vec<&Change> = added.iter().collect();
        if rest.peek().is_some_and(|(r, _)| *r == key) {
            changes.extend(rest.next().expect("peeked").1);
        }
        // Stable: the dest changes keep their execution order.
        changes.sort_by_key(|c| c.dest().is_some());
        push_group(&mut out.buf, &key, &changes, desired, color);
        out.spill()?;
    }
    let empty = outline.is_empty();
    push_text_tail(&mut out.buf, &outline.rest, empty, color, refused);
    out.finish()
}

/// The text lines of one service's changes (its own first, then its
/// dests' in execution order).
fn push_group(
    buf: &mut String,
    key: &ServiceKey,
    changes: &[&Change],
    desired: &IpvsState,
    color: bool,
) {
    // A plan from empty prints a line per dest (110k at 10k services), so
    // dest lines are appended in place rather than built with `format!`:
    // this printing was 40% of a cold `clusterf plan`'s instructions.
    if changes.first().is_some_and(|c| c.dest().is_some()) {
        // A context line: it starts with a space, so it is never coloured.
        let _ = writeln!(buf, "  service {key}");
    }
    for c in changes {
        let paint = color.then(|| match c.action() {
            Action::Add => GREEN,
            Action::Edit => YELLOW,
            Action::Delete => RED,
        });
        if let Some(p) = paint {
            buf.push_str(p);
        }
        push_change_line(buf, c, desired);
        if paint.is_some() {
            buf.push_str(RESET);
        }
        buf.push('\n');
    }
}

/// The text after the changes: unmanaged and emptied services, the summary,
/// the refusal.
/// `empty`: the plan has no changes.
fn push_text_tail(out: &mut String, plan: &Plan, empty: bool, color: bool, refused: Option<&str>) {
    if !empty {
        out.push('\n');
    }
    out.push_str(&unmanaged_text(plan));
    out.push_str(&emptied_text(plan, color));
    if empty {
        out.push_str("No changes: the live IPVS state matches the desired state.\n");
    } else {
        let summary = plan.summary.to_string();
        if color {
            let _ = writeln!(out, "{BOLD}{summary}{RESET}");
        } else {
            let _ = writeln!(out, "{summary}");
        }
    }
    if refused.is_some() {
        let line = REFUSED_TEXT;
        if color {
            let _ = writeln!(out, "{BOLD}{RED}{line}{RESET}");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// The last line of a refused plan's text.
const REFUSED_TEXT: &str = "Refused by a guard: nothing is applied without --allow-mass-delete.";

// ---------------------------------------------------------------------------
// Markdown

/// Above this many change lines, each service folds into a `<details>`.
pub const MARKDOWN_FOLD_LINES: usize = 40;

/// A pull-request comment: summary, then a `diff` block (one per service,
/// collapsible, when the plan is large), then the unmanaged services. A plan
/// a guard refused (`refused`: the reason) says so in its heading and in a
/// line under it.
pub fn markdown(plan: &Plan, desired: &IpvsState, refused: Option<&str>) -> String {
    collect(|w| write_markdown(w, plan, desired, refused))
}

/// Writes [`markdown`] to `w`, a chunk at a time.
pub fn write_markdown(
    w: &mut impl io::Write,
    plan: &Plan,
    desired: &IpvsState,
    refused: Option<&str>,
) -> io::Result<()> {
    let mut out = Chunks::new(w);
    let heading = if refused.is_some() {
        "### clusterf plan (refused)"
    } else {
        "### clusterf plan"
    };
    if plan.changes.is_empty() {
        let _ = writeln!(
            out.buf,
            "{heading}: no changes\n\nThe live IPVS state matches the desired state."
        );
    } else {
        let s = plan.summary;
        let _ = writeln!(
            out.buf,
            "{heading}: {} to add, {} to change, {} to delete\n",
            s.add, s.change, s.delete
        );
        if let Some(reason) = refused {
            let _ = writeln!(out.buf, "**Refused, nothing will be applied:** {reason}.\n");
        }
        write_markdown_changes(&mut out, plan, desired)?;
        out.buf.push_str("Changes run in make-before-break order: service adds, dest adds, edits, dest deletes, service deletes.\n");
    }
    push_markdown_tail(&mut out.buf, plan);
    out.finish()
}

/// The `diff` blocks: one, or one per service folded when the plan is
/// large.
fn write_markdown_changes<W: io::Write>(
    out: &mut Chunks<'_, W>,
    plan: &Plan,
    desired: &IpvsState,
) -> io::Result<()> {
    let fold = plan.changes.len() > MARKDOWN_FOLD_LINES;
    if !fold {
        out.buf.push_str("```diff\n");
    }
    for (key, changes) in &grouped(plan) {
        let lines = group_lines(key, changes, desired);
        if fold {
            let count = |a: Action| changes.iter().filter(|c| c.action() == a).count();
            let _ = writeln!(
                out.buf,
                "<details><summary><code>{key}</code>: {} to add, {} to change, {} to delete</summary>\n\n```diff",
                count(Action::Add),
                count(Action::Edit),
                count(Action::Delete)
            );
        }
        for (_, line) in lines {
            out.buf.push_str(&line);
            out.buf.push('\n');
        }
        if fold {
            out.buf.push_str("```\n\n</details>\n\n");
        }
        out.spill()?;
    }
    if !fold {
        out.buf.push_str("```\n\n");
    }
    Ok(())
}

/// The emptied and unmanaged services, after the changes.
fn push_markdown_tail(out: &mut String, plan: &Plan) {
    if !plan.emptied.is_empty() {
        let _ = writeln!(
            out,
            "\n**Emptied**: {}, {EMPTIED_TEXT}:\n",
            plural(plan.emptied.len(), "service")
        );
        for e in &plan.emptied {
            let line = emptied_line(e);
            let (key, rest) = line.split_at(e.service.to_string().len());
            let _ = writeln!(out, "- `{key}`{rest}");
        }
    }
    if !plan.unmanaged.is_empty() {
        out.push_str("\n**Unmanaged** (outside `--own`/`--own-fwmark`, left untouched):\n\n");
        for u in &plan.unmanaged {
            let _ = writeln!(out, "- `{}` ({})", u.service, plural(u.dests, "dest"));
        }
    }
}

#[cfg(test)]
mod tests;
