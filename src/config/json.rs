//! The original JSON layout's files (frontends, backends, routes) read with
//! Go's case-insensitive key matching: the fast reader first, serde_json
//! when it declines, and validation either way. One file at a time: which
//! file is what, and how files combine, is `layout`'s and `parse`'s.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::check::{CheckFields, duration_type_error, validate_check};
use super::fallback::{FallbackFields, fallback_value};
use super::fast::fast_json_endpoints;
use super::layout::{BACKEND_KEYS, FALLBACK_KEYS, FRONTEND_KEYS, HEALTHCHECK_KEYS, ROUTE_KEYS};
use super::types::{Endpoints, Fallback, HealthCheck, Route};
use super::validate::{
    EndpointFields, EndpointFile, FrontendOptions, IpvsFields, Located, Reporter, RouteFields,
    TunnelFields, YAML_TUNNEL_KEYS, exact_integer, parse_default_weight, parse_persistence,
    parse_scheduler, range_error, utf8, validate_endpoints, validate_ipvs, validate_route,
    validate_thresholds,
};
use crate::diag::Pos;
use crate::text;

/// A frontend or backend file: the fast reader when it takes the file,
/// else serde_json.
pub(super) fn json_endpoints(
    r: &mut Reporter,
    bytes: &[u8],
    frontend: bool,
    strict: bool,
) -> Option<EndpointFile> {
    if let Some(out) = fast_json_endpoints(r.file, bytes, frontend) {
        return (!r.failed).then_some(out);
    }
    full_json_endpoints(r, bytes, frontend, strict)
}

/// A frontend or backend read by serde_json, with Go's key matching.
pub(super) fn full_json_endpoints(
    r: &mut Reporter,
    bytes: &[u8],
    frontend: bool,
    strict: bool,
) -> Option<EndpointFile> {
    let keys = if frontend {
        FRONTEND_KEYS
    } else {
        BACKEND_KEYS
    };
    let obj = json_object(r, bytes, keys, strict)?;
    // json_object() took it: UTF-8.
    let text = std::str::from_utf8(bytes).unwrap_or_default();
    let fields = EndpointFields {
        ipv4: json_string(r, "ipv4", obj.get("ipv4")),
        ipv6: json_string(r, "ipv6", obj.get("ipv6")),
        tcp: json_int(r, "tcp", obj.get("tcp"), text),
        udp: json_int(r, "udp", obj.get("udp"), text),
        weight: json_int(r, "weight", obj.get("weight"), text),
        healthcheck: json_bool(r, "healthcheck", obj.get("healthcheck")),
        fwmark_ipv4: json_int(r, "fwmark_ipv4", obj.get("fwmark_ipv4"), text),
        fwmark_ipv6: json_int(r, "fwmark_ipv6", obj.get("fwmark_ipv6"), text),
        upper_threshold: json_int(r, "upper_threshold", obj.get("upper_threshold"), text),
        lower_threshold: json_int(r, "lower_threshold", obj.get("lower_threshold"), text),
        upper_given: obj.contains_key("upper_threshold"),
        // A mark of the wrong type is reported as such, not as no address.
        addr_given: ["ipv4", "ipv6", "fwmark_ipv4", "fwmark_ipv6"]
            .iter()
            .any(|k| obj.contains_key(k)),
        port_given: ["tcp", "udp", "fwmark_ipv4", "fwmark_ipv6"]
            .iter()
            .any(|k| obj.contains_key(k)),
    };
    let what = if frontend { "frontend" } else { "backend" };
    let (endpoints, weight) = validate_endpoints(r, None, &fields, frontend, &what);
    let thresholds = validate_thresholds(r, &fields);
    let service = if frontend {
        json_frontend_options(r, &obj, text, &endpoints)
    } else {
        FrontendOptions::default()
    };
    let checked = fields.healthcheck.is_none_or(|h| h.value);
    (!r.failed).then_some(EndpointFile {
        endpoints,
        weight,
        weight_given: fields.weight.is_some(),
        healthcheck: checked,
        thresholds,
        service,
    })
}

