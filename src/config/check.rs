//! Validation of a service's health check: its fields, as either format's
//! reader found them, become a [`HealthCheck`], and every problem is
//! reported with its position. The bounds are `health::spec`'s
//! ([`CheckSpec::problems`]); what this adds is the reading of each field
//! and the rules of the config: a type is required, keys must apply to it,
//! a dns check needs a query and a UDP service.

use std::time::Duration;

use super::types::{Endpoints, HealthCheck};
use super::validate::{Located, Reporter};
use crate::diag::Pos;
use crate::health::spec::MAX_RISE_FALL;
use crate::health::{CheckSpec, Expect, HttpProbe, OnFailure, Probe};
use crate::text;

/// Every message starts with it.
const PREFIX: &str = "healthcheck: ";

/// A check's fields, from either format, before validation.
#[derive(Default)]
pub(super) struct CheckFields<'a> {
    /// Where the check is (its mapping); `None` for a whole JSON file.
    pub(super) pos: Option<Pos>,
    pub(super) kind: Option<Located<&'a str>>,
    pub(super) port: Option<Located<i128>>,
    pub(super) path: Option<Located<&'a str>>,
    pub(super) host: Option<Located<&'a str>>,
    /// A status list as written (an integer as its digits).
    pub(super) expect: Option<Located<String>>,
    pub(super) query: Option<Located<&'a str>>,
    pub(super) interval: Option<Located<&'a str>>,
    pub(super) timeout: Option<Located<&'a str>>,
    pub(super) rise: Option<Located<i128>>,
    pub(super) fall: Option<Located<i128>>,
    pub(super) on_failure: Option<Located<&'a str>>,
    /// Every key present, even with a value of the wrong type (already
    /// reported), with its position: for a missing type and for keys that
    /// do not apply to the type.
    pub(super) given: Vec<(&'static str, Option<Pos>)>,
}

/// Which keys apply to which type (`type` applies to all).
fn applies(kind: &str, key: &str) -> bool {
    match key {
        "type" => true,
        "path" | "host" | "expect" => matches!(kind, "http" | "https"),
        "query" => kind == "dns",
        _ => kind != "none",
    }
}

/// Collects problems; the check is kept only when there are none.
struct Check<'r, 'a> {
    r: &'r mut Reporter<'a>,
    ok: bool,
    /// Fields given but unreadable (reported): their defaults stand in,
    /// and what the bounds say of those is not reported.
    unread: Vec<&'static str>,
}

impl Check<'_, '_> {
    fn error(&mut self, pos: Option<Pos>, message: impl std::fmt::Display) {
        self.ok = false;
        self.r.error(pos, format!("{PREFIX}{message}"));
    }
}

/// Validates a check against its service's frontend (`None`: in another
/// file, checked by [`dns_without_udp`] once the service is assembled):
/// `None` for `type: none` and for a check with errors (all reported).
pub(super) fn validate_check(
    r: &mut Reporter,
    f: &CheckFields,
    frontend: Option<&Endpoints>,
) -> Option<HealthCheck> {
    let mut c = Check {
        r,
        ok: true,
        unread: unread_fields(f),
    };
    let kind = check_kind(&mut c, f);
    if let Some(kind) = kind {
        for (key, pos) in &f.given {
            if !applies(kind, key) {
                let what = match kind {
                    "none" => "type none (no check)".to_string(),
                    k @ ("http" | "https") => format!("an {k} check"),
                    k => format!("a {k} check"),
                };
                c.error(*pos, format!("{key} does not apply to {what}"));
            }
        }
    }
    let spec = read_spec(&mut c, f, kind.unwrap_or("tcp"));
    let on_failure = match &f.on_failure {
        None => OnFailure::Drain,
        Some(l) if l.value == "drain" => OnFailure::Drain,
        Some(l) if l.value == "remove" => OnFailure::Remove,
        Some(l) => {
            let quoted = text::quote(l.value);
            c.error(
                l.pos,
                format!("on_failure: unknown value {quoted}, expected drain or remove"),
            );
            OnFailure::Drain
        }
    };
    if kind == Some("dns") {
        check_dns(&mut c, f, frontend);
    }
    if kind.is_some_and(|k| k != "none")
        && let Some(why) = frontend.and_then(|fe| fwmark_without_port(f.port.is_some(), fe))
    {
        c.ok = false;
        c.r.error(f.pos, why);
    }
    // With type none every other key was reported as not applying.
    let problems = if kind == Some("none") {
        Vec::new()
    } else {
        spec.problems()
    };
    for problem in problems {
        // A missing query is reported above, not as an empty name; an
        // unreadable duration is reported, not its default.
        let word = problem.split(' ').next().unwrap_or_default();
        let unread = |w: &str| c.unread.contains(&w);
        if (f.query.is_none() && word == "query")
            || unread(word)
            || (word == "timeout" && unread("interval"))
        {
            continue;
        }
        let pos = problem_pos(f, &problem);
        c.error(pos, problem);
    }
    (c.ok && kind.is_some_and(|k| k != "none")).then_some(HealthCheck {
        check: spec,
        on_failure,
    })
}

