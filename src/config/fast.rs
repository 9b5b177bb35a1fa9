//! The fast readers: a flat JSON reader (`fast_json`) and a reader for the
//! plain subset of YAML (`fast_yaml`), with validation behind them.
//!
//! Nearly every file of a real repo is plain: block and flow mappings, plain
//! addresses and numbers, no anchors, tags or escapes. Such files are read
//! here, many times faster than by the full parsers; the result goes through
//! the same validation. A file a fast reader does not take (anything outside
//! its subset), or whose validation reports anything at all, is left to the
//! full path (`json`, `yaml`), so every message, position and edge case
//! stays the full path's. The readers only take files whose meaning they
//! know exactly, and never report: `fast_yaml_agrees_with_serde_saphyr` and
//! `fast_json_agrees_with_serde_json` check that.

use super::check::{CheckFields, validate_check};
use super::layout::{BACKEND_KEYS, FRONTEND_KEYS};
use super::types::{Route, Service};
use super::validate::{
    EndpointFields, EndpointFile, IpvsFields, Reporter, RouteFields, ServiceFields, unplaced,
    validate_endpoints, validate_route, validate_service, validate_thresholds,
};
use crate::diag::Diagnostics;

/// A frontend or backend read by the fast reader, when it takes the file and
/// it validates without a single diagnostic; else the full path reads it
/// (see [`fast_yaml_service`]).
pub(super) fn fast_json_endpoints(
    file: &str,
    bytes: &[u8],
    frontend: bool,
) -> Option<EndpointFile> {
    let text = std::str::from_utf8(bytes).ok()?;
    let obj = fast_json::object(text)?;
    let keys = if frontend {
        FRONTEND_KEYS
    } else {
        BACKEND_KEYS
    };
    let mut f = EndpointFields::default();
    for (key, value) in &obj {
        let canon = keys.iter().find(|k| k.eq_ignore_ascii_case(key))?;
        use fast_json::Value::{Bool, Int, Str};
        match (*canon, *value) {
            ("healthcheck", Bool(b)) if f.healthcheck.is_none() => {
                f.healthcheck = Some(unplaced(b));
            }
            ("ipv4", Str(s)) if f.ipv4.is_none() => f.ipv4 = Some(unplaced(s)),
            ("ipv6", Str(s)) if f.ipv6.is_none() => f.ipv6 = Some(unplaced(s)),
            ("tcp", Int(n)) if f.tcp.is_none() => f.tcp = Some(unplaced(n)),
            ("udp", Int(n)) if f.udp.is_none() => f.udp = Some(unplaced(n)),
            ("weight", Int(n)) if f.weight.is_none() => f.weight = Some(unplaced(n)),
            ("fwmark_ipv4", Int(n)) if f.fwmark_ipv4.is_none() => {
                f.fwmark_ipv4 = Some(unplaced(n));
            }
            ("fwmark_ipv6", Int(n)) if f.fwmark_ipv6.is_none() => {
                f.fwmark_ipv6 = Some(unplaced(n));
            }
            ("upper_threshold", Int(n)) if f.upper_threshold.is_none() => {
                f.upper_threshold = Some(unplaced(n));
            }
            ("lower_threshold", Int(n)) if f.lower_threshold.is_none() => {
                f.lower_threshold = Some(unplaced(n));
            }
            _ => return None,
        }
    }
    f.addr_given = f.ipv4.is_some() || f.ipv6.is_some();
    f.port_given = f.tcp.is_some() || f.udp.is_some();
    f.upper_given = f.upper_threshold.is_some();
    let mut diags = Diagnostics::default();
    let mut r = Reporter {
        file,
        diags: &mut diags,
        failed: false,
    };
    let what = if frontend { "frontend" } else { "backend" };
    let (endpoints, weight) = validate_endpoints(&mut r, None, &f, frontend, &what);
    let thresholds = validate_thresholds(&mut r, &f);
    let checked = f.healthcheck.is_none_or(|h| h.value);
    diags.is_empty().then_some(EndpointFile {
        endpoints,
        weight,
        weight_given: f.weight.is_some(),
        healthcheck: checked,
        thresholds,
        service: Default::default(),
    })
}