/// A frontend file's service options: scheduler, persistence and the IPVS
/// options, validated as a YAML service's.
fn json_frontend_options(
    r: &mut Reporter,
    obj: &BTreeMap<&str, (serde_json::Value, Option<Pos>)>,
    text: &str,
    frontend: &Endpoints,
) -> FrontendOptions {
    let scheduler = json_string(r, "scheduler", obj.get("scheduler"));
    let scheduler = parse_scheduler(r, &scheduler);
    let persistence = json_int(r, "persistence", obj.get("persistence"), text);
    let persistence = parse_persistence(r, &persistence);
    let int = |r: &mut Reporter, k: &str| json_int(r, k, obj.get(k), text);
    let default_weight = int(r, "default_weight");
    let default_weight = parse_default_weight(r, &default_weight);
    let fields = IpvsFields {
        netmask_ipv4: int(r, "persistence_netmask_ipv4"),
        netmask_ipv6: int(r, "persistence_netmask_ipv6"),
        persistence_engine: json_string(r, "persistence_engine", obj.get("persistence_engine")),
        ops: json_bool(r, "ops", obj.get("ops")),
        scheduler_flags: json_string(r, "scheduler_flags", obj.get("scheduler_flags")),
        persistence_given: obj.contains_key("persistence"),
    };
    let ipvs = validate_ipvs(
        r,
        &fields,
        frontend,
        scheduler.as_deref(),
        persistence.is_some(),
    );
    FrontendOptions {
        scheduler,
        persistence,
        default_weight,
        ipvs,
    }
}

/// The JSON layout's `services/<svc>/healthcheck` file: the check (`None`
/// for `type: none`), and where its type is, for the problems found once
/// the service is assembled; `None` when the file has errors.
pub(super) fn json_healthcheck(
    r: &mut Reporter,
    bytes: &[u8],
) -> Option<(Option<HealthCheck>, Option<Pos>)> {
    let obj = json_object(r, bytes, HEALTHCHECK_KEYS, true)?;
    let text = std::str::from_utf8(bytes).unwrap_or_default();
    let expect = obj.get("expect").and_then(|(v, pos)| match v {
        serde_json::Value::String(s) => Some(Located {
            value: s.clone(),
            pos: *pos,
        }),
        serde_json::Value::Number(n) if n.is_u64() => Some(Located {
            value: n.to_string(),
            pos: *pos,
        }),
        other => {
            r.error(
                *pos,
                format!(
                    "healthcheck: expect: expected status codes (200, \"200-399\"), found {}",
                    json_kind(other)
                ),
            );
            None
        }
    });
    let s = |r: &mut Reporter, k: &str| json_string(r, &format!("healthcheck: {k}"), obj.get(k));
    let fields = CheckFields {
        pos: None,
        kind: s(r, "type"),
        port: json_int(r, "healthcheck: port", obj.get("port"), text),
        path: s(r, "path"),
        host: s(r, "host"),
        expect,
        query: s(r, "query"),
        interval: json_duration(r, "interval", obj.get("interval")),
        timeout: json_duration(r, "timeout", obj.get("timeout")),
        rise: json_int(r, "healthcheck: rise", obj.get("rise"), text),
        fall: json_int(r, "healthcheck: fall", obj.get("fall"), text),
        on_failure: s(r, "on_failure"),
        given: HEALTHCHECK_KEYS
            .iter()
            .filter_map(|k| obj.get(k).map(|(_, pos)| (*k, *pos)))
            .collect(),
    };
    let check = validate_check(r, &fields, None);
    let type_pos = obj.get("type").and_then(|(_, pos)| *pos);
    (!r.failed).then_some((check, type_pos))
}

/// The JSON layout's `services/<svc>/fallback` file: the fallback, and
/// whether it names a port (its fit to the service is checked once the
/// service is assembled); `None` when the file has errors.
pub(super) fn json_fallback(r: &mut Reporter, bytes: &[u8]) -> Option<(Fallback, bool)> {
    let obj = json_object(r, bytes, FALLBACK_KEYS, true)?;
    let text = std::str::from_utf8(bytes).unwrap_or_default();
    let endpoints = EndpointFields {
        ipv4: json_string(r, "ipv4", obj.get("ipv4")),
        ipv6: json_string(r, "ipv6", obj.get("ipv6")),
        tcp: json_int(r, "tcp", obj.get("tcp"), text),
        udp: json_int(r, "udp", obj.get("udp"), text),
        weight: json_int(r, "weight", obj.get("weight"), text),
        addr_given: obj.contains_key("ipv4") || obj.contains_key("ipv6"),
        port_given: obj.contains_key("tcp") || obj.contains_key("udp"),
        ..EndpointFields::default()
    };
    let fields = FallbackFields {
        pos: None,
        endpoints,
        method: json_string(r, "method", obj.get("method")),
    };
    let fallback = fallback_value(r, &fields, r.file.to_string());
    let ports_given = obj.contains_key("tcp") || obj.contains_key("udp");
    (!r.failed).then_some((fallback, ports_given))
}