/// The fields given with a value of the wrong type (reported by the
/// reader).
fn unread_fields(f: &CheckFields) -> Vec<&'static str> {
    let read = |key: &str| match key {
        "type" => f.kind.is_some(),
        "port" => f.port.is_some(),
        "path" => f.path.is_some(),
        "host" => f.host.is_some(),
        "expect" => f.expect.is_some(),
        "query" => f.query.is_some(),
        "interval" => f.interval.is_some(),
        "timeout" => f.timeout.is_some(),
        "rise" => f.rise.is_some(),
        "fall" => f.fall.is_some(),
        _ => f.on_failure.is_some(),
    };
    f.given
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| !read(k))
        .collect()
}

/// The type, when it is one; a missing or unknown type is reported.
fn check_kind<'a>(c: &mut Check, f: &CheckFields<'a>) -> Option<&'a str> {
    let Some(kind) = &f.kind else {
        if !f.given.iter().any(|(k, _)| *k == "type") {
            c.error(f.pos, "no type: set type to tcp, http, https, dns or none");
        }
        c.ok = false;
        return None;
    };
    match kind.value {
        k @ ("tcp" | "http" | "https" | "dns" | "none") => Some(k),
        other => {
            c.error(
                kind.pos,
                format!(
                    "type: unknown type {}, expected one of tcp, http, https, dns, none",
                    text::quote(other)
                ),
            );
            None
        }
    }
}

/// The spec as far as its fields read (defaults for the rest); the bounds
/// are checked after, by [`CheckSpec::problems`].
fn read_spec(c: &mut Check, f: &CheckFields, kind: &str) -> CheckSpec {
    let http = || {
        let mut h = HttpProbe::default();
        if let Some(p) = &f.path {
            h.path = p.value.to_string();
        }
        h.host = f.host.as_ref().map(|h| h.value.to_string());
        h
    };
    let mut probe = match kind {
        "http" => Probe::Http(http()),
        "https" => Probe::Https(http()),
        "dns" => Probe::Dns {
            query: f.query.as_ref().map_or("", |q| q.value).to_string(),
        },
        _ => Probe::Tcp,
    };
    if let (Probe::Http(h) | Probe::Https(h), Some(e)) = (&mut probe, &f.expect) {
        match Expect::parse(&e.value) {
            Ok(expect) => h.expect = expect,
            Err(why) => c.error(e.pos, format!("expect: {why}")),
        }
    }
    let mut spec = CheckSpec::new(probe);
    if let Some(p) = &f.port {
        match u16::try_from(p.value) {
            Ok(port) if port >= 1 => spec.port = Some(port),
            _ => c.error(p.pos, format!("port {} out of range 1..65535", p.value)),
        }
    }
    if let Some(d) = duration(c, "interval", &f.interval) {
        spec.interval = d;
    }
    if let Some(d) = duration(c, "timeout", &f.timeout) {
        spec.timeout = d;
    }
    for (name, field, slot) in [
        ("rise", &f.rise, &mut spec.rise),
        ("fall", &f.fall, &mut spec.fall),
    ] {
        if let Some(n) = field {
            match u32::try_from(n.value) {
                Ok(v) => *slot = v,
                Err(_) => c.error(
                    n.pos,
                    format!("{name} {} is outside 1 to {MAX_RISE_FALL}", n.value),
                ),
            }
        }
    }
    spec
}

