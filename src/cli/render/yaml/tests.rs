//! The hand-written YAML against serde-saphyr's, on generated states.

use super::*;
use crate::model::{DestAttrs, Family, Method, Protocol, Provenance, ServiceAttrs, SourcePath};

/// Strings of every kind: plain ones, and ones serde-saphyr quotes, folds
/// or writes as YAML 1.1 words.
const STRINGS: [&str; 26] = [
    "wlc",
    "rr",
    "sh-port",
    "web_1",
    "services/web.yaml#backends.b1",
    "backends/web/b2",
    "pe=sip",
    "Route.A",
    "=",
    "a-",
    "x#y",
    "yes",
    "On",
    "NULL",
    "nan",
    "1web",
    "a b",
    "a: b",
    "a:b",
    "",
    "-x",
    "it's",
    "q\"uote",
    "line\nbreak",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmn",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz01234",
];

/// A small deterministic generator (xorshift).
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    /// Mostly plain strings, sometimes any.
    fn string(&mut self) -> String {
        let n = if self.next(8) == 0 { STRINGS.len() } else { 8 };
        STRINGS[self.next(n)].to_string()
    }

    fn strings(&mut self) -> Vec<String> {
        (0..self.next(3)).map(|_| self.string()).collect()
    }

    fn key(&mut self, i: u32) -> ServiceKey {
        match self.next(4) {
            0 => ServiceKey::Fwmark {
                family: [Family::Ipv4, Family::Ipv6][self.next(2)],
                mark: i,
            },
            1 => ServiceKey::Addr {
                protocol: Protocol::Udp,
                addr: SocketAddr::new(format!("2001:db8::{i:x}").parse().unwrap(), 53),
            },
            _ => ServiceKey::Addr {
                protocol: [Protocol::Tcp, Protocol::Sctp][self.next(2)],
                addr: SocketAddr::new([10, 0, (i >> 8) as u8, i as u8].into(), 80),
            },
        }
    }

    fn dest(&mut self) -> Dest {
        let mut attrs = DestAttrs::new(Method::ALL[self.next(3)], self.next(300) as u32);
        if self.next(4) == 0 {
            attrs.upper_threshold = self.next(1000) as u32;
            attrs.lower_threshold = self.next(10) as u32;
        }
        if attrs.method == Method::Tunnel {
            // ipip, gue, gre and a type no name covers, each checksum.
            attrs.tunnel = crate::model::tunnel::Tunnel {
                kind: [0, 1, 2, 9][self.next(4)] as u8,
                port: [0, 6080][self.next(2)],
                flags: self.next(4) as u16,
            };
        }
        let provenance = (0..self.next(3))
            .map(|_| Provenance {
                backend: self.string().into(),
                // Held whole, or as a prefix the backend's name follows.
                source: match self.next(2) {
                    0 => self.string().into(),
                    _ => SourcePath::Keyed(format!("{}/", self.string()).into()),
                },
                weight: self.next(100) as u32,
                route: (self.next(3) == 0).then(|| self.string().into()),
                fallback: self.next(4) == 0,
            })
            .collect();
        Dest { attrs, provenance }
    }

    fn state(&mut self) -> IpvsState {
        let mut state = IpvsState::default();
        for i in 0..self.next(5) as u32 {
            let mut attrs = ServiceAttrs::with_scheduler(self.string());
            if self.next(3) == 0 {
                attrs.persistence = Some(self.next(1000) as u32);
                attrs.netmask = (self.next(2) == 0).then(|| self.next(129) as u8);
            }
            attrs.flags = self.strings();
            let mut service = Service::new(attrs);
            service.names = self.strings();
            for j in 0..self.next(4) {
                let addr = SocketAddr::new([10, 1, i as u8, j as u8].into(), 8080);
                service.dests.insert(addr, self.dest());
                if self.next(6) == 0 {
                    service.health.insert(addr, self.string().into());
                }
            }
            state.services.insert(self.key(i), service);
        }
        state
    }
}

fn hand_written(state: &IpvsState) -> String {
    let mut out = Vec::new();
    write(&mut out, state).unwrap();
    String::from_utf8(out).unwrap()
}

fn serde_saphyr(state: &IpvsState) -> String {
    let mut text = serde_saphyr::to_string(state).unwrap();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[test]
fn the_hand_written_yaml_is_byte_for_byte_what_serde_saphyr_writes() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let (mut written, mut refused) = (0, 0);
    for _ in 0..2000 {
        let state = g.state();
        if all_plain(&state) {
            assert_eq!(hand_written(&state), serde_saphyr(&state), "{state:#?}");
            written += 1;
        } else {
            refused += 1;
        }
    }
    assert!(written > 500 && refused > 100, "{written} {refused}");
}

#[test]
fn a_health_note_is_written_after_the_dests_as_serde_saphyr_writes_it() {
    let key = ServiceKey::addr(Protocol::Tcp, [10, 0, 0, 1].into(), 80);
    let mut service = Service::new(ServiceAttrs::with_scheduler("wlc"));
    for (i, weight) in [(1, 0), (2, 10)] {
        let addr = SocketAddr::new([10, 1, 0, i].into(), 8080);
        let dest = Dest {
            attrs: DestAttrs::new(Method::Masq, weight),
            provenance: Box::default(),
        };
        service.dests.insert(addr, dest);
    }
    let drained = SocketAddr::new([10, 1, 0, 1].into(), 8080);
    service.health.insert(drained, "http_503".into());
    let state = IpvsState {
        services: [(key, service)].into(),
    };
    assert!(all_plain(&state));
    let text = hand_written(&state);
    assert_eq!(text, serde_saphyr(&state));
    assert!(
        text.ends_with("weight: 10\n    health:\n      \"10.1.0.1:8080\": http_503\n"),
        "{text}"
    );
}

#[test]
fn the_yaml_written_in_pieces_on_two_threads_is_the_yaml_written_in_one() {
    let mut g = Gen(0x2545_f491_4f6c_dd1d);
    let mut states: Vec<IpvsState> = (0..300).map(|_| g.state()).collect();
    states.retain(all_plain);
    assert!(states.len() > 50, "{}", states.len());
    for state in &states {
        let mut whole = Vec::new();
        write_in_groups(&mut whole, state, usize::MAX).unwrap();
        for group in [1, 2, 3] {
            let mut pieces = Vec::new();
            write_in_groups(&mut pieces, state, group).unwrap();
            assert_eq!(pieces, whole, "{group} {state:#?}");
        }
        assert_eq!(String::from_utf8(whole).unwrap(), serde_saphyr(state));
    }
}

#[test]
fn a_string_is_plain_only_where_serde_saphyr_writes_it_as_is() {
    for s in STRINGS {
        let value = serde_saphyr::to_string(&BTreeMap::from([("k", s)])).unwrap();
        let item = serde_saphyr::to_string(&[s]).unwrap();
        let as_is = value == format!("k: {s}\n") && item == format!("- {s}\n");
        assert!(!plain(s) || as_is, "{s:?}: {value:?} {item:?}");
    }
    assert!(plain("services/web.yaml#backends.b1") && !plain("yes") && !plain("1web"));
}
