//! The `ipvsadm -S -n` rule format: [`format`] writes an [`IpvsState`] so that
//! `ipvsadm -R` loads it, and [`parse`] reads a dump (`ipvsadm -Sn >
//! live.txt` on a frontend) back into an [`IpvsState`], so a plan can be
//! made against a snapshot.
//!
//! The format is ipvsadm 1.31's `print_service_entry` with `FMT_RULE`:
//!
//! ```text
//! -A -t 10.0.0.1:80 -s wlc [-p TIMEOUT [-M MASK]] [--pe NAME] [-o] [-b FLAG,FLAG]
//! -a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m|-g|-i -w WEIGHT [--tun-type ipip]
//! ```
//!
//! with `-u` for UDP, `--sctp-service` for SCTP, `-f MARK` (`-f MARK -6`)
//! for fwmark services, IPv6 addresses in brackets, `-M` a dotted netmask
//! for IPv4 and a prefix length for IPv6, and scheduler flags named as
//! ipvsadm names them (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`,
//! otherwise `flag-1`, `flag-2`, `flag-3`). ipvsadm's save leaves out dest
//! thresholds; [`format`] writes them as `-x`/`-y`, which `ipvsadm -R`
//! accepts, and [`parse`] reads them.
//!
//! Tunnel dests: on kernels with `IPVS_DEST_ATTR_TUN_TYPE` (5.2 and later)
//! ipvsadm 1.31 prints every tunnel (`-i`) dest with its encapsulation
//! (`print_tunnel_rule`): ` --tun-type ipip`; ` --tun-type gue --tun-port
//! PORT --tun-nocsum|--tun-csum|--tun-remcsum`; ` --tun-type gre
//! --tun-nocsum|--tun-csum|--tun-remcsum` (a checksum option is always
//! printed for gue and gre; `--tun-nocsum` when no flag is set). The model
//! has only ipip tunnels (the kernel's default), so [`format`] writes
//! ` --tun-type ipip` on every tunnel dest, before `-x`/`-y`; [`Tunnel`]
//! formats what a live kernel reports, other types included. [`parse`]
//! reads `--tun-type ipip` (or no `--tun-type`: ipip) and refuses gue and
//! gre, whose dests the model cannot hold.
//!
//! Service flags live in [`ServiceAttrs::flags`] as names: `ops` (`-o`),
//! the scheduler flags above, and `pe=NAME` (`--pe NAME`).
//!
//! Invariant: pure text in, text out; this module never runs ipvsadm and
//! never panics on any input.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::model::{
    Dest, DestAttrs, Family, IpvsState, Method, Protocol, Service, ServiceAttrs, ServiceKey,
};

/// Default persistence timeout of `-p` without a value: ipvsadm's
/// `IPVS_SVC_PERSISTENT_TIMEOUT` (6*60 seconds; `ipvsadm -A -f 42 -s wlc -p`
/// saves as `-p 360`).
pub const DEFAULT_PERSISTENCE: u32 = 360;

/// Flag name of one-packet scheduling (`-o`, `--ops`).
pub const FLAG_OPS: &str = "ops";

/// Prefix of the persistence-engine flag (`--pe sip` is `pe=sip`).
pub const FLAG_PE_PREFIX: &str = "pe=";

/// `-t 10.0.0.1:80`, `-u [2001:db8::1]:53`, `-f 42` (`-f 42 -6` for IPv6).
pub fn service_arg(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            let flag = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!("{flag} {addr}")
        }
        ServiceKey::Fwmark {
            family: Family::Ipv4,
            mark,
        } => format!("-f {mark}"),
        ServiceKey::Fwmark {
            family: Family::Ipv6,
            mark,
        } => format!("-f {mark} -6"),
    }
}

/// `-m`, `-g`, `-i`.
pub fn method_flag(method: Method) -> &'static str {
    match method {
        Method::Masq => "-m",
        Method::Droute => "-g",
        Method::Tunnel => "-i",
    }
}

/// `IP_VS_CONN_F_TUNNEL_TYPE_IPIP`, `_GUE`, `_GRE`.
pub const TUN_TYPE_IPIP: u8 = 0;
pub const TUN_TYPE_GUE: u8 = 1;
pub const TUN_TYPE_GRE: u8 = 2;
/// `IP_VS_TUNNEL_ENCAP_FLAG_CSUM`, `IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM` (no
/// flag is `--tun-nocsum`).
pub const TUN_FLAG_CSUM: u16 = 1;
pub const TUN_FLAG_REMCSUM: u16 = 2;