fn duration(c: &mut Check, field: &'static str, v: &Option<Located<&str>>) -> Option<Duration> {
    let v = v.as_ref()?;
    match parse_duration(v.value) {
        Some(d) => Some(d),
        None => {
            c.unread.push(field);
            c.error(
                v.pos,
                format!(
                    "{field}: {} is not a duration: write a whole number and a unit (ms, s, m or h), such as 500ms, 5s or 1m",
                    text::quote(v.value)
                ),
            );
            None
        }
    }
}

/// A duration of the wrong type (`interval: 5`).
pub(super) fn duration_type_error(field: &str, found: &str) -> String {
    format!("{PREFIX}{field}: expected a duration such as 500ms, 5s or 1m, found {found}")
}

/// A dns check needs a name to ask for and a UDP service to ask over.
fn check_dns(c: &mut Check, f: &CheckFields, frontend: Option<&Endpoints>) {
    let at = f.kind.as_ref().and_then(|k| k.pos).or(f.pos);
    if f.query.is_none() && !f.given.iter().any(|(k, _)| *k == "query") {
        c.error(at, "a dns check needs a query (the name to ask for)");
    }
    if let Some(why) = frontend.and_then(|fe| dns_without_udp(true, fe)) {
        c.ok = false;
        c.r.error(at, why);
    }
}

/// The problem of a dns check (`dns`) on a service with a TCP port and no
/// UDP port (without either, the frontend's own error stands).
pub(super) fn dns_without_udp(dns: bool, frontend: &Endpoints) -> Option<String> {
    (dns && frontend.udp.is_none() && frontend.tcp.is_some())
        .then(|| format!("{PREFIX}a dns check queries over UDP, but the service has no udp port"))
}

/// A check without `port` on an fwmark frontend, whose dests may have
/// port 0 (each packet's own port), which no probe can reach.
pub(super) fn fwmark_without_port(port: bool, frontend: &Endpoints) -> Option<String> {
    let marks = frontend.fwmark_ipv4.is_some() || frontend.fwmark_ipv6.is_some();
    (marks && !port).then(|| {
        format!("{PREFIX}an fwmark service's dests may have no port (port 0): set the port checked")
    })
}

/// Where a problem of [`CheckSpec::problems`] is: at the field it names
/// first (`timeout 2s must be ...`), else at the interval for a timeout
/// left at its default, else at the check.
fn problem_pos(f: &CheckFields, problem: &str) -> Option<Pos> {
    let word = problem.split(' ').next().unwrap_or_default();
    let at = |l: Option<Option<Pos>>| l.flatten();
    let pos = match word {
        "interval" => at(f.interval.as_ref().map(|l| l.pos)),
        "timeout" => {
            at(f.timeout.as_ref().map(|l| l.pos)).or_else(|| at(f.interval.as_ref().map(|l| l.pos)))
        }
        "rise" => at(f.rise.as_ref().map(|l| l.pos)),
        "fall" => at(f.fall.as_ref().map(|l| l.pos)),
        "port" => at(f.port.as_ref().map(|l| l.pos)),
        "path" => at(f.path.as_ref().map(|l| l.pos)),
        "host" => at(f.host.as_ref().map(|l| l.pos)),
        "query" => at(f.query.as_ref().map(|l| l.pos)),
        _ => None,
    };
    pos.or(f.pos)
}

