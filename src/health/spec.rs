//! A health check as a service declares it: the probe, its port and its
//! timing. Plain data with the defaults and a validation that lists
//! every problem; reading it from the config repository is `config`'s job.

use std::fmt;
use std::time::Duration;

/// What one check does against a dest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    /// A TCP connect within the timeout.
    Tcp,
    /// An HTTP/1.1 GET whose status is expected.
    Http(HttpProbe),
    /// The same over TLS (the certificate is not verified: the dest is
    /// addressed by IP, and liveness is the question, not identity).
    Https(HttpProbe),
    /// A DNS query over UDP answered without a server failure.
    Dns { query: String },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpProbe {
    pub path: String,
    /// The Host header; the dest's address when absent.
    pub host: Option<String>,
    pub expect: Expect,
}

impl Default for HttpProbe {
    fn default() -> Self {
        HttpProbe {
            path: "/".to_string(),
            host: None,
            expect: Expect::default(),
        }
    }
}

/// HTTP status codes that count as healthy: inclusive ranges.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expect(Vec<(u16, u16)>);

impl Default for Expect {
    /// 200-399, as the issue and most load balancers default.
    fn default() -> Self {
        Expect(vec![(200, 399)])
    }
}

impl Expect {
    /// Reads `200`, `200-399` or a comma-separated list of both.
    pub fn parse(text: &str) -> Result<Expect, String> {
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (status(lo.trim())?, status(hi.trim())?),
                None => (status(part)?, status(part)?),
            };
            if lo > hi {
                return Err(format!("status range {part} is backwards"));
            }
            ranges.push((lo, hi));
        }
        Ok(Expect(ranges))
    }

    pub fn matches(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

fn status(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) => Ok(code),
        _ => Err(format!(
            "{} is not an HTTP status code (100 to 599)",
            crate::text::quote(text)
        )),
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// What a failing dest gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OnFailure {
    /// Weight 0: no new connections, existing ones keep flowing.
    #[default]
    Drain,
    /// Left out of the desired state (the graceful drain then removes it).
    Remove,
}

/// One service's check: everything that decides a dest's health. Two
/// services with equal specs share the checks of a dest they share.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckSpec {
    pub probe: Probe,
    /// The port probed; the dest's port when absent.
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Successes in a row that make an unhealthy dest healthy again.
    pub rise: u32,
    /// Failures in a row that make a dest unhealthy.
    pub fall: u32,
}

/// Bounds that keep a hostile or mistyped config from flooding dests with
/// checks or holding state that never resolves.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
pub const MAX_RISE_FALL: u32 = 100;
/// DNS names are at most 253 characters (RFC 1035 section 2.3.4).
pub const MAX_QUERY_LEN: usize = 253;
pub const MAX_PATH_LEN: usize = 2048;

impl CheckSpec {
    /// The defaults: every 5 s, 2 s timeout, rise 2, fall 3.
    pub fn new(probe: Probe) -> CheckSpec {
        CheckSpec {
            probe,
            port: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
        }
    }

    /// Every problem of the spec, in the config's words (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.interval) {
            out.push(format!(
                "interval {:?} is outside {:?} to {:?}",
                self.interval, MIN_INTERVAL, MAX_INTERVAL
            ));
        }
        if self.timeout.is_zero() || self.timeout >= self.interval {
            out.push(format!(
                "timeout {:?} must be above 0 and less than the interval {:?}",
                self.timeout, self.interval
            ));
        }
        for (name, n) in [("rise", self.rise), ("fall", self.fall)] {
            if !(1..=MAX_RISE_FALL).contains(&n) {
                out.push(format!("{name} {n} is outside 1 to {MAX_RISE_FALL}"));
            }
        }
        if self.port == Some(0) {
            out.push("port 0 cannot be checked".to_string());
        }
        out.extend(self.probe.problems());
        out
    }
}

impl Probe {
    fn problems(&self) -> Vec<String> {
        match self {
            Probe::Tcp => Vec::new(),
            Probe::Http(http) | Probe::Https(http) => http.problems(),
            Probe::Dns { query } => dns_name_problems(query),
        }
    }

    /// `tcp`, `http`, `https` or `dns`: the word in the config and in
    /// reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Tcp => "tcp",
            Probe::Http(_) => "http",
            Probe::Https(_) => "https",
            Probe::Dns { .. } => "dns",
        }
    }
}

impl HttpProbe {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.path.starts_with('/') || self.path.len() > MAX_PATH_LEN {
            out.push(format!(
                "path {} must start with / and be at most {MAX_PATH_LEN} bytes",
                crate::text::quote(&self.path)
            ));
        }
        if self.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            out.push("path must not hold spaces or control characters".to_string());
        }
        if let Some(host) = &self.host
            && (host.is_empty() || host.bytes().any(|b| b <= b' ' || b == 0x7f))
        {
            out.push(format!(
                "host {} must be a non-empty header value without spaces",
                crate::text::quote(host)
            ));
        }
        out
    }
}

/// Problems of a DNS name to query: labels of 1 to 63 letters, digits,
/// hyphens or underscores, at most 253 characters, an optional final dot.
pub fn dns_name_problems(name: &str) -> Vec<String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let ok_label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if bare.is_empty() || bare.len() > MAX_QUERY_LEN || !bare.split('.').all(ok_label) {
        vec![format!(
            "query {} is not a DNS name (labels of 1 to 63 letters, digits, - or _, at most {MAX_QUERY_LEN} characters)",
            crate::text::quote(name)
        )]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_reads_codes_and_ranges_and_prints_them_back() {
        let e = Expect::parse("200-299, 301,404").unwrap();
        assert!(e.matches(250) && e.matches(301) && e.matches(404));
        assert!(!e.matches(300) && !e.matches(500));
        assert_eq!(e.to_string(), "200-299,301,404");
        assert!(Expect::default().matches(399) && !Expect::default().matches(400));
    }

    #[test]
    fn expect_refuses_what_is_not_a_status_or_a_backwards_range() {
        for bad in ["", "99", "600", "abc", "300-200", "200-", "2xx"] {
            assert!(Expect::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_defaults_are_valid_and_every_problem_is_listed_at_once() {
        assert_eq!(CheckSpec::new(Probe::Tcp).problems(), Vec::<String>::new());
        let spec = CheckSpec {
            probe: Probe::Http(HttpProbe {
                path: "health".into(),
                host: Some(String::new()),
                expect: Expect::default(),
            }),
            port: Some(0),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            rise: 0,
            fall: 101,
        };
        let problems = spec.problems();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[0].starts_with("timeout 2s must be above 0"));
    }

    #[test]
    fn dns_queries_must_be_names() {
        assert!(dns_name_problems("health.example.com.").is_empty());
        assert!(dns_name_problems("_srv.example").is_empty());
        for bad in ["", ".", "a..b", "a b", &"x".repeat(64), &"a.".repeat(128)] {
            assert_eq!(dns_name_problems(bad).len(), 1, "{bad:?} was accepted");
        }
    }
}
