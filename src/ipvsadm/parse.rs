//! Reading: an `ipvsadm -S -n` dump into an [`IpvsState`]. Each line is
//! split into words, its options are read by group (service, scheduling,
//! dest, tunnel) and checked against its command, then it becomes a service
//! or a dest of the state read so far.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::model::flags::{FLAG_OPS, FLAG_PE_PREFIX, sched_flag_bit, sched_flag_name};
use crate::model::tunnel::{
    TUN_FLAG_CSUM, TUN_FLAG_REMCSUM, TUN_TYPE_GRE, TUN_TYPE_GUE, TUN_TYPE_IPIP, TUNNEL_TYPES,
    Tunnel,
};
use crate::model::{
    Dest, DestAttrs, Family, IpvsState, Method, Protocol, Service, ServiceAttrs, ServiceKey,
};

/// Default persistence timeout of `-p` without a value: ipvsadm's
/// `IPVS_SVC_PERSISTENT_TIMEOUT` (6*60 seconds; `ipvsadm -A -f 42 -s wlc -p`
/// saves as `-p 360`).
pub const DEFAULT_PERSISTENCE: u32 = 360;

/// A problem in a dump: 1-based line and column of the offending token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// `3:14: unknown option "-z"`; callers put the file name in front.
impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// A whitespace-separated word and its 1-based column (in characters).
#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    column: usize,
    text: &'a str,
}

/// The words of one line of a dump, found in one pass over its bytes: they
/// end at its `\n` (a `\r` before it is whitespace, as `str::lines` drops
/// it). Whitespace is Rust's (`char::is_whitespace`); ASCII is decided by
/// the byte, only other characters are decoded.
#[derive(Clone)]
struct Words<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    /// Byte offset of the line's first character.
    start: usize,
    /// UTF-8 continuation bytes of the line before `pos`: its column is
    /// `pos - start - wide + 1`.
    wide: usize,
}

impl<'a> Words<'a> {
    /// The words of the line that starts at byte `start` of `text`.
    fn new(text: &'a str, start: usize) -> Self {
        Words {
            text,
            pos: start,
            start,
            wide: 0,
        }
    }

    /// The length of the non-ASCII character at byte `i` when its
    /// whitespace-ness is `space` (its extra bytes counted in `wide`).
    fn wide_char(&mut self, i: usize, space: bool) -> Option<usize> {
        let c = self.text.get(i..)?.chars().next()?;
        if c.is_whitespace() != space {
            return None;
        }
        self.wide += c.len_utf8() - 1;
        Some(c.len_utf8())
    }

    /// The next word unless it starts with `-` (an option).
    fn next_value(&mut self) -> Option<Token<'a>> {
        let mut ahead = self.clone();
        let t = ahead.next().filter(|t| !t.text.starts_with('-'))?;
        *self = ahead;
        Some(t)
    }

    /// The byte offset after the line's `\n` (the text's end without one).
    fn next_line(&self) -> usize {
        let rest = &self.text.as_bytes()[self.pos..];
        rest.iter()
            .position(|&b| b == b'\n')
            .map_or(self.text.len(), |n| self.pos + n + 1)
    }

    /// The line, without its `\n`.
    fn line(&self) -> &'a str {
        let end = self.next_line();
        let line = &self.text[self.start..end];
        line.strip_suffix('\n').unwrap_or(line)
    }
}

/// ASCII whitespace as `char::is_whitespace` has it (with vertical tab).
fn is_space(b: u8) -> bool {
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

/// A byte of a word: printable ASCII (other characters are decoded).
fn is_word_byte(b: u8) -> bool {
    b.wrapping_sub(b'!') < 0x7f - b'!'
}

impl<'a> Iterator for Words<'a> {
    type Item = Token<'a>;

    // Inlined: a dump's lines are mostly words, called for one by one.
    #[inline(always)]
    fn next(&mut self) -> Option<Token<'a>> {
        let bytes = self.text.as_bytes();
        let mut i = self.pos;
        // A dump's words: printable ASCII after spaces, before a space or
        // the line's end; anything else is read again, by the loops below.
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
        let start = i;
        while bytes.get(i).is_some_and(|&b| is_word_byte(b)) {
            i += 1;
        }
        if i > start && matches!(bytes.get(i), None | Some(b' ' | b'\n')) {
            self.pos = i;
            return Some(Token {
                column: start - self.start - self.wide + 1,
                text: &self.text[start..i],
            });
        }
        self.next_slow(start)
    }
}