/// A tunnel dest's encapsulation as the kernel reports it
/// (`IPVS_DEST_ATTR_TUN_TYPE`, `_TUN_PORT`, `_TUN_FLAGS`; all 0 on kernels
/// before 5.2, which is ipip).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tunnel {
    pub kind: u8,
    pub port: u16,
    pub flags: u16,
}

impl Tunnel {
    /// The kernel's default, and the only type the model holds.
    pub const IPIP: Tunnel = Tunnel {
        kind: TUN_TYPE_IPIP,
        port: 0,
        flags: 0,
    };

    /// What ipvsadm 1.31 appends to the `-a` line of a tunnel dest:
    /// ` --tun-type ipip`, ` --tun-type gue --tun-port 6080 --tun-nocsum`,
    /// ` --tun-type gre --tun-csum`; nothing for a type it does not know.
    pub fn options(&self) -> String {
        let csum = if self.flags & TUN_FLAG_REMCSUM != 0 {
            "--tun-remcsum"
        } else if self.flags & TUN_FLAG_CSUM != 0 {
            "--tun-csum"
        } else {
            "--tun-nocsum"
        };
        match self.kind {
            TUN_TYPE_IPIP => " --tun-type ipip".to_string(),
            TUN_TYPE_GUE => format!(" --tun-type gue --tun-port {} {csum}", self.port),
            TUN_TYPE_GRE => format!(" --tun-type gre {csum}"),
            _ => String::new(),
        }
    }
}

/// The name ipvsadm gives scheduler flag `bit` (1, 2 or 3) of `scheduler`.
pub fn sched_flag_name(scheduler: &str, bit: u8) -> &'static str {
    match (scheduler, bit) {
        ("sh", 1) => "sh-fallback",
        ("sh", 2) => "sh-port",
        ("mh", 1) => "mh-fallback",
        ("mh", 2) => "mh-port",
        (_, 1) => "flag-1",
        (_, 2) => "flag-2",
        _ => "flag-3",
    }
}

/// Which scheduler flag bit (1, 2 or 3) a flag name sets, if it is one.
pub fn sched_flag_bit(name: &str) -> Option<u8> {
    match name {
        "sh-fallback" | "mh-fallback" | "flag-1" => Some(1),
        "sh-port" | "mh-port" | "flag-2" => Some(2),
        "flag-3" => Some(3),
        _ => None,
    }
}