/// A duration field: a string, read by `check`.
fn json_duration<'v>(
    r: &mut Reporter,
    field: &str,
    v: Option<&'v (serde_json::Value, Option<Pos>)>,
) -> Option<Located<&'v str>> {
    let (value, pos) = v?;
    match value {
        serde_json::Value::String(s) => Some(Located {
            value: s.as_str(),
            pos: *pos,
        }),
        other => {
            r.error(*pos, duration_type_error(field, json_kind(other)));
            None
        }
    }
}

/// A boolean field.
fn json_bool(
    r: &mut Reporter,
    field: &str,
    v: Option<&(serde_json::Value, Option<Pos>)>,
) -> Option<Located<bool>> {
    let (value, pos) = v?;
    match value {
        serde_json::Value::Bool(b) => Some(Located {
            value: *b,
            pos: *pos,
        }),
        other => {
            r.error(
                *pos,
                format!(
                    "{field}: expected true or false, found {}",
                    json_kind(other)
                ),
            );
            None
        }
    }
}

/// A route file, left out when it has errors.
pub(super) fn json_route(
    r: &mut Reporter,
    name: &str,
    bytes: &[u8],
    strict: bool,
) -> Option<Route> {
    let obj = json_object(r, bytes, ROUTE_KEYS, strict)?;
    // The original's older spellings Prefix4/Gateway4 (and Prefix6/Gateway6)
    // mean the same as Prefix/Gateway; more than one of them is ambiguous.
    type Obj<'k> = BTreeMap<&'k str, (serde_json::Value, Option<Pos>)>;
    fn pick<'o>(
        r: &mut Reporter,
        obj: &'o Obj<'_>,
        field: &str,
        names: &[&str],
    ) -> Option<Located<&'o str>> {
        let present: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| obj.contains_key(n))
            .collect();
        if present.len() > 1 {
            let pos = obj.get(present[1]).and_then(|v| v.1);
            r.error(
                pos,
                format!("{field} given more than once: {}", present.join(", ")),
            );
        }
        let first = present.first()?;
        json_string(r, field, obj.get(*first))
    }
    let text = std::str::from_utf8(bytes).unwrap_or_default();
    let fields = RouteFields {
        prefix: pick(r, &obj, "prefix", &["Prefix", "Prefix4", "Prefix6"]),
        gateway: pick(r, &obj, "gateway", &["Gateway", "Gateway4", "Gateway6"]),
        method: json_string(r, "method", obj.get("IPVSMethod")),
        tunnel: json_tunnel(r, &obj, text),
    };
    let route = validate_route(r, name, &fields);
    (!r.failed).then_some(route)
}

/// A route's `IPVSTunnelType`, `IPVSTunnelPort` and `IPVSTunnelChecksum`
/// (the YAML `tunnel:` block's `type`, `port`, `checksum`), when any is
/// there.
fn json_tunnel<'o>(
    r: &mut Reporter,
    obj: &'o BTreeMap<&str, (serde_json::Value, Option<Pos>)>,
    text: &str,
) -> Option<TunnelFields<'o>> {
    // Messages name the fields as the YAML block does, as they name
    // `IPVSMethod` `method`.
    const KEYS: [&str; 3] = ["IPVSTunnelType", "IPVSTunnelPort", "IPVSTunnelChecksum"];
    let names = YAML_TUNNEL_KEYS;
    let first = KEYS.iter().find_map(|k| obj.get(k))?;
    Some(TunnelFields {
        what: "tunnel",
        keys: names,
        pos: first.1,
        kind: json_string(r, names[0], obj.get(KEYS[0])),
        kind_given: obj.contains_key(KEYS[0]),
        port: json_int(r, names[1], obj.get(KEYS[1]), text),
        checksum: json_string(r, names[2], obj.get(KEYS[2])),
    })
}