/// The service file read by the fast reader, when it takes it and it
/// validates without a single diagnostic.
pub(super) fn fast_yaml_service(file: &str, name: &str, bytes: &[u8]) -> Option<Service> {
    let text = std::str::from_utf8(bytes).ok()?;
    let doc = fast_yaml::parse(text)?;
    let mut frontend = None;
    let mut scheduler = None;
    let mut persistence = None;
    let mut backends = Vec::new();
    let mut check = None;
    let mut ipvs = IpvsFields::default();
    for (key, node) in &doc {
        match *key {
            "frontend" => frontend = Some(fast_endpoint_fields(node.map()?, false)?),
            "healthcheck" => check = Some(fast_check_fields(node.map()?)?),
            "scheduler" => scheduler = Some(unplaced(node.str()?)),
            "persistence" => {
                persistence = Some(unplaced(node.int()?));
                ipvs.persistence_given = true;
            }
            "persistence_netmask_ipv4" => ipvs.netmask_ipv4 = Some(unplaced(node.int()?)),
            "persistence_netmask_ipv6" => ipvs.netmask_ipv6 = Some(unplaced(node.int()?)),
            "persistence_engine" => ipvs.persistence_engine = Some(unplaced(node.str()?)),
            "ops" => ipvs.ops = Some(unplaced(node.bool()?)),
            "scheduler_flags" => ipvs.scheduler_flags = Some(unplaced(node.str()?)),
            "backends" => {
                let map = node.map()?;
                backends.reserve(map.len());
                for (bname, b) in map {
                    backends.push((*bname, None, fast_endpoint_fields(b.map()?, true)?));
                }
            }
            _ => return None,
        }
    }
    let fields = ServiceFields {
        frontend_pos: None,
        frontend: frontend?,
        scheduler,
        persistence,
        backends,
        ipvs,
        default_weight: None,
    };
    let mut diags = Diagnostics::default();
    let mut r = Reporter {
        file,
        diags: &mut diags,
        failed: false,
    };
    let mut svc = validate_service(&mut r, name, &fields);
    if let Some(check) = &check {
        svc.healthcheck = validate_check(&mut r, check, Some(&svc.frontend));
    }
    diags.is_empty().then_some(svc)
}

/// The fields of a health check mapping.
fn fast_check_fields<'a>(map: &[(&'a str, fast_yaml::Node<'a>)]) -> Option<CheckFields<'a>> {
    let mut f = CheckFields::default();
    for (key, node) in map {
        let key: &'static str = match *key {
            "type" => {
                f.kind = Some(unplaced(node.str()?));
                "type"
            }
            "port" => {
                f.port = Some(unplaced(node.int()?));
                "port"
            }
            "path" => {
                f.path = Some(unplaced(node.str()?));
                "path"
            }
            "host" => {
                f.host = Some(unplaced(node.str()?));
                "host"
            }
            "expect" => {
                let codes = match node.int() {
                    Some(n) => n.to_string(),
                    None => node.status_text()?.to_string(),
                };
                f.expect = Some(unplaced(codes));
                "expect"
            }
            "query" => {
                f.query = Some(unplaced(node.str()?));
                "query"
            }
            "interval" => {
                f.interval = Some(unplaced(node.duration_text()?));
                "interval"
            }
            "timeout" => {
                f.timeout = Some(unplaced(node.duration_text()?));
                "timeout"
            }
            "rise" => {
                f.rise = Some(unplaced(node.int()?));
                "rise"
            }
            "fall" => {
                f.fall = Some(unplaced(node.int()?));
                "fall"
            }
            "on_failure" => {
                f.on_failure = Some(unplaced(node.str()?));
                "on_failure"
            }
            _ => return None,
        };
        f.given.push((key, None));
    }
    Some(f)
}

