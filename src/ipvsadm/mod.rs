//! The `ipvsadm -S -n` rule format: [`format()`] writes an
//! [`IpvsState`](crate::model::IpvsState) so that
//! `ipvsadm -R` loads it, and [`parse`] reads a dump (`ipvsadm -Sn >
//! live.txt` on a frontend) back into one, so a plan can be made against a
//! snapshot.
//!
//! The format is ipvsadm 1.31's `print_service_entry` with `FMT_RULE`:
//!
//! ```text
//! -A -t 10.0.0.1:80 -s wlc [-p TIMEOUT [-M MASK]] [--pe NAME] [-o] [-b FLAG,FLAG]
//! -a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m|-g|-i -w WEIGHT [--tun-type TYPE [--tun-port PORT] [--tun-nocsum|--tun-csum|--tun-remcsum]]
//! ```
//!
//! with `-u` for UDP, `--sctp-service` for SCTP, `-f MARK` (`-f MARK -6`)
//! for fwmark services, IPv6 addresses in brackets, `-M` a dotted netmask
//! for IPv4 and a prefix length for IPv6, and scheduler flags named as
//! ipvsadm names them (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`,
//! otherwise `flag-1`, `flag-2`, `flag-3`). ipvsadm's save leaves out dest
//! thresholds; [`format()`] writes them as `-x`/`-y`, which `ipvsadm -R`
//! accepts, and [`parse`] reads them.
//!
//! Tunnel dests: on kernels with `IPVS_DEST_ATTR_TUN_TYPE` (5.2 and later)
//! ipvsadm 1.31 prints every tunnel (`-i`) dest with its encapsulation
//! (`print_tunnel_rule`): ` --tun-type ipip`; ` --tun-type gue --tun-port
//! PORT --tun-nocsum|--tun-csum|--tun-remcsum`; ` --tun-type gre
//! --tun-nocsum|--tun-csum|--tun-remcsum` (a checksum option is always
//! printed for gue and gre; `--tun-nocsum` when no flag is set), and so
//! does [`format()`], before `-x`/`-y`, from the dest's
//! [`Tunnel`](crate::model::tunnel::Tunnel). [`parse`] reads the same
//! options with ipvsadm's rules (`--tun-port` compulsory for gue and
//! refused for the others, one checksum option for gue and gre only, none
//! at all without `-i`); no `--tun-type` is ipip, as on kernels before 5.2.
//!
//! Service flags live in
//! [`ServiceAttrs::flags`](crate::model::ServiceAttrs::flags) as names: `ops` (`-o`),
//! the scheduler flags above, and `pe=NAME` (`--pe NAME`).
//!
//! `write` writes, `parse` reads; the flag names and tunnel types are the
//! model's (`model::flags`, `model::tunnel`).
//!
//! Invariant: pure text in, text out; this module never runs ipvsadm and
//! never panics on any input.

mod parse;
mod write;