/// Parses a JSON object with Go's case-insensitive key matching: returns the
/// value and key position of each key in `known`, reporting unknown keys
/// (errors when `strict`, else warnings).
fn json_object<'k>(
    r: &mut Reporter,
    bytes: &[u8],
    known: &[&'k str],
    strict: bool,
) -> Option<BTreeMap<&'k str, (serde_json::Value, Option<Pos>)>> {
    let text = utf8(r, bytes)?;
    let value: JsonTop = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            // serde_json counts columns from 0 at the start of a line
            // (before its first character, e.g. at an end of file after a
            // newline); positions here are 1-based.
            let pos = (e.line() > 0).then(|| Pos {
                line: e.line() as u64,
                column: (e.column() as u64).max(1),
            });
            r.error(
                pos,
                format!(
                    "invalid JSON: {}",
                    text::cut_message(strip_serde_json_pos(&e.to_string()))
                ),
            );
            return None;
        }
    };
    let JsonTop::Object(pairs) = value else {
        r.error(None, "expected a JSON object");
        return None;
    };
    let mut out = BTreeMap::new();
    // Exact repeats: serde_json would keep the last silently.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, value) in &pairs {
        let nth = seen.entry(key.as_str()).or_insert(0);
        let pos = json_key_pos_nth(text, key, *nth);
        *nth += 1;
        if *nth > 1 {
            r.error(pos, format!("duplicate field {}", text::quote(key)));
            continue;
        }
        let Some(canon) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) else {
            let msg = format!(
                "unknown field {}, expected one of {}",
                text::quote(key),
                known.join(", ")
            );
            if strict {
                r.error(pos, msg);
            } else {
                r.warning(pos, msg);
            }
            continue;
        };
        if value.is_null() {
            continue;
        }
        if out.insert(*canon, (value.clone(), pos)).is_some() {
            r.error(
                pos,
                format!(
                    "duplicate field {} (keys are case-insensitive)",
                    text::quote(key)
                ),
            );
        }
    }
    Some(out)
}

/// A JSON document's top level: an object's members in the order written
/// (repeats kept, so that they can be reported), or anything else.
enum JsonTop {
    Object(Vec<(String, serde_json::Value)>),
    Other,
}

impl<'de> Deserialize<'de> for JsonTop {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonTop;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<JsonTop, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = a.next_entry::<String, serde_json::Value>()? {
                    pairs.push(pair);
                }
                Ok(JsonTop::Object(pairs))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<JsonTop, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(JsonTop::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
            fn visit_unit<E>(self) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
        }
        d.deserialize_any(V)
    }
}

fn strip_serde_json_pos(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// Finds where the `nth` (from 0) object key `"key"` appears in JSON text
/// (1-based), by a small scan that skips string contents. serde_json keeps
/// no spans, and the original tree's files are one-liners, so this is enough
/// to point at it.
fn json_key_pos_nth(text: &str, key: &str, mut nth: usize) -> Option<Pos> {
    let (mut line, mut col) = (1u64, 1u64);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            let (start_line, start_col) = (line, col);
            let start = i + 1;
            let mut end = start;
            col += 1;
            let mut escaped = false;
            for (j, c) in chars.by_ref() {
                col += 1;
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = j;
                    break;
                }
            }
            let rest = text[end.min(text.len())..]
                .trim_start_matches('"')
                .trim_start();
            if rest.starts_with(':') && text.get(start..end) == Some(key) {
                if nth == 0 {
                    return Some(Pos {
                        line: start_line,
                        column: start_col,
                    });
                }
                nth -= 1;
            }
            continue;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    None
}

fn json_string<'v>(
    r: &mut Reporter,
    field: &str,
    v: Option<&'v (serde_json::Value, Option<Pos>)>,
) -> Option<Located<&'v str>> {
    let (value, pos) = v?;
    match value {
        serde_json::Value::String(s) => Some(Located {
            value: s.as_str(),
            pos: *pos,
        }),
        other => {
            r.error(
                *pos,
                format!("{field}: expected a string, found {}", json_kind(other)),
            );
            None
        }
    }
}