/// The route file read by the fast reader (see [`fast_yaml_service`]).
pub(super) fn fast_yaml_route(file: &str, name: &str, bytes: &[u8]) -> Option<Route> {
    let text = std::str::from_utf8(bytes).ok()?;
    let doc = fast_yaml::parse(text)?;
    let mut fields = RouteFields {
        prefix: None,
        gateway: None,
        method: None,
        // A `tunnel:` block is the full reader's.
        tunnel: None,
    };
    for (key, node) in &doc {
        match *key {
            "prefix" => fields.prefix = Some(unplaced(node.str()?)),
            "gateway" => fields.gateway = Some(unplaced(node.str()?)),
            "method" => {
                let m = node.str()?;
                if !["masq", "droute", "tunnel", "none"].contains(&m) {
                    return None;
                }
                fields.method = Some(unplaced(m));
            }
            _ => return None,
        }
    }
    // The method is required in YAML.
    fields.method.as_ref()?;
    let mut diags = Diagnostics::default();
    let mut r = Reporter {
        file,
        diags: &mut diags,
        failed: false,
    };
    let route = validate_route(&mut r, name, &fields);
    diags.is_empty().then_some(route)
}

/// The value of at most 9 ASCII digits (the callers checked them).
fn small_decimal(digits: &str) -> i128 {
    let n = digits
        .bytes()
        .fold(0u32, |n, d| n * 10 + u32::from(d.wrapping_sub(b'0')));
    n.into()
}

/// The fields of a frontend (`weight == false`) or backend mapping.
fn fast_endpoint_fields<'a>(
    map: &[(&'a str, fast_yaml::Node<'a>)],
    weight: bool,
) -> Option<EndpointFields<'a>> {
    let mut f = EndpointFields::default();
    for (key, node) in map {
        match *key {
            "ipv4" => f.ipv4 = Some(unplaced(node.str()?)),
            "ipv6" => f.ipv6 = Some(unplaced(node.str()?)),
            "tcp" => f.tcp = Some(unplaced(node.int()?)),
            "udp" => f.udp = Some(unplaced(node.int()?)),
            "weight" if weight => f.weight = Some(unplaced(node.int()?)),
            "healthcheck" if weight => f.healthcheck = Some(unplaced(node.bool()?)),
            "upper_threshold" if weight => f.upper_threshold = Some(unplaced(node.int()?)),
            "lower_threshold" if weight => f.lower_threshold = Some(unplaced(node.int()?)),
            "fwmark_ipv4" if !weight => f.fwmark_ipv4 = Some(unplaced(node.int()?)),
            "fwmark_ipv6" if !weight => f.fwmark_ipv6 = Some(unplaced(node.int()?)),
            _ => return None,
        }
    }
    f.addr_given = f.ipv4.is_some() || f.ipv6.is_some();
    f.port_given = f.tcp.is_some() || f.udp.is_some();
    f.upper_given = f.upper_threshold.is_some();
    Some(f)
}

/// A reader for flat JSON objects of strings, small integers and booleans, the shape
/// of the original tree's files. It answers `None` for anything else
/// (escapes, other value types, signs, fractions, exponents, leading zeros,
/// more than 9 digits, malformed text); it never guesses.
mod fast_json {
    #[derive(Clone, Copy)]
    pub(super) enum Value<'a> {
        Str(&'a str),
        Int(i128),
        Bool(bool),
    }