/// `500ms`, `5s`, `1m`, `1h`: a whole number (at most 9 digits, no
/// leading zero) and a unit, as `raw::DURATION_PATTERN` says.
pub(super) fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let plain = (1..=9).contains(&digits.len()) && (digits == "0" || !digits.starts_with('0'));
    let n: u64 = digits.parse().ok().filter(|_| plain)?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Diagnostics;

    #[test]
    fn durations_are_a_whole_number_and_a_unit() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in [
            "",
            "5",
            "s",
            "1.5s",
            "05s",
            "5 s",
            " 5s",
            "5S",
            "5sec",
            "-1s",
            "1234567890s",
            "5d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    fn at(line: u64) -> Option<Pos> {
        Some(Pos { line, column: 3 })
    }

    fn run(f: &CheckFields, frontend: &Endpoints) -> (Option<HealthCheck>, Vec<String>) {
        let mut diags = Diagnostics::default();
        let mut r = Reporter {
            file: "services/web.yaml",
            diags: &mut diags,
            failed: false,
        };
        let out = validate_check(&mut r, f, Some(frontend));
        (out, diags.iter().map(ToString::to_string).collect())
    }

    fn tcp_frontend() -> Endpoints {
        Endpoints {
            ipv4: Some([10, 0, 0, 1].into()),
            tcp: Some(80),
            ..Endpoints::default()
        }
    }

    fn located<T>(value: T, line: u64) -> Option<Located<T>> {
        Some(Located {
            value,
            pos: at(line),
        })
    }

    #[test]
    fn a_check_with_only_a_type_gets_the_defaults() {
        let f = CheckFields {
            kind: located("http", 2),
            given: vec![("type", at(2))],
            ..CheckFields::default()
        };
        let (check, problems) = run(&f, &tcp_frontend());
        assert!(problems.is_empty(), "{problems:?}");
        let check = check.unwrap();
        assert_eq!(
            check.check,
            CheckSpec::new(Probe::Http(HttpProbe::default()))
        );
        assert_eq!(check.on_failure, OnFailure::Drain);
    }

    #[test]
    fn type_none_is_no_check_and_takes_no_other_key() {
        let f = CheckFields {
            kind: located("none", 2),
            given: vec![("type", at(2))],
            ..CheckFields::default()
        };
        assert_eq!(run(&f, &tcp_frontend()), (None, vec![]));
        let f = CheckFields {
            kind: located("none", 2),
            interval: located("5s", 3),
            given: vec![("type", at(2)), ("interval", at(3))],
            ..CheckFields::default()
        };
        assert_eq!(
            run(&f, &tcp_frontend()).1,
            ["services/web.yaml:3:3: healthcheck: interval does not apply to type none (no check)"]
        );
        // Its value's bounds are not reported on top.
        let f = CheckFields {
            kind: located("none", 2),
            interval: located("50ms", 3),
            given: vec![("type", at(2)), ("interval", at(3))],
            ..CheckFields::default()
        };
        assert_eq!(run(&f, &tcp_frontend()).1.len(), 1);
    }

    #[test]
    fn every_problem_of_a_check_is_reported_at_its_field() {
        let f = CheckFields {
            pos: at(1),
            kind: located("dns", 2),
            path: located("/x", 3),
            interval: located("50ms", 4),
            timeout: located("5", 5),
            rise: located(0, 6),
            fall: located(1 << 40, 7),
            on_failure: located("panic", 8),
            port: located(70000, 9),
            given: vec![
                ("type", at(2)),
                ("path", at(3)),
                ("interval", at(4)),
                ("timeout", at(5)),
                ("rise", at(6)),
                ("fall", at(7)),
                ("on_failure", at(8)),
                ("port", at(9)),
            ],
            ..CheckFields::default()
        };
        let (check, mut problems) = run(&f, &tcp_frontend());
        assert!(check.is_none());
        problems.sort();
        assert_eq!(
            problems,
            [
                "services/web.yaml:2:3: healthcheck: a dns check needs a query (the name to ask for)",
                "services/web.yaml:2:3: healthcheck: a dns check queries over UDP, but the service has no udp port",
                "services/web.yaml:3:3: healthcheck: path does not apply to a dns check",
                "services/web.yaml:4:3: healthcheck: interval 50ms is outside 100ms to 3600s",
                "services/web.yaml:5:3: healthcheck: timeout: \"5\" is not a duration: write a whole number and a unit (ms, s, m or h), such as 500ms, 5s or 1m",
                "services/web.yaml:6:3: healthcheck: rise 0 is outside 1 to 100",
                "services/web.yaml:7:3: healthcheck: fall 1099511627776 is outside 1 to 100",
                "services/web.yaml:8:3: healthcheck: on_failure: unknown value \"panic\", expected drain or remove",
                "services/web.yaml:9:3: healthcheck: port 70000 out of range 1..65535",
            ]
        );
    }

    #[test]
    fn a_check_without_a_type_or_with_an_unknown_one_is_reported() {
        let f = CheckFields {
            pos: at(1),
            ..CheckFields::default()
        };
        assert_eq!(
            run(&f, &tcp_frontend()).1,
            [
                "services/web.yaml:1:3: healthcheck: no type: set type to tcp, http, https, dns or none"
            ]
        );
        let f = CheckFields {
            kind: located("ping", 2),
            given: vec![("type", at(2))],
            ..CheckFields::default()
        };
        assert_eq!(
            run(&f, &tcp_frontend()).1,
            [
                "services/web.yaml:2:3: healthcheck: type: unknown type \"ping\", expected one of tcp, http, https, dns, none"
            ]
        );
    }
}