/// An integer field. serde_json reads integers beyond 64 bits as floats,
/// which round them: those are read again from `text`, exactly, as are
/// numbers that are not integers, to quote them as written.
fn json_int(
    r: &mut Reporter,
    field: &str,
    v: Option<&(serde_json::Value, Option<Pos>)>,
    text: &str,
) -> Option<Located<i128>> {
    let (value, pos) = v?;
    let n = value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from));
    if let Some(n) = n {
        return Some(Located {
            value: n,
            pos: *pos,
        });
    }
    let literal = value
        .is_f64()
        .then(|| pos.and_then(|p| number_after_key(text, p)))
        .flatten();
    // As Go's encoding/json: only plain integers (no `80.0`, no `8e1`).
    let plain = |lit: &str| {
        let digits = lit.strip_prefix('-').unwrap_or(lit);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    match literal {
        Some(lit) if plain(lit) => match exact_integer(lit) {
            Some(Ok(n)) => Some(Located {
                value: n,
                pos: *pos,
            }),
            _ => {
                r.error(*pos, range_error(field, &text::cut(lit)));
                None
            }
        },
        Some(lit) => {
            let msg = format!("{field}: expected an integer, found {}", text::cut(lit));
            r.error(*pos, msg);
            None
        }
        None => {
            let msg = format!("{field}: expected an integer, found {}", json_kind(value));
            r.error(*pos, msg);
            None
        }
    }
}

