//! An `ipvsadm -S -n` dump as a [`Table`]: what the dump parser
//! (`crate::ipvsadm::parse`) reads, GUE and GRE tunnels included.
//!
//! Must not: do I/O.

use super::Table;
use crate::ipvsadm::ParseError;

/// The table of `dump` (`name` names it where it lists a line, kept for
/// the callers); an error names the line and column of the first line the
/// dump parser refuses.
pub fn table(_name: &str, dump: &str) -> Result<Table, ParseError> {
    Ok(Table {
        state: crate::ipvsadm::parse(dump)?,
        checks: Default::default(),
        skipped: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::repo;

    fn file<'a>(r: &'a crate::import::Repo, path: &str) -> &'a str {
        &r.files
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("no {path} in {:?}", r.files))
            .1
    }

    #[test]
    fn a_dump_becomes_one_file_per_frontend_that_renders_back_to_it() {
        let dump = "\
-A -t 10.0.0.1:53 -s rr
-a -t 10.0.0.1:53 -r 10.1.0.1:53 -m -w 5
-a -t 10.0.0.1:53 -r 10.1.0.2:5353 -m -w 7 -x 100 -y 50
-A -u 10.0.0.1:53 -s rr -o
-a -u 10.0.0.1:53 -r 10.1.0.1:53 -m -w 5
-a -u 10.0.0.1:53 -r 10.1.0.2:5354 -m -w 7 -x 100 -y 50
-A -t [2001:db8::1]:443 -s sh -p 300 -M 64 -b sh-port
-a -t [2001:db8::1]:443 -r [2001:db8::10]:443 -g -w 1
-A -f 42 -s wlc
-a -f 42 -r 10.1.0.3:0 -i -w 2 --tun-type ipip
-a -f 42 -r 10.1.0.4:8080 -m -w 3
-a -f 42 -r 10.1.0.5:0 -i -w 2 --tun-type gue --tun-port 6080 --tun-remcsum
-a -f 42 -r 10.1.0.6:0 -i -w 2 --tun-type gre --tun-nocsum
";
        let t = table("dump", dump).unwrap();
        let r = repo(&t);
        assert_eq!(r.skipped, vec![], "{r:?}");
        let paths: Vec<&str> = r.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "clusterf.yaml",
                "services/10.0.0.1-53.yaml",
                "services/2001:db8::1-443.yaml",
                "services/fwmark-42.yaml",
                "routes/10.1.0.3.yaml",
                "routes/10.1.0.5.yaml",
                "routes/10.1.0.6.yaml",
                "routes/2001:db8::10.yaml",
            ]
        );
        assert_eq!(
            file(&r, "services/10.0.0.1-53.yaml"),
            "# Written by clusterf import.\nfrontend:\n  ipv4: 10.0.0.1\n  tcp: 53\n  udp: 53\n\
             scheduler: rr\nops: true\nbackends:\n\
             \x20 \"10.1.0.1\": {ipv4: 10.1.0.1, tcp: 53, udp: 53, weight: 5}\n\
             \x20 \"10.1.0.2\": {ipv4: 10.1.0.2, tcp: 5353, udp: 5354, weight: 7, upper_threshold: 100, lower_threshold: 50}\n"
        );
        assert_eq!(
            file(&r, "routes/10.1.0.3.yaml"),
            "prefix: 10.1.0.3/32\nmethod: tunnel\n"
        );
        assert_eq!(
            file(&r, "routes/10.1.0.5.yaml"),
            "prefix: 10.1.0.5/32\nmethod: tunnel\ntunnel: {type: gue, port: 6080, checksum: remcsum}\n"
        );
        assert_eq!(
            file(&r, "routes/10.1.0.6.yaml"),
            "prefix: 10.1.0.6/32\nmethod: tunnel\ntunnel: {type: gre}\n"
        );
    }

    #[test]
    fn what_the_config_cannot_say_is_listed_and_the_rest_imported() {
        let dump = "\
-A -t 10.0.0.1:80 -s rr -o
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1
-a -t 10.0.0.1:80 -r 10.1.0.9:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
-A -t 10.0.0.4:80 -s rr
-a -t 10.0.0.4:80 -r 10.1.0.9:80 -i -w 1 --tun-type gre --tun-csum
-A --sctp-service 10.0.0.1:90 -s rr
-A -t 10.0.0.2:80 -s rr
-a -t 10.0.0.2:80 -r 10.1.0.1:80 -g -w 1
-a -t 10.0.0.2:80 -r 10.1.0.2:81 -g -w 1
-A -t 10.0.0.3:80 -s rr
-a -t 10.0.0.3:80 -r 10.1.0.1:80 -m -w 1
";
        let r = repo(&table("dump", dump).unwrap());
        let got: Vec<String> = r.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "sctp://10.0.0.1:90: not imported: SCTP services: the config has tcp and udp only",
                "tcp://10.0.0.1:80: not imported: service flag ops (the config cannot give it to this service)",
                "tcp://10.0.0.2:80: not imported: dest 10.1.0.2:81: droute to port 81: droute keeps the service port 80",
                "tcp://10.0.0.2:80: not imported: dest 10.1.0.1:80: droute where 10.1.0.1 is masq elsewhere (the config gives one method per address)",
                "tcp://10.0.0.4:80: not imported: dest 10.1.0.9:80: tunnel gre checksum csum where 10.1.0.9 is tunnel gue port 6080 elsewhere (the config gives one method per address)",
            ]
        );
        assert_eq!(r.files.len(), 6, "{:?}", r.files);
    }

    #[test]
    fn a_service_the_config_refuses_is_listed_and_the_rest_written() {
        let dump = "-A -t 10.0.0.1:80 -s bogus\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\n-A -t 10.0.0.2:80 -s rr\n";
        let r = repo(&table("dump", dump).unwrap());
        let got: Vec<String> = r.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("tcp://10.0.0.1:80: not imported: the service, which the config refuses: scheduler: unknown scheduler \"bogus\""),
            "{got:?}"
        );
        let paths: Vec<&str> = r.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["clusterf.yaml", "services/10.0.0.2-80.yaml"]);
    }

    #[test]
    fn a_dump_the_parser_refuses_is_an_error_with_its_line() {
        let e = table(
            "dump",
            "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r nowhere -m\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
    }
}