    pub(super) fn object(text: &str) -> Option<Vec<(&str, Value<'_>)>> {
        let mut s = Scanner {
            text,
            b: text.as_bytes(),
            i: 0,
        };
        let mut out = Vec::with_capacity(8);
        s.ws();
        s.expect(b'{')?;
        s.ws();
        if s.peek() == Some(b'}') {
            s.i += 1;
        } else {
            loop {
                out.push(s.member()?);
                s.ws();
                match s.peek()? {
                    b',' => {
                        s.i += 1;
                        s.ws();
                    }
                    b'}' => {
                        s.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        s.ws();
        (s.i == s.b.len()).then_some(out)
    }

    /// A position in the text.
    struct Scanner<'a> {
        text: &'a str,
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Scanner<'a> {
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }

        fn ws(&mut self) {
            while self
                .peek()
                .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
            {
                self.i += 1;
            }
        }

        fn expect(&mut self, c: u8) -> Option<()> {
            if self.peek() != Some(c) {
                return None;
            }
            self.i += 1;
            Some(())
        }

        /// `"key": value`.
        fn member(&mut self) -> Option<(&'a str, Value<'a>)> {
            let key = self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            let value = match self.peek()? {
                b'"' => Value::Str(self.string()?),
                b'0'..=b'9' => Value::Int(self.int()?),
                b't' => self.word("true", Value::Bool(true))?,
                b'f' => self.word("false", Value::Bool(false))?,
                _ => return None,
            };
            Some((key, value))
        }

        /// The literal `word` (`true`, `false`) as `value`.
        fn word(&mut self, word: &str, value: Value<'a>) -> Option<Value<'a>> {
            if !self.text[self.i..].starts_with(word) {
                return None;
            }
            self.i += word.len();
            Some(value)
        }

        /// A string without escapes or control characters.
        fn string(&mut self) -> Option<&'a str> {
            if self.peek() != Some(b'"') {
                return None;
            }
            let start = self.i + 1;
            let mut j = start;
            loop {
                match *self.b.get(j)? {
                    b'"' => break,
                    b'\\' => return None,
                    c if c < 0x20 => return None,
                    _ => j += 1,
                }
            }
            self.i = j + 1;
            Some(&self.text[start..j])
        }

        /// Up to 9 digits without a leading zero, fraction or exponent.
        fn int(&mut self) -> Option<i128> {
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            let digits = &self.text[start..self.i];
            if digits.len() > 9 || (digits.len() > 1 && digits.starts_with('0')) {
                return None;
            }
            // A fraction or exponent makes a float.
            if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            Some(super::small_decimal(digits))
        }
    }
}

/// A reader for the plain subset of YAML that config files are written in.
/// It answers `None` for anything outside that subset; it never guesses.
///
/// The subset: ASCII text without tabs or carriage returns; block mappings
/// (each level at one indentation) and one-line flow mappings; keys that
/// start with a letter and hold only letters, digits and `- _ . @` (no YAML
/// boolean or null spelling); plain scalars of letters, digits and
/// `. : / - _` that start with a letter, a digit or `/`, double-quoted
/// scalars without escapes, single-quoted scalars without quotes; comments;
/// no duplicate keys.
mod fast_yaml {
    pub(super) enum Node<'a> {
        /// A scalar as written (without its quotes).
        Scalar {
            text: &'a str,
            quoted: bool,
        },
        Map(Vec<(&'a str, Node<'a>)>),
    }

    impl<'a> Node<'a> {
        pub(super) fn map(&self) -> Option<&[(&'a str, Node<'a>)]> {
            match self {
                Node::Map(m) => Some(m),
                Node::Scalar { .. } => None,
            }
        }

        /// The scalar, when YAML reads it as a string.
        pub(super) fn str(&self) -> Option<&'a str> {
            match *self {
                Node::Scalar { text, quoted: true } => Some(text),
                Node::Scalar {
                    text,
                    quoted: false,
                } => plain_is_string(text).then_some(text),
                Node::Map(_) => None,
            }
        }

        /// The scalar, when it is `true` or `false` as written (every
        /// YAML reads those as booleans; other spellings are left to the
        /// full parser).
        pub(super) fn bool(&self) -> Option<bool> {
            match *self {
                Node::Scalar {
                    text: "true",
                    quoted: false,
                } => Some(true),
                Node::Scalar {
                    text: "false",
                    quoted: false,
                } => Some(false),
                _ => None,
            }
        }

        /// A duration's text: a quoted scalar, or a plain one of digits and
        /// a unit (`5s`, `500ms`), which no YAML reads as a number.
        pub(super) fn duration_text(&self) -> Option<&'a str> {
            match *self {
                Node::Scalar { text, quoted: true } => Some(text),
                Node::Scalar {
                    text,
                    quoted: false,
                } => {
                    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
                    let unit = &text[digits..];
                    (digits > 0 && matches!(unit, "ms" | "s" | "m" | "h")).then_some(text)
                }
                Node::Map(_) => None,
            }
        }