/// The number literal after the key that starts at `key` (`"tcp": 80.0`
/// gives `80.0`), as written.
fn number_after_key(text: &str, key: Pos) -> Option<&str> {
    let line_start = match key.line {
        1 => 0,
        n => {
            let skip = usize::try_from(n - 2).ok()?;
            text.match_indices('\n').nth(skip)?.0 + 1
        }
    };
    let col = usize::try_from(key.column.checked_sub(1)?).ok()?;
    let at = line_start + text[line_start..].char_indices().nth(col)?.0;
    // Past the key's string, its colon and the blanks around it.
    let mut escaped = false;
    let close = text[at + 1..].find(|c: char| {
        let end = c == '"' && !escaped;
        escaped = c == '\\' && !escaped;
        end
    })?;
    let rest = text[at + 1 + close + 1..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let len = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
        .unwrap_or(rest.len());
    (len > 0).then(|| &rest[..len])
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_key_pos(text: &str, key: &str) -> Option<Pos> {
        json_key_pos_nth(text, key, 0)
    }

    #[test]
    fn json_key_pos_finds_keys_not_values() {
        let text = "{\"a\": \"tcp\",\n  \"tcp\": 80}";
        assert_eq!(json_key_pos(text, "tcp"), Some(Pos { line: 2, column: 3 }));
        assert_eq!(json_key_pos(text, "a"), Some(Pos { line: 1, column: 2 }));
        assert_eq!(json_key_pos(text, "b"), None);
        let dup = "{\"tcp\": 80,\n \"tcp\": 81}";
        assert_eq!(
            json_key_pos_nth(dup, "tcp", 1),
            Some(Pos { line: 2, column: 2 })
        );
        assert_eq!(json_key_pos_nth(dup, "tcp", 2), None);
        assert_eq!(
            json_key_pos("{\"x\\\"y\": 1}", "x\\\"y"),
            Some(Pos { line: 1, column: 2 })
        );
    }

    #[test]
    fn fast_json_takes_the_usual_files_and_leaves_the_rest() {
        for (text, frontend) in [
            (r#"{"ipv4": "10.0.0.1", "tcp": 80}"#, true),
            ("{\n  \"IPv4\": \"10.0.0.1\",\n  \"UDP\": 53\n}\n", true),
            (r#"{"ipv6":"2001:db8::1","tcp":8080,"weight":0}"#, false),
            (
                r#"{"ipv4": "10.1.0.1", "tcp": 80, "healthcheck": false}"#,
                false,
            ),
            (r#"{"ipv4": "10.1.0.1", "HealthCheck":true}"#, false),
        ] {
            assert!(
                fast_json_agrees(text, frontend),
                "fast path refused {text:?}"
            );
        }
        for text in [
            "",
            "{}",
            r#"{"ipv4": "10.0.0.1", "tcp": 80,}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 080}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 80.0}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 8e1}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": -80}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": null}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": "80"}"#,
            r#"{"ipv4": "10.0.0.1", "Tcp": 80, "tcp": 80}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 80, "tcp": 81}"#,
            r#"{"ipv4": "10.0.0.\u0031", "tcp": 80}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 80} x"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 80, "weight": 1}"#,
            r#"{"ipv4": "10.0.0.1", "bogus": 1, "tcp": 80}"#,
            r#"[{"ipv4": "10.0.0.1", "tcp": 80}]"#,
        ] {
            assert!(
                fast_json_endpoints("f", text.as_bytes(), true).is_none(),
                "fast path took {text:?}"
            );
        }
    }

    fn fast_json_agrees(text: &str, frontend: bool) -> bool {
        crate::config::agree::json_endpoints(text.as_bytes(), frontend)
    }

    mod fast_json_props {
        use super::*;
        use proptest::prelude::*;

        fn value_for(key: &'static str) -> BoxedStrategy<String> {
            let good: Vec<&'static str> = match key.to_ascii_lowercase().as_str() {
                "ipv4" => vec!["\"10.0.0.1\"", "\"192.168.1.1\""],
                "ipv6" => vec!["\"2001:db8::1\"", "\"::1\""],
                "tcp" | "udp" => vec!["80", "53", "65535", "1"],
                "weight" => vec!["0", "1", "10", "65535"],
                "healthcheck" => vec!["false", "true"],
                "fwmark_ipv4" | "fwmark_ipv6" => vec!["1", "42", "4294967295"],
                "upper_threshold" | "lower_threshold" => vec!["0", "10", "2147483647"],
                _ => vec!["1"],
            };
            let any = prop::sample::select(vec![
                "\"\"",
                "\"x\"",
                "0",
                "080",
                "-1",
                "1.5",
                "1e2",
                "null",
                "true",
                "[]",
                "{}",
                "\"10.0.0.1\\n\"",
                "\"a\\\"b\"",
                "65536",
                "99999999999",
                "\"80\"",
                "1 2",
                "false",
                "tru",
                "falsey",
                "False",
            ]);
            prop_oneof![
                8 => prop::sample::select(good).prop_map(str::to_string),
                1 => any.prop_map(str::to_string),
            ]
            .boxed()
        }

        prop_compose! {
            fn json_doc()(
                pairs in (
                    prop::sample::subsequence(vec![
                        "ipv4", "ipv6", "tcp", "udp", "weight", "healthcheck",
                        "fwmark_ipv4", "fwmark_ipv6", "upper_threshold", "lower_threshold",
                    ], 1..=6)
                        .prop_shuffle(),
                    prop::sample::select(vec!["", "", "", "", "", "IPv4", "TCP", "Weight", "bogus", "ipv4"]),
                ).prop_flat_map(|(keys, odd)| {
                    let mut keys = keys;
                    if !odd.is_empty() {
                        keys.push(odd);
                    }
                    keys.into_iter()
                        .map(|k| value_for(k).prop_map(move |v| (k, v)))
                        .collect::<Vec<_>>()
                }),
                sep in prop::sample::select(vec![",", ", ", ",\n  ", " ,", ",\t", ",,"]),
                open in prop::sample::select(vec!["{", "{ ", "{\n  ", " {", "\n{"]),
                close in prop::sample::select(vec!["}", " }", "\n}", "}\n", "} ", "},", "}}"]),
                colon in prop::sample::select(vec![": ", ":", " : ", ":\n"]),
            ) -> String {
                let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\"{colon}{v}")).collect();
                format!("{open}{}{close}", inner.join(sep))
            }
        }

        proptest! {
            #[test]
            fn fast_json_agrees_with_serde_json(
                doc in json_doc(),
                frontend in any::<bool>(),
                at in any::<prop::sample::Index>(),
                edit in prop::sample::select(vec![
                    "", "", "", " ", "\t", "\r", "\"", "\\", ",", ":", "}", "{", "0", "-", ".", "\u{1}", "é",
                ]),
            ) {
                let mut doc = doc;
                let i = at.index(doc.len() + 1);
                if doc.is_char_boundary(i) {
                    doc.insert_str(i, edit);
                }
                fast_json_agrees(&doc, frontend);
            }
        }
    }
}