pub use parse::{DEFAULT_PERSISTENCE, ParseError, parse};
pub use write::{dest_line, format, method_flag, service_arg, service_line};

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::model::tunnel::*;
    use crate::model::{DestAttrs, Method, ServiceKey};

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
            dest_line(
                &key,
                &dest,
                &DestAttrs {
                    tunnel: gue,
                    ..attrs
                }
            ),
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
        let masq = DestAttrs {
            tunnel: gue,
            ..DestAttrs::new(Method::Masq, 3)
        };
        assert_eq!(
            dest_line(&key, &dest, &masq),
            "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 3"
        );
    }

    /// Every encapsulation ipvsadm 1.31 prints reads back as written
    /// (tests/vm: `ipvsadm -Sn` of dests added with these options).
    #[test]
    fn tunnels_round_trip_with_their_encapsulation() {
        let dump = "\
-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -i -w 3 --tun-type ipip
-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type gue --tun-port 6080 --tun-nocsum
-a -t 10.0.0.1:80 -r 10.1.0.4:80 -i -w 3 --tun-type gue --tun-port 6081 --tun-csum
-a -t 10.0.0.1:80 -r 10.1.0.5:80 -i -w 3 --tun-type gue --tun-port 6082 --tun-remcsum
-a -t 10.0.0.1:80 -r 10.1.0.6:80 -i -w 3 --tun-type gre --tun-nocsum
-a -t 10.0.0.1:80 -r 10.1.0.7:80 -i -w 3 --tun-type gre --tun-csum -x 10
";
        let state = parse(dump).unwrap();
        assert_eq!(format(&state), dump);
        let tunnels: Vec<Tunnel> = state.services[&svc("tcp://10.0.0.1:80")]
            .dests
            .values()
            .map(|d| d.attrs.tunnel)
            .collect();
        let t = |kind, port, flags| Tunnel { kind, port, flags };
        assert_eq!(
            tunnels,
            [
                Tunnel::IPIP,
                t(TUN_TYPE_GUE, 6080, 0),
                t(TUN_TYPE_GUE, 6081, TUN_FLAG_CSUM),
                t(TUN_TYPE_GUE, 6082, TUN_FLAG_REMCSUM),
                t(TUN_TYPE_GRE, 0, 0),
                t(TUN_TYPE_GRE, 0, TUN_FLAG_CSUM),
            ]
        );
        // No --tun-type (a kernel before 5.2) and no checksum option:
        // ipip, and nocsum.
        let plain = parse(
            "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -i -w 3\n\
             -a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type gre\n",
        )
        .unwrap();
        let s = &plain.services[&svc("tcp://10.0.0.1:80")];
        let attrs: Vec<DestAttrs> = s.dests.values().map(|d| d.attrs).collect();
        let tun = DestAttrs::new(Method::Tunnel, 3);
        let gre = DestAttrs {
            tunnel: t(TUN_TYPE_GRE, 0, 0),
            ..tun
        };
        assert_eq!(attrs, [tun, gre]);
    }

    /// ipvsadm's rules for tunnel options, each refused at its column.
    #[test]
    fn tunnel_options_follow_ipvsadm_rules() {
        let head = "-A -t 10.0.0.1:80\n";
        let cases = [
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type vxlan",
                53,
                "unknown tunnel type",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type gue --tun-csum",
                42,
                "--tun-type gue: needs --tun-port",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type gre --tun-port 1",
                57,
                "an option of gue tunnels, not gre",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-port 1",
                42,
                "an option of gue tunnels, not ipip",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-csum",
                42,
                "--tun-csum: an option of gue and gre tunnels, not ipip",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type gre --tun-csum --tun-nocsum",
                68,
                "one checksum option only (--tun-csum at column 57)",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 3 --tun-type gre --tun-remcsum",
                57,
                "--tun-remcsum: an option of gue tunnels, not gre",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i --tun-type gue --tun-port 0",
                63,
                "port must be 1..65535",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i --tun-type gue --tun-port x",
                63,
                "invalid port",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 3 --tun-type ipip",
                42,
                "tunnel forwarding method",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.1.0.3:80 -w 3 --tun-remcsum",
                39,
                "--tun-remcsum: tunnel options need the tunnel forwarding method",
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
        for opt in ["--tun-type ipip", "--tun-port 6080", "--tun-csum"] {
            let e = parse(&format!("-A -t 10.0.0.1:80 {opt}\n")).unwrap_err();
            assert!(e.message.contains("dest (-a) option"), "{e}");
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

    /// Every error the parser reports, with its whole text, line and column
    /// (in characters: non-ASCII words and whitespace, `\r\n` line ends).
    #[test]
    fn every_error_text_is_exact() {
        let cases = [
            ("-A -t 10.0.0.1:80 -s\n", "1:19: option -s needs a value"),
            (
                "-A -t 10.0.0.1:80 -p x\n",
                "1:22: -p: invalid persistence timeout \"x\"",
            ),
            ("-A -f x\n", "1:7: -f: invalid fwmark \"x\""),
            (
                "-A -f 4294967296\n",
                "1:7: -f: invalid fwmark \"4294967296\"",
            ),
            ("-A -f 0\n", "1:7: -f: fwmark must be above 0"),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -w x\n",
                "1:37: -w: invalid weight \"x\"",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -w 2147483648\n",
                "1:37: -w: weight 2147483648 out of range",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -w -1\n",
                "1:37: -w: invalid weight \"-1\"",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -x y\n",
                "1:37: -x: invalid upper threshold \"y\"",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -y 4294967296\n",
                "1:37: -y: invalid lower threshold \"4294967296\"",
            ),
            (
                "-A -t 10.0.0.1:80 -s wlc -s rr\n",
                "1:26: option -s given twice (first at column 19)",
            ),
            (
                "-A -t 10.0.0.1:80 -6 -6\n",
                "1:22: option -6 given twice (first at column 19)",
            ),
            (
                "-A -t 10.0.0.1:80 -o -o\n",
                "1:22: option -o given twice (first at column 19)",
            ),
            (
                "-A -t 10.0.0.1\n",
                "1:7: -t: invalid service address \"10.0.0.1\": expected ADDRESS:PORT, the port is missing",
            ),
            (
                "-A -t [2001:db8::1]\n",
                "1:7: -t: invalid service address \"[2001:db8::1]\": expected ADDRESS:PORT, the port is missing",
            ),
            (
                "-A -t 2001:db8::1\n",
                "1:7: -t: invalid service address \"2001:db8::1\": expected ADDRESS:PORT, the port is missing",
            ),
            (
                "-A -t www.example.com:http\n",
                "1:7: -t: invalid service address \"www.example.com:http\": expected a numeric ADDRESS:PORT (IPv6 in brackets; dump with ipvsadm -S -n)",
            ),
            (
                "-A -t 10.0.0.1:65536\n",
                "1:7: -t: invalid service address \"10.0.0.1:65536\": expected a numeric ADDRESS:PORT (IPv6 in brackets; dump with ipvsadm -S -n)",
            ),
            (
                "-A -t 10.0.0.256:80\n",
                "1:7: -t: invalid service address \"10.0.0.256:80\": expected a numeric ADDRESS:PORT (IPv6 in brackets; dump with ipvsadm -S -n)",
            ),
            (
                "-A -t 010.0.0.1:80\n",
                "1:7: -t: invalid service address \"010.0.0.1:80\": expected a numeric ADDRESS:PORT (IPv6 in brackets; dump with ipvsadm -S -n)",
            ),
            ("-A -t 10.0.0.1:080 -z\n", "1:20: unknown option \"-z\""),
            (
                "-A -u 10.0.0.1:+80\n",
                "1:7: -u: invalid service address \"10.0.0.1:+80\": expected a numeric ADDRESS:PORT (IPv6 in brackets; dump with ipvsadm -S -n)",
            ),
            (
                "-E -t 10.0.0.1:80\n",
                "1:1: unsupported command \"-E\": a dump holds only -A (service) and -a (dest) lines",
            ),
            (
                "--add-services -t 10.0.0.1:80\n",
                "1:1: unsupported command \"--add-services\": a dump holds only -A (service) and -a (dest) lines",
            ),
            (
                "TCP 10.0.0.1:80 wlc\n",
                "1:1: expected -A or -a at the start of the line, found \"TCP\"",
            ),
            ("-A -t 10.0.0.1:80 -z\n", "1:19: unknown option \"-z\""),
            (
                "-A -t 10.0.0.1:80 wlc\n",
                "1:19: unexpected argument \"wlc\"",
            ),
            (
                "-A -t 10.0.0.1:80 -f 3\n",
                "1:19: more than one service on the line",
            ),
            (
                "-A -t 10.0.0.1:80 -s WLC\n",
                "1:22: -s: invalid scheduler name \"WLC\"",
            ),
            (
                "-A -t 10.0.0.1:80 -s abcdefghijklmnop\n",
                "1:22: -s: invalid scheduler name \"abcdefghijklmnop\"",
            ),
            (
                "-A -t 10.0.0.1:80 -p 0\n",
                "1:22: -p: persistence timeout must be above 0",
            ),
            (
                "-A -t 10.0.0.1:80 -p 4294967296\n",
                "1:22: -p: invalid persistence timeout \"4294967296\"",
            ),
            (
                "-A -t 10.0.0.1:80 -p -s rr -z\n",
                "1:28: unknown option \"-z\"",
            ),
            (
                "-A -t 10.0.0.1:80 --pe SIP\n",
                "1:24: --pe: invalid persistence engine \"SIP\"",
            ),
            (
                "-A -t 10.0.0.1:80 --pe sip --pe sip\n",
                "1:28: option --pe given twice (first at column 19)",
            ),
            (
                "-A -t 10.0.0.1:80 -M 255.0.0.0\n",
                "1:19: -M without -p: the netmask is the persistence granularity",
            ),
            (
                "-A -t 10.0.0.1:80 -p 30 -M 255.0.255.0\n",
                "1:25: -M 255.0.255.0: not a contiguous netmask",
            ),
            (
                "-A -t 10.0.0.1:80 -p 30 -M 33\n",
                "1:25: -M 33: expected a netmask like 255.255.255.0",
            ),
            (
                "-A -t 10.0.0.1:80 -p 30 -M x\n",
                "1:25: -M x: expected a netmask like 255.255.255.0",
            ),
            (
                "-A -t [2001:db8::1]:80 -p 30 -M 0\n",
                "1:30: -M 0: expected a prefix length 1..128",
            ),
            (
                "-A -t [2001:db8::1]:80 -p 30 -M 129\n",
                "1:30: -M 129: expected a prefix length 1..128",
            ),
            (
                "-A -t [2001:db8::1]:80 -p 30 -M 255.255.255.0\n",
                "1:30: -M 255.255.255.0: expected a prefix length 1..128",
            ),
            (
                "-A -t 10.0.0.1:80 -b bogus\n",
                "1:19: -b: unknown scheduler flag \"bogus\", expected sh-fallback, sh-port, mh-fallback, mh-port or flag-1..flag-3",
            ),
            (
                "-A -t 10.0.0.1:80 -b sh-port,\n",
                "1:19: -b: unknown scheduler flag \"\", expected sh-fallback, sh-port, mh-fallback, mh-port or flag-1..flag-3",
            ),
            (
                "-A -t 10.0.0.1:80 -b sh-port -b sh-port\n",
                "1:30: option -b given twice (first at column 19)",
            ),
            (
                "-A -t 10.0.0.1:80 -w 3\n",
                "1:19: -w: a dest (-a) option on a service (-A) line",
            ),
            (
                "-A -t 10.0.0.1:80 -s rr -r 10.0.0.2:80 -x 1\n",
                "1:25: -r: a dest (-a) option on a service (-A) line",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -s rr\n",
                "1:34: -s: a service (-A) option on a dest (-a) line",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -o\n",
                "1:37: -o: a service (-A) option on a dest (-a) line",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -m\n",
                "1:37: option -m given twice (first at column 34)",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -r 10.0.0.3:80\n",
                "1:34: option -r given twice (first at column 19)",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i --tun-type vxlan\n",
                "1:48: --tun-type: unknown tunnel type \"vxlan\", expected ipip, gue or gre",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i --tun-type gue --tun-port 0\n",
                "1:63: --tun-port: port must be 1..65535",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i --tun-type gue --tun-port 65536\n",
                "1:63: --tun-port: invalid port \"65536\"",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i --tun-type gue --tun-port 1 --tun-port 1\n",
                "1:65: option --tun-port given twice (first at column 52)",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i --tun-type gre --tun-csum --tun-remcsum\n",
                "1:63: --tun-remcsum: one checksum option only (--tun-csum at column 52)",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m --tun-csum\n",
                "1:37: --tun-csum: tunnel options need the tunnel forwarding method (-i)",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i --tun-type gre --tun-port 1\n",
                "1:52: --tun-port: an option of gue tunnels, not gre",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i --tun-csum\n",
                "1:37: --tun-csum: an option of gue and gre tunnels, not ipip",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i --tun-type gre --tun-remcsum\n",
                "1:52: --tun-remcsum: an option of gue tunnels, not gre",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i --tun-type gue\n",
                "1:37: --tun-type gue: needs --tun-port",
            ),
            (
                "-A -t 10.0.0.1:80 -u 10.0.0.1:80\n",
                "1:19: more than one service on the line",
            ),
            (
                "-A -f 1 -t 10.0.0.1:80\n",
                "1:9: more than one service on the line",
            ),
            (
                "-A -s rr\n",
                "1:1: no service: expected -t, -u, --sctp-service or -f with its address",
            ),
            (
                "-A -t 10.0.0.1:80 -6\n",
                "1:19: -6 with an IPv4 service address",
            ),
            (
                "-a -t 10.0.0.1:80 -w 1\n",
                "1:1: dest line without -r ADDRESS:PORT",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2:80\n",
                "1:4: dest of service tcp://10.0.0.1:80, which no -A line before it defines",
            ),
            (
                "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.0.x:80\n",
                "2:19: -r: invalid dest address \"10.0.0.x:80\": expected a numeric ADDRESS:PORT (IPv6 in brackets)",
            ),
            (
                "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r [10.0.0.2:80]\n",
                "2:19: -r: invalid dest address \"[10.0.0.2:80]\": expected a numeric ADDRESS:PORT (IPv6 in brackets)",
            ),
            (
                "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.0.2:80\n-a -t 10.0.0.1:80 -r 10.0.0.2\n",
                "3:19: dest 10.0.0.2:80 of tcp://10.0.0.1:80 already defined on line 2",
            ),
            (
                "-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80\n-a -t 10.0.0.1:80 -r 10.0.0.3:80\n-a -t 10.0.0.1:80 -r 10.0.0.3:80\n",
                "4:19: dest 10.0.0.3:80 of tcp://10.0.0.1:80 already defined on line 3",
            ),
            (
                "-A -t 10.0.0.2:80\n-A -t 10.0.0.1:80\n-a -t 10.0.0.2:80 -r 10.0.0.3:80 -w 1\n-a -t 10.0.0.2:80 -r 10.0.0.3:80 -w 2\n",
                "4:19: dest 10.0.0.3:80 of tcp://10.0.0.2:80 already defined on line 3",
            ),
            (
                "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.0.5:80\n-a -t 10.0.0.1:80 -r 10.0.0.4:80\n-a -t 10.0.0.1:80 -r 10.0.0.5:80\n",
                "4:19: dest 10.0.0.5:80 of tcp://10.0.0.1:80 already defined on line 2",
            ),
            (
                "-A -t 10.0.0.2:80\n-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80\n",
                "3:4: service tcp://10.0.0.2:80 already defined on line 1",
            ),
            (
                "-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80\n-A -t 10.0.0.1:80\n",
                "3:4: service tcp://10.0.0.1:80 already defined on line 1",
            ),
            (
                "-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80 -s rr\n",
                "2:4: service tcp://10.0.0.1:80 already defined on line 1",
            ),
            (
                "-A -f 1\n-A -f 1 -6\n-A -f 1 -6\n",
                "3:4: service fwmark6://1 already defined on line 2",
            ),
            (
                "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r [2001:db8::1]:80 -m\n",
                "2:19: -r [2001:db8::1]:80: an IPv6 dest of an IPv4 service needs the tunnel forwarding method (-i), as the kernel requires",
            ),
            (
                "-A -u [2001:db8::1]:53\n-a -u [2001:db8::1]:53 -r 10.0.0.2 -m\n",
                "2:24: -r 10.0.0.2: an IPv4 dest of an IPv6 service needs the tunnel forwarding method (-i), as the kernel requires",
            ),
            ("-A -M é -t 10.0.0.1:80 -z\n", "1:24: unknown option \"-z\""),
            (
                "-A\u{a0}-t\u{2003}10.0.0.1:80\u{3000}-z\n",
                "1:19: unknown option \"-z\"",
            ),
            (
                "-A -t 10.0.0.1:80 --pe sipé\n",
                "1:24: --pe: invalid persistence engine \"sipé\"",
            ),
            (
                "-A -t 10.0.0.1:80 -s\u{b}rr\u{c}-z\n",
                "1:25: unknown option \"-z\"",
            ),
            ("-A -t 10.0.0.1:80 -é\n", "1:19: unknown option \"-é\""),
            ("-A -t 10.0.0.1:80 é\n", "1:19: unexpected argument \"é\""),
            (
                "-Aé -t 10.0.0.1:80\n",
                "1:1: unsupported command \"-Aé\": a dump holds only -A (service) and -a (dest) lines",
            ),
            (
                "é\n",
                "1:1: expected -A or -a at the start of the line, found \"é\"",
            ),
            (
                "-A -t 10.0.0.1:80\r\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -z\r\n\n",
                "2:34: unknown option \"-z\"",
            ),
            (
                "# comment\n\n   \n-A -t 10.0.0.1:80 -z\n",
                "4:19: unknown option \"-z\"",
            ),
            ("  -A -t 10.0.0.1:80 -z\n", "1:21: unknown option \"-z\""),
            (
                "-A -t 10.0.0.1:80 -s wlc\n-A -t 10.0.0.1:80 -p\n\n",
                "2:4: service tcp://10.0.0.1:80 already defined on line 1",
            ),
            (
                "-A -t 10.0.0.1:80 -p 30 -M 255.255.255.0 -p 3\n",
                "1:42: option -p given twice (first at column 19)",
            ),
            (
                "-A -t 10.0.0.1:80 -s rr -M\n",
                "1:25: option -M needs a value",
            ),
            (
                "-A -M é -t 10.0.0.1:80 -w 3\n",
                "1:24: -w: a dest (-a) option on a service (-A) line",
            ),
        ];
        for (input, want) in cases {
            let e = parse(input).unwrap_err();
            assert_eq!(e.to_string(), want, "{input:?}");
        }
    }

    /// Numbers and addresses in forms a dump never holds (leading zeros,
    /// a `+`) read as `str::parse` reads them.
    #[test]
    fn unusual_numbers_read_as_std_reads_them() {
        let odd = "-A -t 10.0.0.1:080 -s wlc -p +30\n-a -t 10.0.0.1:80 -r 10.0.0.2:0080 -m -w +5 -x 007 -y 0\n\
                   -A -f +7 -s rr\n-a -f 7 -r 10.0.0.3 -i -w 0 --tun-type gue --tun-port 06080 --tun-csum\n";
        let plain = "-A -t 10.0.0.1:80 -s wlc -p 30\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 5 -x 7\n\
                     -A -f 7 -s rr\n-a -f 7 -r 10.0.0.3:0 -i -w 0 --tun-type gue --tun-port 6080 --tun-csum\n";
        assert_eq!(parse(odd).unwrap(), parse(plain).unwrap());
    }
}