        /// Status codes' text: a quoted scalar, or a plain range of two
        /// three-digit codes (`200-399`), which no YAML reads as a number.
        pub(super) fn status_text(&self) -> Option<&'a str> {
            match *self {
                Node::Scalar { text, quoted: true } => Some(text),
                Node::Scalar {
                    text,
                    quoted: false,
                } => {
                    let b = text.as_bytes();
                    let ok = b.len() == 7
                        && b[3] == b'-'
                        && b[..3].iter().chain(&b[4..]).all(u8::is_ascii_digit);
                    ok.then_some(text)
                }
                Node::Map(_) => None,
            }
        }

        /// The scalar, when it is a plain decimal integer (no sign, no
        /// leading zero, at most 9 digits).
        pub(super) fn int(&self) -> Option<i128> {
            let Node::Scalar {
                text,
                quoted: false,
            } = *self
            else {
                return None;
            };
            let b = text.as_bytes();
            let ok = !b.is_empty()
                && b.len() <= 9
                && b.iter().all(u8::is_ascii_digit)
                && (b[0] != b'0' || b.len() == 1);
            ok.then(|| super::small_decimal(text))
        }
    }

    /// Spellings YAML reads as a boolean, null or special float (any case).
    pub(super) const SPECIAL: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf", "infinity",
    ];

    pub(super) fn special(word: &str) -> bool {
        // Every spelling starts with one of these letters, in either case.
        if !word
            .as_bytes()
            .first()
            .is_some_and(|c| matches!(c | 0x20, b'f' | b'i' | b'n' | b'o' | b't' | b'y'))
        {
            return false;
        }
        // Only the spellings of the word's length need comparing.
        let same_length: &[&str] = match word.len() {
            1 => &SPECIAL[..2],
            2 => &SPECIAL[3..5],
            3 => &["yes", "off", "nan", "inf"],
            4 => &["true", "null"],
            5 => &["false"],
            8 => &["infinity"],
            _ => &[],
        };
        let first = word.as_bytes()[0] | 0x20;
        same_length
            .iter()
            .any(|s| s.as_bytes()[0] == first && s.eq_ignore_ascii_case(word))
    }

    /// Whether a plain scalar (of the fast reader's characters) is a string
    /// to YAML: one that starts with a letter and is no special spelling,
    /// or with a `/` (a path), or one that starts with a digit and holds a
    /// `:` or `/` or two dots, which no number does (an address or prefix).
    fn plain_is_string(text: &str) -> bool {
        let b = text.as_bytes();
        match b.first() {
            Some(c) if c.is_ascii_alphabetic() => !special(text),
            Some(b'/') => true,
            Some(c) if c.is_ascii_digit() => {
                // One pass: dots counted, a `:` or `/` seen.
                let (dots, other) = b.iter().fold((0, false), |(dots, other), &c| {
                    (
                        dots + usize::from(c == b'.'),
                        other | (c == b':') | (c == b'/'),
                    )
                });
                other || dots >= 2
            }
            _ => false,
        }
    }

    /// More than this many nodes is left to the full parser and its limits.
    const MAX_NODES: usize = 50_000;
    /// Deeper nesting than the config files have is left to the full parser.
    const MAX_DEPTH: usize = 4;
    /// Longer keys are left to the full parser (YAML limits implicit keys).
    const MAX_KEY: usize = 128;
    /// Larger files are left to the full parser and its limits.
    const MAX_BYTES: usize = 4 << 20;

    pub(super) type Map<'a> = Vec<(&'a str, Node<'a>)>;

    /// Reads a document whose top level is a block mapping.
    pub(super) fn parse(text: &str) -> Option<Map<'_>> {
        if text.len() > MAX_BYTES {
            return None;
        }
        let b = text.as_bytes();
        // Printable ASCII, spaces and line feeds only (one branch-free pass).
        if !b.iter().fold(true, |ok, &c| {
            ok & (c == b'\n' || (b' '..0x7f).contains(&c))
        }) {
            return None;
        }
        let mut lines = Vec::with_capacity(text.len() / 16 + 1);
        for line in text.split('\n') {
            let indent = line.bytes().take_while(|&c| c == b' ').count();
            let content = &line[indent..];
            // Blank and comment lines are no content.
            if !content.is_empty() && !content.starts_with('#') {
                lines.push((indent, content));
            }
        }
        let mut p = Reader {
            lines,
            at: 0,
            nodes: 0,
        };
        let map = p.block(0, 0)?;
        (p.at == p.lines.len() && !map.is_empty()).then_some(map)
    }

    struct Reader<'a> {
        /// Indentation and content of each line that is not blank or a comment.
        lines: Vec<(usize, &'a str)>,
        at: usize,
        nodes: usize,
    }

    impl<'a> Reader<'a> {
        /// The block mapping whose keys are at `indent`.
        fn block(&mut self, indent: usize, depth: usize) -> Option<Map<'a>> {
            if depth > MAX_DEPTH {
                return None;
            }
            let mut out = Vec::with_capacity(8);
            while let Some(&(ind, content)) = self.lines.get(self.at) {
                if ind < indent {
                    break;
                }
                if ind > indent {
                    return None;
                }
                self.at += 1;
                let mut c = Cursor {
                    s: content.as_bytes(),
                    text: content,
                    i: 0,
                };
                let key = c.key()?;
                let node = if c.line_ends() {
                    // The value is a block mapping on the following lines.
                    let &(child, _) = self.lines.get(self.at)?;
                    if child <= indent {
                        return None;
                    }
                    Node::Map(self.block(child, depth + 1)?)
                } else {
                    let node = c.value(depth + 1, &mut self.nodes)?;
                    if !c.line_ends() {
                        return None;
                    }
                    // A more indented line would continue the value.
                    if self.lines.get(self.at).is_some_and(|&(i, _)| i > indent) {
                        return None;
                    }
                    node
                };
                self.nodes += 2;
                if self.nodes > MAX_NODES {
                    return None;
                }
                out.push((key, node));
            }
            unique(&out).then_some(out)
        }
    }

    fn unique(map: &[(&str, Node)]) -> bool {
        if map.len() <= 8 {
            return map
                .iter()
                .enumerate()
                .all(|(i, (k, _))| map[..i].iter().all(|(o, _)| o != k));
        }
        let mut keys: Vec<&str> = map.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys.windows(2).all(|w| w[0] != w[1])
    }

    /// The bytes of a key: letters, digits and `- _ . @`.
    const KEY_BYTES: [bool; 256] = byte_class(b"-_.@");
    /// The bytes of a plain scalar: letters, digits and `. : / - _`.
    const PLAIN_BYTES: [bool; 256] = byte_class(b".:/-_");

    /// Letters, digits and `extra`, as a table by byte.
    const fn byte_class(extra: &[u8]) -> [bool; 256] {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            t[c] = (c as u8).is_ascii_alphanumeric();
            c += 1;
        }
        let mut i = 0;
        while i < extra.len() {
            t[extra[i] as usize] = true;
            i += 1;
        }
        t
    }

    /// A position in one line.
    struct Cursor<'a> {
        s: &'a [u8],
        text: &'a str,
        i: usize,
    }

    impl<'a> Cursor<'a> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }

        fn skip_spaces(&mut self) {
            while self.peek() == Some(b' ') {
                self.i += 1;
            }
        }

        /// After spaces, the end of the line or a comment.
        fn line_ends(&mut self) -> bool {
            self.skip_spaces();
            match self.peek() {
                None => true,
                Some(b'#') => self.i > 0 && self.s[self.i - 1] == b' ',
                Some(_) => false,
            }
        }

        fn take_while(&mut self, ok: impl Fn(u8) -> bool) -> &'a str {
            let start = self.i;
            while self.peek().is_some_and(&ok) {
                self.i += 1;
            }
            &self.text[start..self.i]
        }

        /// `key:` followed by a space or the end of the line.
        fn key(&mut self) -> Option<&'a str> {
            let key = self.take_while(|c| KEY_BYTES[usize::from(c)]);
            let first = key.as_bytes().first()?;
            if !first.is_ascii_alphabetic() || key.len() > MAX_KEY || special(key) {
                return None;
            }
            if self.peek() != Some(b':') {
                return None;
            }
            self.i += 1;
            matches!(self.peek(), None | Some(b' ')).then_some(key)
        }

        /// A flow mapping or a scalar.
        fn value(&mut self, depth: usize, nodes: &mut usize) -> Option<Node<'a>> {
            match self.peek()? {
                b'{' => self.flow_map(depth, nodes).map(Node::Map),
                q @ (b'"' | b'\'') => {
                    self.i += 1;
                    let text = self.take_while(|c| c != q && c != b'\\');
                    if self.peek() != Some(q) {
                        return None;
                    }
                    self.i += 1;
                    // '' in a single-quoted scalar is an escaped quote.
                    if self.peek() == Some(q) {
                        return None;
                    }
                    Some(Node::Scalar { text, quoted: true })
                }
                c if c.is_ascii_alphanumeric() || c == b'/' => {
                    let text = self.take_while(|c| PLAIN_BYTES[usize::from(c)]);
                    // A trailing `:` would be a mapping indicator.
                    if text.ends_with(':') {
                        return None;
                    }
                    Some(Node::Scalar {
                        text,
                        quoted: false,
                    })
                }
                _ => None,
            }
        }

        /// `{key: value, ...}` on one line.
        fn flow_map(&mut self, depth: usize, nodes: &mut usize) -> Option<Map<'a>> {
            if depth > MAX_DEPTH {
                return None;
            }
            self.i += 1;
            self.skip_spaces();
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Some(Vec::new());
            }
            let mut out = Vec::with_capacity(8);
            loop {
                let key = self.key()?;
                self.skip_spaces();
                let value = self.value(depth + 1, nodes)?;
                *nodes += 2;
                if *nodes > MAX_NODES {
                    return None;
                }
                out.push((key, value));
                self.skip_spaces();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        self.skip_spaces();
                        // No trailing comma.
                        if self.peek() == Some(b'}') {
                            return None;
                        }
                    }
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
            unique(&out).then_some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_yaml_special_spellings_are_special_in_any_case() {
        for word in fast_yaml::SPECIAL {
            assert!(fast_yaml::special(word), "{word}");
            assert!(fast_yaml::special(&word.to_uppercase()), "{word}");
        }
        assert!(!fast_yaml::special("ipv4"));
        assert!(!fast_yaml::special("b0"));
    }

    #[test]
    fn fast_yaml_leaves_the_rest_to_the_full_parser() {
        for text in [
            "",
            "---\nfrontend: {ipv4: 10.0.0.1, tcp: 80}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.0.0.2, ipv4: 10.0.0.3}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfrontend: {ipv4: 10.0.0.1, tcp: 80}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 080}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 0x50}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: \"80\"}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80,}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: yes\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: nope\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler:\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: wlc\n  rr\n",
            "frontend: {ipv4: \"10.0.0.1\\n\", tcp: 80}\n",
            "frontend:\n\tipv4: 10.0.0.1\n\ttcp: 80\n",
            "frontend: &f {ipv4: 10.0.0.1, tcp: 80}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\r\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  on: {ipv4: 10.0.0.2}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  10.0.0.2: {ipv4: 10.0.0.2}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.0.0.2, tcp: 70000}\n",
            "frontend: {ipv4: 10.0.0.1, ipv6: 2001:db8::, tcp: 80}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}#c\n",
            "  frontend: {ipv4: 10.0.0.1, tcp: 80}\n",
        ] {
            assert!(
                fast_yaml_service("services/s.yaml", "s", text.as_bytes()).is_none(),
                "fast path took {text:?}"
            );
        }
    }
}