impl<'a> Words<'a> {
    /// The next word from byte `i` on, in general: other whitespace, other
    /// characters.
    #[cold]
    #[inline(never)]
    fn next_slow(&mut self, mut i: usize) -> Option<Token<'a>> {
        let bytes = self.text.as_bytes();
        loop {
            let Some(&b) = bytes.get(i) else {
                self.pos = i;
                return None;
            };
            if b == b'\n' {
                self.pos = i;
                return None;
            } else if is_space(b) {
                i += 1;
            } else if b.is_ascii() {
                break;
            } else {
                match self.wide_char(i, true) {
                    Some(len) => i += len,
                    None => break,
                }
            }
        }
        self.word(i)
    }

    /// The word at byte `i` (not whitespace).
    fn word(&mut self, mut i: usize) -> Option<Token<'a>> {
        let bytes = self.text.as_bytes();
        let (start, column) = (i, i - self.start - self.wide + 1);
        while let Some(&b) = bytes.get(i) {
            if is_word_byte(b) {
                i += 1;
            } else if !b.is_ascii() {
                match self.wide_char(i, false) {
                    Some(len) => i += len,
                    None => break,
                }
            } else if is_space(b) {
                break;
            } else {
                i += 1;
            }
        }
        self.pos = i;
        Some(Token {
            column,
            text: &self.text[start..i],
        })
    }
}