/// Flags as ipvsadm names them for `scheduler`, sorted and deduplicated:
/// `flag-1` of `sh` is `sh-fallback`, and so on. Unknown names are kept.
pub fn canonical_flags(scheduler: &str, flags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = flags
        .iter()
        .map(|f| match sched_flag_bit(f) {
            Some(bit) => sched_flag_name(scheduler, bit).to_string(),
            None => f.clone(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `255.255.255.0` for 24.
fn ipv4_netmask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(bits)
}

/// One `-A` line (without newline), in ipvsadm's order of options.
pub fn service_line(key: &ServiceKey, attrs: &ServiceAttrs) -> String {
    let mut line = format!("-A {} -s {}", service_arg(key), attrs.scheduler);
    if let Some(timeout) = attrs.persistence {
        let _ = write!(line, " -p {timeout}");
        if let Some(mask) = attrs.netmask {
            match key.family() {
                Family::Ipv4 if mask < 32 => {
                    let _ = write!(line, " -M {}", ipv4_netmask(mask));
                }
                Family::Ipv6 if mask < 128 => {
                    let _ = write!(line, " -M {mask}");
                }
                _ => {}
            }
        }
    }
    for flag in &attrs.flags {
        if let Some(pe) = flag.strip_prefix(FLAG_PE_PREFIX) {
            let _ = write!(line, " --pe {pe}");
        }
    }
    if attrs.flags.iter().any(|f| f == FLAG_OPS) {
        line.push_str(" -o");
    }
    let mut sched: Vec<(u8, String)> = attrs
        .flags
        .iter()
        .filter(|f| f.as_str() != FLAG_OPS && !f.starts_with(FLAG_PE_PREFIX))
        .map(|f| match sched_flag_bit(f) {
            Some(bit) => (bit, sched_flag_name(&attrs.scheduler, bit).to_string()),
            None => (u8::MAX, f.clone()),
        })
        .collect();
    sched.sort();
    sched.dedup();
    if !sched.is_empty() {
        let names: Vec<&str> = sched.iter().map(|(_, n)| n.as_str()).collect();
        let _ = write!(line, " -b {}", names.join(","));
    }
    line
}

/// One `-a` line (without newline); a tunnel dest is ipip.
pub fn dest_line(key: &ServiceKey, dest: &SocketAddr, attrs: &DestAttrs) -> String {
    dest_line_tunnel(key, dest, attrs, &Tunnel::IPIP)
}

/// One `-a` line (without newline) with the encapsulation `tunnel` of a
/// tunnel dest (ignored for other methods).
pub fn dest_line_tunnel(
    key: &ServiceKey,
    dest: &SocketAddr,
    attrs: &DestAttrs,
    tunnel: &Tunnel,
) -> String {
    let mut line = String::new();
    push_dest_line(&mut line, &service_arg(key), dest, attrs, tunnel);
    line
}

/// Appends `n` in decimal (without `core::fmt`, which costs several
/// times more on tables of 100k dests).
pub fn push_u32(out: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

/// Appends `addr` as its `Display` writes it (`10.0.0.1:80`, `[::1]:80`).
pub fn push_socket_addr(out: &mut String, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            let [a, b, c, d] = a.ip().octets();
            for (i, octet) in [a, b, c, d].into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u32(out, u32::from(octet));
            }
            out.push(':');
            push_u32(out, u32::from(addr.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{addr}");
        }
    }
}

/// Appends one `-a` line (without newline) of the service `-t ...` `svc`.
fn push_dest_line(
    out: &mut String,
    svc: &str,
    dest: &SocketAddr,
    attrs: &DestAttrs,
    tunnel: &Tunnel,
) {
    out.push_str("-a ");
    out.push_str(svc);
    out.push_str(" -r ");
    push_socket_addr(out, dest);
    out.push(' ');
    out.push_str(method_flag(attrs.method));
    out.push_str(" -w ");
    push_u32(out, attrs.weight);
    if attrs.method == Method::Tunnel {
        if *tunnel == Tunnel::IPIP {
            out.push_str(" --tun-type ipip");
        } else {
            out.push_str(&tunnel.options());
        }
    }
    if attrs.upper_threshold != 0 {
        let _ = write!(out, " -x {}", attrs.upper_threshold);
    }
    if attrs.lower_threshold != 0 {
        let _ = write!(out, " -y {}", attrs.lower_threshold);
    }
}

/// The whole table in `ipvsadm -S -n` format, sorted; tunnel dests ipip.
pub fn format(state: &IpvsState) -> String {
    format_tunnels(state, |_, _| None)
}

/// [`format`], with the encapsulation of tunnel dests from `tunnel`
/// (`None`: ipip).
pub fn format_tunnels<'a>(
    state: &IpvsState,
    tunnel: impl Fn(&ServiceKey, &SocketAddr) -> Option<&'a Tunnel>,
) -> String {
    // About 60 bytes a line.
    let mut out = String::with_capacity(64 * (state.services.len() + state.dest_count()));
    for (key, svc) in &state.services {
        out.push_str(&service_line(key, &svc.attrs));
        out.push('\n');
        let arg = service_arg(key);
        for (dest, d) in &svc.dests {
            let t = tunnel(key, dest).unwrap_or(&Tunnel::IPIP);
            push_dest_line(&mut out, &arg, dest, &d.attrs, t);
            out.push('\n');
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Parsing

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

/// A whitespace-separated word and its 1-based column.
#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    column: usize,
    text: &'a str,
}

fn tokens(line: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in line.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(Token {
                    column: line[..s].chars().count() + 1,
                    text: &line[s..i],
                });
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(Token {
            column: line[..s].chars().count() + 1,
            text: &line[s..],
        });
    }
    out
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
    tun_type: Option<(usize, &'a str)>,
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
    toks: Vec<Token<'a>>,
    pos: usize,
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
        match self.toks.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(*t)
            }
            None => Err(self.err(opt.column, format!("option {} needs a value", opt.text))),
        }
    }

    fn number<T: std::str::FromStr>(
        &self,
        opt: Token<'a>,
        value: Token<'a>,
        what: &str,
    ) -> Result<T, ParseError> {
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

fn parse_service_addr(
    p: &LineParser<'_>,
    opt: Token<'_>,
    value: Token<'_>,
) -> Result<SocketAddr, ParseError> {
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

fn parse_line(line_no: usize, text: &str) -> Result<Option<(Command, Line<'_>)>, ParseError> {
    let toks = tokens(text);
    let Some(first) = toks.first().copied() else {
        return Ok(None);
    };
    if first.text.starts_with('#') {
        return Ok(None);
    }
    let mut p = LineParser {
        line: line_no,
        toks,
        pos: 1,
    };
    let command = match first.text {
        "-A" | "--add-service" => Command::AddService,
        "-a" | "--add-server" => Command::AddServer,
        other if other.starts_with('-') => {
            return Err(p.err(
                first.column,
                format!(
                    "unsupported command {other:?}: a dump holds only -A (service) and -a (dest) lines"
                ),
            ));
        }
        other => {
            return Err(p.err(
                first.column,
                format!("expected -A or -a at the start of the line, found {other:?}"),
            ));
        }
    };
    let mut l = Line::default();
    while let Some(opt) = p.toks.get(p.pos).copied() {
        p.pos += 1;
        match opt.text {
            "-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service" => {
                let protocol = match opt.text {
                    "-t" | "--tcp-service" => Protocol::Tcp,
                    "-u" | "--udp-service" => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                let v = p.value(opt)?;
                let addr = parse_service_addr(&p, opt, v)?;
                if l.service.is_some() {
                    return Err(p.err(opt.column, "more than one service on the line"));
                }
                l.service = Some((opt.column, ServiceSpec::Addr(protocol, addr)));
            }
            "-f" | "--fwmark-service" => {
                let v = p.value(opt)?;
                let mark: u32 = p.number(opt, v, "fwmark")?;
                if mark == 0 {
                    return Err(p.err(v.column, format!("{}: fwmark must be above 0", opt.text)));
                }
                if l.service.is_some() {
                    return Err(p.err(opt.column, "more than one service on the line"));
                }
                l.service = Some((opt.column, ServiceSpec::Fwmark(mark)));
            }
            "-6" | "--ipv6" => flag_once(&p, &mut l.ipv6, opt)?,
            "-s" | "--scheduler" => {
                let v = p.value(opt)?;
                if !valid_name(v.text) {
                    return Err(p.err(
                        v.column,
                        format!("{}: invalid scheduler name {:?}", opt.text, v.text),
                    ));
                }
                once(&p, &mut l.scheduler, opt, v.text)?;
            }
            "-p" | "--persistent" => {
                let timeout = match p.toks.get(p.pos).copied() {
                    Some(v) if !v.text.starts_with('-') => {
                        p.pos += 1;
                        let t: u32 = p.number(opt, v, "persistence timeout")?;
                        if t == 0 {
                            return Err(p.err(
                                v.column,
                                format!("{}: persistence timeout must be above 0", opt.text),
                            ));
                        }
                        t
                    }
                    _ => DEFAULT_PERSISTENCE,
                };
                once(&p, &mut l.persistence, opt, timeout)?;
            }
            "-M" | "--netmask" => {
                let v = p.value(opt)?;
                once(&p, &mut l.netmask, opt, v.text)?;
            }
            "-b" | "--sched-flags" => {
                let v = p.value(opt)?;
                once(&p, &mut l.sched_flags, opt, v.text)?;
            }
            "-o" | "--ops" => flag_once(&p, &mut l.ops, opt)?,
            "--pe" => {
                let v = p.value(opt)?;
                if !valid_name(v.text) {
                    return Err(p.err(
                        v.column,
                        format!("{}: invalid persistence engine {:?}", opt.text, v.text),
                    ));
                }
                once(&p, &mut l.pe, opt, v.text)?;
            }
            "-r" | "--real-server" => {
                let v = p.value(opt)?;
                once(&p, &mut l.real_server, opt, v.text)?;
            }
            "-g" | "--gatewaying" => once(&p, &mut l.method, opt, Method::Droute)?,
            "-i" | "--ipip" => once(&p, &mut l.method, opt, Method::Tunnel)?,
            "-m" | "--masquerading" => once(&p, &mut l.method, opt, Method::Masq)?,
            "-w" | "--weight" => {
                let v = p.value(opt)?;
                let w: u32 = p.number(opt, v, "weight")?;
                if w > i32::MAX as u32 {
                    return Err(p.err(v.column, format!("{}: weight {w} out of range", opt.text)));
                }
                once(&p, &mut l.weight, opt, w)?;
            }
            "-x" | "--u-threshold" => {
                let v = p.value(opt)?;
                let n: u32 = p.number(opt, v, "upper threshold")?;
                once(&p, &mut l.upper, opt, n)?;
            }
            "-y" | "--l-threshold" => {
                let v = p.value(opt)?;
                let n: u32 = p.number(opt, v, "lower threshold")?;
                once(&p, &mut l.lower, opt, n)?;
            }
            "--tun-type" => {
                let v = p.value(opt)?;
                match v.text {
                    "ipip" => {}
                    "gue" | "gre" => {
                        return Err(p.err(
                            v.column,
                            format!("--tun-type {}: clusterf models only ipip tunnels", v.text),
                        ));
                    }
                    other => {
                        return Err(p.err(
                            v.column,
                            format!("--tun-type: unknown tunnel type {other:?}, expected ipip, gue or gre"),
                        ));
                    }
                }
                once(&p, &mut l.tun_type, opt, v.text)?;
            }
            "--tun-port" | "--tun-nocsum" | "--tun-csum" | "--tun-remcsum" => {
                return Err(p.err(
                    opt.column,
                    format!(
                        "{}: an option of gue and gre tunnels; clusterf models only ipip tunnels",
                        opt.text
                    ),
                ));
            }
            other if other.starts_with('-') => {
                return Err(p.err(opt.column, format!("unknown option {other:?}")));
            }
            other => {
                return Err(p.err(opt.column, format!("unexpected argument {other:?}")));
            }
        }
    }
    // Options that belong to the other command.
    let (wrong, what): (&[Option<usize>], &str) = match command {
        Command::AddService => (
            &[
                l.real_server.map(|x| x.0),
                l.method.map(|x| x.0),
                l.weight.map(|x| x.0),
                l.upper.map(|x| x.0),
                l.lower.map(|x| x.0),
                l.tun_type.map(|x| x.0),
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
        let opt = p
            .toks
            .iter()
            .find(|t| t.column == *col)
            .map_or("", |t| t.text);
        return Err(p.err(*col, format!("{opt}: {what}")));
    }
    // As ipvsadm: "Tunnel options conflict with forward method".
    if let Some((col, _)) = l.tun_type
        && l.method.is_none_or(|m| m.1 != Method::Tunnel)
    {
        return Err(p.err(
            col,
            "--tun-type: tunnel options need the tunnel forwarding method (-i)",
        ));
    }
    Ok(Some((command, l)))
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
    let mut state = IpvsState::default();
    let mut defined: BTreeMap<ServiceKey, usize> = BTreeMap::new();
    let mut dest_lines: BTreeMap<(ServiceKey, SocketAddr), usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let Some((command, l)) = parse_line(line_no, raw)? else {
            continue;
        };
        let p = LineParser {
            line: line_no,
            toks: tokens(raw),
            pos: 0,
        };
        let key = service_key(&p, &l)?;
        let service_col = l.service.map_or(1, |s| s.0);
        match command {
            Command::AddService => {
                if let Some(first) = defined.get(&key) {
                    return Err(p.err(
                        service_col,
                        format!("service {key} already defined on line {first}"),
                    ));
                }
                let scheduler = l.scheduler.map_or("wlc", |s| s.1).to_string();
                let persistence = l.persistence.map(|p| p.1);
                let netmask = match (l.netmask, persistence) {
                    (Some((col, _)), None) => {
                        return Err(p.err(
                            col,
                            "-M without -p: the netmask is the persistence granularity",
                        ));
                    }
                    (Some((col, text)), Some(_)) => netmask(&p, key.family(), col, text)?,
                    (None, _) => None,
                };
                let mut flags: Vec<String> = Vec::new();
                if l.ops.is_some() {
                    flags.push(FLAG_OPS.to_string());
                }
                if let Some((_, pe)) = l.pe {
                    flags.push(format!("{FLAG_PE_PREFIX}{pe}"));
                }
                if let Some((col, text)) = l.sched_flags {
                    for bit in sched_flags(&p, col, text)? {
                        flags.push(sched_flag_name(&scheduler, bit).to_string());
                    }
                }
                flags.sort();
                flags.dedup();
                defined.insert(key, line_no);
                state.services.insert(
                    key,
                    Service::new(ServiceAttrs {
                        scheduler,
                        persistence,
                        netmask,
                        flags,
                    }),
                );
            }
            Command::AddServer => {
                let Some((rcol, rtext)) = l.real_server else {
                    return Err(p.err(1, "dest line without -r ADDRESS:PORT"));
                };
                let dest = dest_addr(&p, &key, rcol, rtext)?;
                let Some(svc) = state.services.get_mut(&key) else {
                    return Err(p.err(
                        service_col,
                        format!("dest of service {key}, which no -A line before it defines"),
                    ));
                };
                if let Some(first) = dest_lines.get(&(key, dest)) {
                    return Err(p.err(
                        rcol,
                        format!("dest {dest} of {key} already defined on line {first}"),
                    ));
                }
                // ipvsadm's default: direct routing.
                let method = l.method.map_or(Method::Droute, |m| m.1);
                let family = Family::of(&dest.ip());
                if family != key.family() && method != Method::Tunnel {
                    // The kernel's rule (ip_vs_genl_set_cmd): a dest of the
                    // other family than its service only with the tunnel
                    // method; ipvsadm: "Different address family is allowed
                    // only for tunneling servers".
                    return Err(p.err(
                        rcol,
                        format!(
                            "-r {rtext}: an {} dest of an {} service needs the tunnel forwarding method (-i), as the kernel requires",
                            family_name(family),
                            family_name(key.family())
                        ),
                    ));
                }
                dest_lines.insert((key, dest), line_no);
                let attrs = DestAttrs {
                    method,
                    // ipvsadm's default weight.
                    weight: l.weight.map_or(1, |w| w.1),
                    upper_threshold: l.upper.map_or(0, |x| x.1),
                    lower_threshold: l.lower.map_or(0, |x| x.1),
                };
                svc.dests.insert(
                    dest,
                    Dest {
                        attrs,
                        origins: Vec::new(),
                    },
                );
            }
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(s: &str) -> ServiceKey {
        s.parse().unwrap()
    }

    #[test]
    fn parses_a_real_dump() {
        let dump = "\
-A -t 10.107.107.107:1337 -s wlc
-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10
-a -t 10.107.107.107:1337 -r 10.3.107.2:1338 -m -w 10
-A -u [2001:db8::1]:53 -s rr -p 300 -M 64
-a -u [2001:db8::1]:53 -r [2001:db8::10]:53 -g -w 1
-A -f 42 -s sh -p 60 -M 255.255.255.0 -o -b sh-fallback,sh-port
-a -f 42 -r 10.0.0.5:0 -i -w 5 --tun-type ipip
-A -f 7 -6 -s mh --pe sip -b flag-1
";
        let state = parse(dump).unwrap();
        assert_eq!(state.services.len(), 4);
        let web = &state.services[&svc("tcp://10.107.107.107:1337")];
        assert_eq!(web.attrs.scheduler, "wlc");
        assert_eq!(web.dests.len(), 2);
        let dns = &state.services[&svc("udp://[2001:db8::1]:53")];
        assert_eq!(dns.attrs.persistence, Some(300));
        assert_eq!(dns.attrs.netmask, Some(64));
        let dest: SocketAddr = "[2001:db8::10]:53".parse().unwrap();
        assert_eq!(dns.dests[&dest].attrs, DestAttrs::new(Method::Droute, 1));
        let fw = &state.services[&svc("fwmark://42")];
        assert_eq!(fw.attrs.netmask, Some(24));
        assert_eq!(fw.attrs.flags, vec!["ops", "sh-fallback", "sh-port"]);
        let fw6 = &state.services[&svc("fwmark6://7")];
        assert_eq!(fw6.attrs.flags, vec!["mh-fallback", "pe=sip"]);
        // And back: the emitter writes what ipvsadm writes.
        assert_eq!(
            service_line(&svc("fwmark://42"), &fw.attrs),
            "-A -f 42 -s sh -p 60 -M 255.255.255.0 -o -b sh-fallback,sh-port"
        );
        assert_eq!(
            service_line(&svc("fwmark6://7"), &fw6.attrs),
            "-A -f 7 -6 -s mh --pe sip -b mh-fallback"
        );
        assert_eq!(parse(&format(&state)).unwrap(), state);
    }

    #[test]
    fn errors_name_line_and_column() {
        let cases = [
            (
                "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -z\n",
                2,
                34,
                "unknown option",
            ),
            ("\n-A -t 10.0.0.1 -s wlc\n", 2, 7, "port is missing"),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1\n",
                1,
                4,
                "no -A line",
            ),
            (
                "-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n",
                2,
                4,
                "already defined on line 1",
            ),
            ("-A -t 10.0.0.1:80 -M 255.0.0.0\n", 1, 19, "-M without -p"),
            (
                "-A -t 10.0.0.1:80 -p 30 -M 255.0.255.0\n",
                1,
                25,
                "contiguous",
            ),
            ("-A -t 10.0.0.1:80 -s\n", 1, 19, "needs a value"),
            (
                "-A -t [2001:db8::1]:80 -p 30 -M 0\n",
                1,
                30,
                "expected a prefix length 1..128",
            ),
            ("-A -t 10.0.0.1:80 -w 3\n", 1, 19, "dest (-a) option"),
            ("-E -t 10.0.0.1:80\n", 1, 1, "unsupported command"),
            ("TCP  10.0.0.1:80 wlc\n", 1, 1, "expected -A or -a"),
            ("-A -f 0\n", 1, 7, "above 0"),
            (
                "-A -t 10.0.0.1:80 -b bogus\n",
                1,
                19,
                "unknown scheduler flag",
            ),
            ("-A -t www.example.com:http\n", 1, 7, "numeric"),
            ("-A -t 10.0.0.1:80 -s wlc -s rr\n", 1, 26, "given twice"),
        ];
        for (input, line, column, needle) in cases {
            let e = parse(input).unwrap_err();
            assert_eq!((e.line, e.column), (line, column), "{input:?}: {e}");
            assert!(e.message.contains(needle), "{input:?}: {e}");
        }
    }

    /// The kernel takes a dest of the other family than its service only as
    /// a tunnel dest (`ip_vs_genl_set_cmd`); a dump cannot hold anything
    /// else, so a file that does is not one.
    #[test]
    fn mixed_family_dests_only_as_tunnels() {
        let cases = [
            (
                "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r [2001:db8::1]:80 -m\n",
                19,
                "an IPv6 dest of an IPv4 service needs the tunnel forwarding method (-i)",
            ),
            (
                // No method: ipvsadm's default, direct routing.
                "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r [2001:db8::1]:80\n",
                19,
                "an IPv6 dest of an IPv4 service",
            ),
            (
                "-A -f 42 -6\n-a -f 42 -6 -r 10.0.0.2:0 -g -w 1\n",
                13,
                "an IPv4 dest of an IPv6 service",
            ),
            (
                "-A -u [2001:db8::1]:53\n-a -u [2001:db8::1]:53 -r 10.0.0.2 -m\n",
                24,
                "an IPv4 dest of an IPv6 service",
            ),
        ];
        for (input, column, needle) in cases {
            let e = parse(input).unwrap_err();
            assert_eq!((e.line, e.column), (2, column), "{input:?}: {e}");
            assert!(e.message.contains(needle), "{input:?}: {e}");
        }
        let ok = "\
-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r [2001:db8::1]:80 -i -w 1 --tun-type ipip
-A -f 42 -6 -s wlc
-a -f 42 -6 -r 10.0.0.2:0 -i -w 1 --tun-type ipip
";
        let state = parse(ok).unwrap();
        assert_eq!(format(&state), ok);
    }

    /// `--pe` without `-p`: neither ipvsadm nor the kernel
    /// (`ip_vs_add_service`) refuses it, so a live table can hold it.
    #[test]
    fn persistence_engine_without_persistence_is_accepted() {
        let s = parse("-A -u 10.0.0.1:5060 -s rr --pe sip\n").unwrap();
        let svc = &s.services[&svc("udp://10.0.0.1:5060")];
        assert_eq!(svc.attrs.persistence, None);
        assert_eq!(svc.attrs.flags, vec!["pe=sip"]);
    }

    #[test]
    fn defaults_and_comments() {
        let s = parse("# saved\n\n-A -t 10.0.0.1:80 -p\n-a -t 10.0.0.1:80 -r 10.0.0.2\n").unwrap();
        let svc = &s.services[&svc("tcp://10.0.0.1:80")];
        assert_eq!(svc.attrs.scheduler, "wlc");
        // ipvsadm's IPVS_SVC_PERSISTENT_TIMEOUT, 6*60.
        assert_eq!(svc.attrs.persistence, Some(360));
        let d: SocketAddr = "10.0.0.2:80".parse().unwrap();
        assert_eq!(svc.dests[&d].attrs, DestAttrs::new(Method::Droute, 1));
    }

    #[test]
    fn host_netmask_is_no_netmask() {
        let s = parse("-A -t 10.0.0.1:80 -p 30 -M 255.255.255.255\n").unwrap();
        assert_eq!(s.services[&svc("tcp://10.0.0.1:80")].attrs.netmask, None);
    }

    /// `ipvsadm -S -n` of ipvsadm 1.31 on kernel 6.1 (tests/vm), tunnel
    /// dests of each type added with `ipvsadm -a ... -i --tun-type ...`.
    #[test]
    fn tunnel_options_as_ipvsadm_prints_them() {
        let t = |kind, port, flags| Tunnel { kind, port, flags }.options();
        assert_eq!(t(TUN_TYPE_IPIP, 0, 0), " --tun-type ipip");
        assert_eq!(
            t(TUN_TYPE_GUE, 6080, 0),
            " --tun-type gue --tun-port 6080 --tun-nocsum"
        );
        assert_eq!(
            t(TUN_TYPE_GUE, 6080, TUN_FLAG_CSUM),
            " --tun-type gue --tun-port 6080 --tun-csum"
        );
        assert_eq!(
            t(TUN_TYPE_GUE, 6080, TUN_FLAG_REMCSUM),
            " --tun-type gue --tun-port 6080 --tun-remcsum"
        );
        assert_eq!(t(TUN_TYPE_GRE, 0, 0), " --tun-type gre --tun-nocsum");
        assert_eq!(
            t(TUN_TYPE_GRE, 0, TUN_FLAG_CSUM),
            " --tun-type gre --tun-csum"
        );
        assert_eq!(t(9, 0, 0), "");
        let key = svc("tcp://10.0.0.1:80");
        let dest: SocketAddr = "10.1.0.3:80".parse().unwrap();
        let attrs = DestAttrs::new(Method::Tunnel, 3);
        assert_eq!(
            dest_line(&key, &dest, &attrs),
            "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type ipip"
        );
        let gue = Tunnel {
            kind: TUN_TYPE_GUE,
            port: 6080,
            flags: 0,
        };
        assert_eq!(
            dest_line_tunnel(&key, &dest, &attrs, &gue),
            "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type gue --tun-port 6080 --tun-nocsum"
        );
        // Thresholds (clusterf's addition) after what ipvsadm prints.
        let with_thresholds = DestAttrs {
            upper_threshold: 100,
            ..attrs
        };
        assert_eq!(
            dest_line(&key, &dest, &with_thresholds),
            "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type ipip -x 100"
        );
        // Other methods never carry tunnel options.
        assert_eq!(
            dest_line_tunnel(&key, &dest, &DestAttrs::new(Method::Masq, 3), &gue),
            "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 3"
        );
    }

    #[test]
    fn ipip_tunnels_round_trip_and_others_are_refused() {
        let dump = "\
-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -i -w 3 --tun-type ipip
-a -t 10.0.0.1:80 -r 10.1.0.2:80 -i -w 3
";
        let state = parse(dump).unwrap();
        let s = &state.services[&svc("tcp://10.0.0.1:80")];
        assert!(
            s.dests
                .values()
                .all(|d| d.attrs == DestAttrs::new(Method::Tunnel, 3))
        );
        let text = format(&state);
        assert_eq!(
            text,
            "-A -t 10.0.0.1:80 -s wlc\n\
             -a -t 10.0.0.1:80 -r 10.1.0.1:80 -i -w 3 --tun-type ipip\n\
             -a -t 10.0.0.1:80 -r 10.1.0.2:80 -i -w 3 --tun-type ipip\n"
        );
        assert_eq!(parse(&text).unwrap(), state);
        let head = "-A -t 10.0.0.1:80\n";
        let cases = [
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type gue --tun-port 6080 --tun-nocsum",
                53,
                "only ipip",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type gre --tun-csum",
                53,
                "only ipip",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type vxlan",
                53,
                "unknown tunnel type",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-csum",
                42,
                "gue and gre",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 3 --tun-type ipip",
                42,
                "tunnel forwarding method",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -w 3 --tun-type ipip",
                39,
                "tunnel forwarding method",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i --tun-type ipip --tun-type ipip",
                53,
                "given twice",
            ),
        ];
        for (line, column, needle) in cases {
            let e = parse(&format!("{head}{line}\n")).unwrap_err();
            assert_eq!((e.line, e.column), (2, column), "{line}: {e}");
            assert!(e.message.contains(needle), "{line}: {e}");
        }
        let e = parse("-A -t 10.0.0.1:80 --tun-type ipip\n").unwrap_err();
        assert!(e.message.contains("dest (-a) option"), "{e}");
    }

    #[test]
    fn fast_number_and_address_writers_match_display() {
        for n in [0, 1, 9, 10, 99, 100, 65535, 1_000_000, u32::MAX] {
            let mut s = String::new();
            push_u32(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for a in [
            "0.0.0.0:0",
            "10.128.3.10:8080",
            "255.255.255.255:65535",
            "[2001:db8::1]:53",
            "[::ffff:10.0.0.1]:80",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let mut s = String::new();
            push_socket_addr(&mut s, &a);
            assert_eq!(s, a.to_string());
        }
    }

    #[test]
    fn thresholds_round_trip() {
        let s = parse("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 3 -x 100 -y 10\n")
            .unwrap();
        assert_eq!(
            format(&s),
            "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 3 -x 100 -y 10\n"
        );
    }
}