/// Options of one line, each with the column it appeared at.
#[derive(Default)]
struct Line<'a> {
    service: Option<(usize, ServiceSpec)>,
    ipv6: Option<usize>,
    scheduler: Option<(usize, &'a str)>,
    persistence: Option<(usize, u32)>,
    netmask: Option<(usize, &'a str)>,
    sched_flags: Option<(usize, &'a str)>,
    ops: Option<usize>,
    pe: Option<(usize, &'a str)>,
    real_server: Option<(usize, &'a str)>,
    method: Option<(usize, Method)>,
    weight: Option<(usize, u32)>,
    upper: Option<(usize, u32)>,
    lower: Option<(usize, u32)>,
    tun_type: Option<(usize, u8)>,
    tun_port: Option<(usize, u16)>,
    /// The checksum option: its flags and its name.
    tun_csum: Option<(usize, (u16, &'a str))>,
}

#[derive(Clone, Copy)]
enum ServiceSpec {
    Addr(Protocol, SocketAddr),
    Fwmark(u32),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    AddService,
    AddServer,
}

struct LineParser<'a> {
    line: usize,
    words: Words<'a>,
}

impl<'a> LineParser<'a> {
    fn err(&self, column: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            column,
            message: message.into(),
        }
    }

    /// The value of the option at `opt`.
    fn value(&mut self, opt: Token<'a>) -> Result<Token<'a>, ParseError> {
        match self.words.next() {
            Some(t) => Ok(t),
            None => Err(self.err(opt.column, format!("option {} needs a value", opt.text))),
        }
    }

    fn number<T: std::str::FromStr + TryFrom<u32>>(
        &self,
        opt: Token<'a>,
        value: Token<'a>,
        what: &str,
    ) -> Result<T, ParseError> {
        if let Some(n) = decimal(value.text.as_bytes()).and_then(|n| T::try_from(n).ok()) {
            return Ok(n);
        }
        value.text.parse::<T>().map_err(|_| {
            self.err(
                value.column,
                format!("{}: invalid {what} {:?}", opt.text, value.text),
            )
        })
    }
}

/// Sets an option once; a second time is an error.
fn once<T>(
    p: &LineParser<'_>,
    slot: &mut Option<(usize, T)>,
    opt: Token<'_>,
    value: T,
) -> Result<(), ParseError> {
    if let Some((col, _)) = slot {
        return Err(p.err(
            opt.column,
            format!("option {} given twice (first at column {col})", opt.text),
        ));
    }
    *slot = Some((opt.column, value));
    Ok(())
}

fn flag_once(
    p: &LineParser<'_>,
    slot: &mut Option<usize>,
    opt: Token<'_>,
) -> Result<(), ParseError> {
    if let Some(col) = slot {
        return Err(p.err(
            opt.column,
            format!("option {} given twice (first at column {col})", opt.text),
        ));
    }
    *slot = Some(opt.column);
    Ok(())
}

/// Up to nine decimal digits (`str::parse` reads the rest).
fn decimal(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &b| {
        let d = b.wrapping_sub(b'0');
        (d < 10).then_some(n * 10 + u32::from(d))
    })
}

/// `A.B.C.D:PORT` as a dump writes it (no leading zeros, no sign): a subset
/// of what `SocketAddr`'s `FromStr` accepts, read to the same value; `None`
/// for anything else, which it reads.
fn socket_v4(s: &[u8]) -> Option<SocketAddr> {
    let mut octets = [0u8; 4];
    // Octets done, the number being read and its digits.
    let (mut done, mut n, mut digits) = (0, 0u32, 0);
    for &b in s {
        match b {
            b'0'..=b'9' if digits < 5 && (digits == 0 || n != 0) => {
                n = n * 10 + u32::from(b - b'0');
                digits += 1;
            }
            b'.' | b':' if digits > 0 && n < 256 && done < 4 && (b == b':') == (done == 3) => {
                octets[done] = n as u8;
                (done, n, digits) = (done + 1, 0, 0);
            }
            _ => return None,
        }
    }
    let port = u16::try_from(n).ok().filter(|_| done == 4 && digits > 0)?;
    Some(SocketAddr::from((octets, port)))
}

fn parse_service_addr(
    p: &LineParser<'_>,
    opt: Token<'_>,
    value: Token<'_>,
) -> Result<SocketAddr, ParseError> {
    if let Some(addr) = socket_v4(value.text.as_bytes()) {
        return Ok(addr);
    }
    value.text.parse::<SocketAddr>().map_err(|_| {
        let hint = if value.text.parse::<IpAddr>().is_ok()
            || value
                .text
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .is_some_and(|s| s.parse::<IpAddr>().is_ok())
        {
            "expected ADDRESS:PORT, the port is missing"
        } else {
            "expected a numeric ADDRESS:PORT (IPv6 in brackets; dump with ipvsadm -S -n)"
        };
        p.err(
            value.column,
            format!(
                "{}: invalid service address {:?}: {hint}",
                opt.text, value.text
            ),
        )
    })
}

/// Scheduler and persistence-engine names: short lowercase words.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 16
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// One line's command and options (into `l`), each option checked on its
/// own and against the command; `None` for a blank line or a comment.
fn parse_line<'a>(p: &mut LineParser<'a>, l: &mut Line<'a>) -> Result<Option<Command>, ParseError> {
    let Some(first) = p.words.next() else {
        return Ok(None);
    };
    if first.text.starts_with('#') {
        return Ok(None);
    }
    let command = command(p, first)?;
    *l = Line::default();
    while let Some(opt) = p.words.next() {
        // The groups share no option: the order is a dump's frequency.
        let known = service_option(p, l, opt)?
            || dest_option(p, l, opt)?
            || scheduling_option(p, l, opt)?
            || tunnel_option(p, l, opt)?;
        if !known {
            return Err(unknown_option(p, opt));
        }
    }
    check_command_options(p, command, l)?;
    check_tunnel_method(p, l)?;
    Ok(Some(command))
}

/// `-A` or `-a`.
fn command(p: &LineParser<'_>, first: Token<'_>) -> Result<Command, ParseError> {
    match first.text {
        "-A" | "--add-service" => Ok(Command::AddService),
        "-a" | "--add-server" => Ok(Command::AddServer),
        other if other.starts_with('-') => Err(p.err(
            first.column,
            format!(
                "unsupported command {other:?}: a dump holds only -A (service) and -a (dest) lines"
            ),
        )),
        other => Err(p.err(
            first.column,
            format!("expected -A or -a at the start of the line, found {other:?}"),
        )),
    }
}

fn unknown_option(p: &LineParser<'_>, opt: Token<'_>) -> ParseError {
    if opt.text.starts_with('-') {
        p.err(opt.column, format!("unknown option {:?}", opt.text))
    } else {
        p.err(opt.column, format!("unexpected argument {:?}", opt.text))
    }
}

/// `-t`, `-u`, `--sctp-service`, `-f`, `-6`: which service. Whether `opt`
/// is one of them.
fn service_option<'a>(
    p: &mut LineParser<'a>,
    l: &mut Line<'a>,
    opt: Token<'a>,
) -> Result<bool, ParseError> {
    let spec = match opt.text {
        "-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service" => {
            let protocol = match opt.text {
                "-t" | "--tcp-service" => Protocol::Tcp,
                "-u" | "--udp-service" => Protocol::Udp,
                _ => Protocol::Sctp,
            };
            let v = p.value(opt)?;
            ServiceSpec::Addr(protocol, parse_service_addr(p, opt, v)?)
        }
        "-f" | "--fwmark-service" => {
            let v = p.value(opt)?;
            let mark: u32 = p.number(opt, v, "fwmark")?;
            if mark == 0 {
                return Err(p.err(v.column, format!("{}: fwmark must be above 0", opt.text)));
            }
            ServiceSpec::Fwmark(mark)
        }
        "-6" | "--ipv6" => {
            flag_once(p, &mut l.ipv6, opt)?;
            return Ok(true);
        }
        _ => return Ok(false),
    };
    if l.service.is_some() {
        return Err(p.err(opt.column, "more than one service on the line"));
    }
    l.service = Some((opt.column, spec));
    Ok(true)
}

/// `-s`, `-p`, `-M`, `-b`, `-o`, `--pe`: how a service schedules. Whether
/// `opt` is one of them.
fn scheduling_option<'a>(
    p: &mut LineParser<'a>,
    l: &mut Line<'a>,
    opt: Token<'a>,
) -> Result<bool, ParseError> {
    match opt.text {
        "-s" | "--scheduler" => {
            let v = p.value(opt)?;
            if !valid_name(v.text) {
                return Err(p.err(
                    v.column,
                    format!("{}: invalid scheduler name {:?}", opt.text, v.text),
                ));
            }
            once(p, &mut l.scheduler, opt, v.text)?;
        }
        "-p" | "--persistent" => {
            let timeout = persistence_timeout(p, opt)?;
            once(p, &mut l.persistence, opt, timeout)?;
        }
        "-M" | "--netmask" => {
            let v = p.value(opt)?;
            once(p, &mut l.netmask, opt, v.text)?;
        }
        "-b" | "--sched-flags" => {
            let v = p.value(opt)?;
            once(p, &mut l.sched_flags, opt, v.text)?;
        }
        "-o" | "--ops" => flag_once(p, &mut l.ops, opt)?,
        "--pe" => {
            let v = p.value(opt)?;
            if !valid_name(v.text) {
                return Err(p.err(
                    v.column,
                    format!("{}: invalid persistence engine {:?}", opt.text, v.text),
                ));
            }
            once(p, &mut l.pe, opt, v.text)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The optional value of `-p`: the next word unless it is an option, else
/// [`DEFAULT_PERSISTENCE`].
fn persistence_timeout<'a>(p: &mut LineParser<'a>, opt: Token<'a>) -> Result<u32, ParseError> {
    match p.words.next_value() {
        Some(v) => {
            let t: u32 = p.number(opt, v, "persistence timeout")?;
            if t == 0 {
                return Err(p.err(
                    v.column,
                    format!("{}: persistence timeout must be above 0", opt.text),
                ));
            }
            Ok(t)
        }
        _ => Ok(DEFAULT_PERSISTENCE),
    }
}

/// `-r`, `-g`, `-i`, `-m`, `-w`, `-x`, `-y`: a dest. Whether `opt` is one
/// of them.
fn dest_option<'a>(
    p: &mut LineParser<'a>,
    l: &mut Line<'a>,
    opt: Token<'a>,
) -> Result<bool, ParseError> {
    match opt.text {
        "-r" | "--real-server" => {
            let v = p.value(opt)?;
            once(p, &mut l.real_server, opt, v.text)?;
        }
        "-g" | "--gatewaying" => once(p, &mut l.method, opt, Method::Droute)?,
        "-i" | "--ipip" => once(p, &mut l.method, opt, Method::Tunnel)?,
        "-m" | "--masquerading" => once(p, &mut l.method, opt, Method::Masq)?,
        "-w" | "--weight" => {
            let v = p.value(opt)?;
            let w: u32 = p.number(opt, v, "weight")?;
            if w > i32::MAX as u32 {
                return Err(p.err(v.column, format!("{}: weight {w} out of range", opt.text)));
            }
            once(p, &mut l.weight, opt, w)?;
        }
        "-x" | "--u-threshold" => {
            let v = p.value(opt)?;
            let n: u32 = p.number(opt, v, "upper threshold")?;
            once(p, &mut l.upper, opt, n)?;
        }
        "-y" | "--l-threshold" => {
            let v = p.value(opt)?;
            let n: u32 = p.number(opt, v, "lower threshold")?;
            once(p, &mut l.lower, opt, n)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `--tun-type`, `--tun-port` and the checksum options. Whether `opt` is
/// one of them.
fn tunnel_option<'a>(
    p: &mut LineParser<'a>,
    l: &mut Line<'a>,
    opt: Token<'a>,
) -> Result<bool, ParseError> {
    match opt.text {
        "--tun-type" => {
            let v = p.value(opt)?;
            let Some(kind) = TUNNEL_TYPES.iter().position(|t| *t == v.text) else {
                return Err(p.err(
                    v.column,
                    format!(
                        "--tun-type: unknown tunnel type {:?}, expected ipip, gue or gre",
                        v.text
                    ),
                ));
            };
            once(p, &mut l.tun_type, opt, kind as u8)?;
        }
        "--tun-port" => {
            let v = p.value(opt)?;
            let port: u16 = p.number(opt, v, "port")?;
            if port == 0 {
                return Err(p.err(v.column, "--tun-port: port must be 1..65535"));
            }
            once(p, &mut l.tun_port, opt, port)?;
        }
        "--tun-nocsum" | "--tun-csum" | "--tun-remcsum" => {
            let flags = match opt.text {
                "--tun-nocsum" => 0,
                "--tun-csum" => TUN_FLAG_CSUM,
                _ => TUN_FLAG_REMCSUM,
            };
            if let Some((col, (_, first))) = l.tun_csum {
                return Err(p.err(
                    opt.column,
                    format!(
                        "{}: one checksum option only ({first} at column {col})",
                        opt.text
                    ),
                ));
            }
            l.tun_csum = Some((opt.column, (flags, opt.text)));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Refuses the options that belong to the other command (the leftmost).
fn check_command_options(
    p: &LineParser<'_>,
    command: Command,
    l: &Line<'_>,
) -> Result<(), ParseError> {
    let (wrong, what): (&[Option<usize>], &str) = match command {
        Command::AddService => (
            &[
                l.real_server.map(|x| x.0),
                l.method.map(|x| x.0),
                l.weight.map(|x| x.0),
                l.upper.map(|x| x.0),
                l.lower.map(|x| x.0),
                l.tun_type.map(|x| x.0),
                l.tun_port.map(|x| x.0),
                l.tun_csum.map(|x| x.0),
            ],
            "a dest (-a) option on a service (-A) line",
        ),
        Command::AddServer => (
            &[
                l.scheduler.map(|x| x.0),
                l.persistence.map(|x| x.0),
                l.netmask.map(|x| x.0),
                l.sched_flags.map(|x| x.0),
                l.ops,
                l.pe.map(|x| x.0),
            ],
            "a service (-A) option on a dest (-a) line",
        ),
    };
    if let Some(col) = wrong.iter().flatten().min() {
        // Only on error: the words again, for the option's name.
        let opt = Words::new(p.words.line(), 0)
            .find(|t| t.column == *col)
            .map_or("", |t| t.text);
        return Err(p.err(*col, format!("{opt}: {what}")));
    }
    Ok(())
}

/// As ipvsadm: "Tunnel options conflict with forward method", and its
/// table of options per tunnel type: gue needs `--tun-port`, which no
/// other type takes; gue and gre take one checksum option (gre not
/// `--tun-remcsum`), ipip none.
fn check_tunnel_method(p: &LineParser<'_>, l: &Line<'_>) -> Result<(), ParseError> {
    let first = [
        l.tun_type.map(|x| (x.0, "--tun-type")),
        l.tun_port.map(|x| (x.0, "--tun-port")),
        l.tun_csum.map(|x| (x.0, x.1.1)),
    ]
    .into_iter()
    .flatten()
    .min();
    let Some((col, name)) = first else {
        return Ok(());
    };
    if l.method.is_none_or(|m| m.1 != Method::Tunnel) {
        return Err(p.err(
            col,
            format!("{name}: tunnel options need the tunnel forwarding method (-i)"),
        ));
    }
    let kind = l.tun_type.map_or(TUN_TYPE_IPIP, |t| t.1);
    let type_name = TUNNEL_TYPES[usize::from(kind)];
    if let Some((col, _)) = l.tun_port.filter(|_| kind != TUN_TYPE_GUE) {
        return Err(p.err(
            col,
            format!("--tun-port: an option of gue tunnels, not {type_name}"),
        ));
    }
    if let Some((col, (_, name))) = l.tun_csum.filter(|_| kind == TUN_TYPE_IPIP) {
        return Err(p.err(
            col,
            format!("{name}: an option of gue and gre tunnels, not ipip"),
        ));
    }
    // ipvsadm 1.31: "Illegal 'tun-remcsum' option with the 'gre' tunnel type".
    if let Some((col, (_, name))) = l
        .tun_csum
        .filter(|c| kind == TUN_TYPE_GRE && c.1.0 == TUN_FLAG_REMCSUM)
    {
        return Err(p.err(col, format!("{name}: an option of gue tunnels, not gre")));
    }
    if let (Some((col, _)), None) = (l.tun_type.filter(|_| kind == TUN_TYPE_GUE), l.tun_port) {
        return Err(p.err(col, "--tun-type gue: needs --tun-port"));
    }
    Ok(())
}

/// The encapsulation of an `-a` line's options (ipip without any).
fn tunnel(l: &Line<'_>) -> Tunnel {
    Tunnel {
        kind: l.tun_type.map_or(TUN_TYPE_IPIP, |t| t.1),
        port: l.tun_port.map_or(0, |t| t.1),
        flags: l.tun_csum.map_or(0, |t| t.1.0),
    }
}

fn service_key(p: &LineParser<'_>, l: &Line<'_>) -> Result<ServiceKey, ParseError> {
    let Some((_, spec)) = l.service else {
        return Err(p.err(
            1,
            "no service: expected -t, -u, --sctp-service or -f with its address",
        ));
    };
    Ok(match spec {
        ServiceSpec::Addr(protocol, addr) => {
            if let Some(c6) = l.ipv6.filter(|_| !addr.is_ipv6()) {
                return Err(p.err(c6, "-6 with an IPv4 service address"));
            }
            ServiceKey::Addr { protocol, addr }
        }
        ServiceSpec::Fwmark(mark) => ServiceKey::Fwmark {
            family: if l.ipv6.is_some() {
                Family::Ipv6
            } else {
                Family::Ipv4
            },
            mark,
        },
    })
}

fn netmask(
    p: &LineParser<'_>,
    family: Family,
    col: usize,
    text: &str,
) -> Result<Option<u8>, ParseError> {
    let bad = |why: &str| p.err(col, format!("-M {text}: {why}"));
    let prefix: u8 = match family {
        Family::Ipv4 => {
            if let Ok(mask) = text.parse::<Ipv4Addr>() {
                let bits = u32::from(mask);
                let len = bits.leading_ones();
                if bits.checked_shl(len).unwrap_or(0) != 0 {
                    return Err(bad("not a contiguous netmask"));
                }
                len as u8
            } else {
                match text.parse::<u8>() {
                    Ok(n) if n <= 32 => n,
                    _ => return Err(bad("expected a netmask like 255.255.255.0")),
                }
            }
        }
        // The kernel refuses an IPv6 netmask outside 1..128
        // (ip_vs_add_service, ip_vs_edit_service).
        Family::Ipv6 => match text.parse::<u8>() {
            Ok(n) if (1..=128).contains(&n) => n,
            _ => return Err(bad("expected a prefix length 1..128")),
        },
    };
    Ok((prefix < family.max_prefix_len()).then_some(prefix))
}

fn sched_flags(p: &LineParser<'_>, col: usize, text: &str) -> Result<Vec<u8>, ParseError> {
    let mut bits = Vec::new();
    for name in text.split(',') {
        match sched_flag_bit(name) {
            Some(b) => bits.push(b),
            None => {
                return Err(p.err(
                    col,
                    format!(
                        "-b: unknown scheduler flag {name:?}, expected sh-fallback, sh-port, mh-fallback, mh-port or flag-1..flag-3"
                    ),
                ));
            }
        }
    }
    Ok(bits)
}

/// Dest address: `ADDR:PORT`, `[V6]:PORT`, or an address alone (the
/// service's port).
fn dest_addr(
    p: &LineParser<'_>,
    key: &ServiceKey,
    col: usize,
    text: &str,
) -> Result<SocketAddr, ParseError> {
    if let Some(a) = socket_v4(text.as_bytes()) {
        return Ok(a);
    }
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(text);
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, key.port())),
        Err(_) => Err(p.err(
            col,
            format!(
                "-r: invalid dest address {text:?}: expected a numeric ADDRESS:PORT (IPv6 in brackets)"
            ),
        )),
    }
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "IPv4",
        Family::Ipv6 => "IPv6",
    }
}

/// Parses an `ipvsadm -S -n` dump. Blank lines and `#` comments are
/// skipped; anything else that is not a well-formed `-A`/`-a` line is an
/// error naming its line and column. A dest must follow the `-A` line of its
/// service, and be of its service's family unless it is a tunnel dest (the
/// kernel's rule).
pub fn parse(text: &str) -> Result<IpvsState, ParseError> {
    let mut dump = Dump {
        text,
        state: IpvsState::default(),
        open: None,
        dests: Entries::default(),
    };
    let mut l = Line::default();
    let (mut start, mut number) = (0, 0);
    while start < text.len() {
        number += 1;
        let mut p = LineParser::new(number, text, start);
        let command = parse_line(&mut p, &mut l)?;
        start = p.words.next_line();
        let Some(command) = command else {
            continue;
        };
        let key = service_key(&p, &l)?;
        match command {
            Command::AddService => dump.add_service(&p, key, &l)?,
            Command::AddServer => dump.add_dest(&p, key, &l)?,
        }
    }
    dump.close();
    Ok(dump.state)
}

impl<'a> LineParser<'a> {
    /// The parser of line `line`, which starts at byte `start` of `text`.
    fn new(line: usize, text: &'a str, start: usize) -> Self {
        LineParser {
            line,
            words: Words::new(text, start),
        }
    }
}

/// A service's dests as a dump gives them: in a vector while they come in
/// ascending order (as clusterf writes them: a push each, one build of the
/// map at the end), in the map from the first that does not.
struct Entries<K, V> {
    sorted: Vec<(K, V)>,
    map: BTreeMap<K, V>,
}

impl<K, V> Default for Entries<K, V> {
    fn default() -> Self {
        Entries {
            sorted: Vec::new(),
            map: BTreeMap::new(),
        }
    }
}

impl<K: Ord, V> Entries<K, V> {
    fn contains(&self, key: &K) -> bool {
        let Some(last) = self.sorted.last() else {
            return self.map.contains_key(key);
        };
        last.0 >= *key && self.sorted.binary_search_by(|e| e.0.cmp(key)).is_ok()
    }

    /// Adds a key it does not hold.
    fn insert(&mut self, key: K, value: V) {
        if self.map.is_empty() && self.sorted.last().is_none_or(|e| e.0 < key) {
            self.sorted.push((key, value));
            return;
        }
        self.map.extend(self.sorted.drain(..));
        self.map.insert(key, value);
    }

    /// The entries as a map; `self` is left empty.
    fn take(&mut self) -> BTreeMap<K, V> {
        if self.sorted.is_empty() {
            return std::mem::take(&mut self.map);
        }
        self.sorted.drain(..).collect()
    }
}

/// The state read so far, and the dump it is read from.
struct Dump<'t> {
    text: &'t str,
    state: IpvsState,
    /// The service of the last `-A` line, not yet in `state`: its dests
    /// usually follow it, and go into `dests` without a search of every
    /// service.
    open: Option<(ServiceKey, Service)>,
    /// The open service's dests.
    dests: Entries<SocketAddr, Dest>,
}

impl Dump<'_> {
    /// Whether the state holds `key`; without a search while the services
    /// come in key order.
    fn has_service(&self, key: &ServiceKey) -> bool {
        let services = &self.state.services;
        services
            .last_key_value()
            .is_some_and(|(last, _)| last >= key)
            && services.contains_key(key)
    }

    /// Puts the open service into the state.
    fn close(&mut self) {
        if let Some((key, mut svc)) = self.open.take() {
            svc.dests = self.dests.take();
            self.state.services.insert(key, svc);
        }
    }

    /// An `-A` line.
    fn add_service(
        &mut self,
        p: &LineParser<'_>,
        key: ServiceKey,
        l: &Line<'_>,
    ) -> Result<(), ParseError> {
        if self.open.as_ref().is_some_and(|o| o.0 == key) || self.has_service(&key) {
            let first = first_line(self.text, p.line, |c, k, _| {
                c == Command::AddService && *k == key
            });
            return Err(p.err(
                service_column(l),
                format!("service {key} already defined on line {first}"),
            ));
        }
        let attrs = service_attrs(p, &key, l)?;
        self.close();
        self.open = Some((key, Service::new(attrs)));
        Ok(())
    }

    /// An `-a` line: a dest of a service defined before it.
    fn add_dest(
        &mut self,
        p: &LineParser<'_>,
        key: ServiceKey,
        l: &Line<'_>,
    ) -> Result<(), ParseError> {
        let Some((rcol, rtext)) = l.real_server else {
            return Err(p.err(1, "dest line without -r ADDRESS:PORT"));
        };
        let dest = dest_addr(p, &key, rcol, rtext)?;
        let (known, open) = match &self.open {
            Some((open, _)) if *open == key => (true, true),
            _ => (self.has_service(&key), false),
        };
        if !known {
            return Err(p.err(
                service_column(l),
                format!("dest of service {key}, which no -A line before it defines"),
            ));
        }
        let defined = if open {
            self.dests.contains(&dest)
        } else {
            self.state
                .services
                .get_mut(&key)
                .is_some_and(|s| s.dests.contains_key(&dest))
        };
        if defined {
            let first = first_line(self.text, p.line, |c, k, d| {
                c == Command::AddServer && *k == key && d == Some(dest)
            });
            return Err(p.err(
                rcol,
                format!("dest {dest} of {key} already defined on line {first}"),
            ));
        }
        let value = dest_value(p, &key, &dest, l, (rcol, rtext))?;
        if open {
            self.dests.insert(dest, value);
        } else if let Some(svc) = self.state.services.get_mut(&key) {
            svc.dests.insert(dest, value);
        }
        Ok(())
    }
}

/// The dest of an `-a` line, with ipvsadm's defaults; `-r` is at `r`.
fn dest_value(
    p: &LineParser<'_>,
    key: &ServiceKey,
    dest: &SocketAddr,
    l: &Line<'_>,
    (rcol, rtext): (usize, &str),
) -> Result<Dest, ParseError> {
    // ipvsadm's default: direct routing.
    let method = l.method.map_or(Method::Droute, |m| m.1);
    check_dest_family(p, key, dest, method, rcol, rtext)?;
    let attrs = DestAttrs {
        method,
        // ipvsadm's default weight.
        weight: l.weight.map_or(1, |w| w.1),
        upper_threshold: l.upper.map_or(0, |x| x.1),
        lower_threshold: l.lower.map_or(0, |x| x.1),
        tunnel: tunnel(l),
    };
    Ok(Dest {
        attrs,
        provenance: Box::default(),
    })
}

/// The first line of `text` before `line` whose command, service and dest
/// address `wanted` accepts (0 if none). For duplicate errors only: the
/// lines before `line` parsed, so they are read again rather than every
/// line's number kept for the rare error.
fn first_line(
    text: &str,
    line: usize,
    wanted: impl Fn(Command, &ServiceKey, Option<SocketAddr>) -> bool,
) -> usize {
    let mut l = Line::default();
    for (i, raw) in text.lines().take(line - 1).enumerate() {
        let mut p = LineParser::new(i + 1, raw, 0);
        let Ok(Some(command)) = parse_line(&mut p, &mut l) else {
            continue;
        };
        let Ok(key) = service_key(&p, &l) else {
            continue;
        };
        let dest = l
            .real_server
            .and_then(|(col, text)| dest_addr(&p, &key, col, text).ok());
        if wanted(command, &key, dest) {
            return i + 1;
        }
    }
    0
}

/// The column of the line's service option (1 without one).
fn service_column(l: &Line<'_>) -> usize {
    l.service.map_or(1, |s| s.0)
}

/// The attributes of an `-A` line, with ipvsadm's defaults.
fn service_attrs(
    p: &LineParser<'_>,
    key: &ServiceKey,
    l: &Line<'_>,
) -> Result<ServiceAttrs, ParseError> {
    let scheduler = l.scheduler.map_or("wlc", |s| s.1).to_string();
    let persistence = l.persistence.map(|p| p.1);
    let netmask = match (l.netmask, persistence) {
        (Some((col, _)), None) => {
            return Err(p.err(
                col,
                "-M without -p: the netmask is the persistence granularity",
            ));
        }
        (Some((col, text)), Some(_)) => netmask(p, key.family(), col, text)?,
        (None, _) => None,
    };
    let flags = service_flags(p, l, &scheduler)?;
    Ok(ServiceAttrs {
        scheduler,
        persistence,
        netmask,
        flags,
    })
}

/// `-o`, `--pe` and `-b` as flag names, sorted.
fn service_flags(
    p: &LineParser<'_>,
    l: &Line<'_>,
    scheduler: &str,
) -> Result<Vec<String>, ParseError> {
    let mut flags: Vec<String> = Vec::new();
    if l.ops.is_some() {
        flags.push(FLAG_OPS.to_string());
    }
    if let Some((_, pe)) = l.pe {
        flags.push(format!("{FLAG_PE_PREFIX}{pe}"));
    }
    if let Some((col, text)) = l.sched_flags {
        for bit in sched_flags(p, col, text)? {
            flags.push(sched_flag_name(scheduler, bit).to_string());
        }
    }
    flags.sort();
    flags.dedup();
    Ok(flags)
}

/// The kernel's rule (ip_vs_genl_set_cmd): a dest of the other family than
/// its service only with the tunnel method; ipvsadm: "Different address
/// family is allowed only for tunneling servers".
fn check_dest_family(
    p: &LineParser<'_>,
    key: &ServiceKey,
    dest: &SocketAddr,
    method: Method,
    rcol: usize,
    rtext: &str,
) -> Result<(), ParseError> {
    let family = Family::of(&dest.ip());
    if family != key.family() && method != Method::Tunnel {
        return Err(p.err(
            rcol,
            format!(
                "-r {rtext}: an {} dest of an {} service needs the tunnel forwarding method (-i), as the kernel requires",
                family_name(family),
                family_name(key.family())
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast reader of `A.B.C.D:PORT` reads what `str::parse` reads, to
    /// the same value, or leaves it to it.
    #[test]
    fn fast_socket_addresses_read_as_std_reads_them() {
        let read = [
            "0.0.0.0:0",
            "10.0.0.1:80",
            "255.255.255.255:65535",
            "1.22.133.4:8080",
        ];
        for s in read {
            assert_eq!(socket_v4(s.as_bytes()), Some(s.parse().unwrap()), "{s}");
        }
        let left = [
            "1.2.3.4:5.6",
            "1.2.3.4:5:6",
            "1.2.3.4:5:",
            "1.2.3.4",
            "1.2.3:4",
            "1.2.3.4.5:6",
            "01.2.3.4:5",
            "1.2.3.4:05",
            "1.2.3.4:+5",
            "256.1.1.1:1",
            "1000.1.1.1:1",
            "1.2.3.4:65536",
            "1.2.3.4:100000",
            "1.2.3.4:",
            ".1.2.3:4",
            "1..2.3:4",
            "",
            ":",
            "1.2.3.4 :5",
            "[1.2.3.4]:5",
            "1.2.3.4:5 ",
            "1.2.3.4:9999999999",
        ];
        for s in left {
            assert_eq!(socket_v4(s.as_bytes()), None, "{s}");
        }
    }
}
