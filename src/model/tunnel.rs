//! A tunnel dest's encapsulation (`IPVS_DEST_ATTR_TUN_TYPE`, `_TUN_PORT`,
//! `_TUN_FLAGS`): ipip (the kernel's default, and every other method's),
//! gue with its UDP port, gre; gue and gre with a checksum option. Held as
//! the kernel holds it, so that a value set by another tool reads back
//! exactly; named where a name exists.
//!
//! Invariant: plain data; no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `IP_VS_CONN_F_TUNNEL_TYPE_IPIP`, `_GUE`, `_GRE`.
pub const TUN_TYPE_IPIP: u8 = 0;
pub const TUN_TYPE_GUE: u8 = 1;
pub const TUN_TYPE_GRE: u8 = 2;
/// `IP_VS_TUNNEL_ENCAP_FLAG_CSUM`, `IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM` (no
/// flag is `--tun-nocsum`).
pub const TUN_FLAG_CSUM: u16 = 1;
pub const TUN_FLAG_REMCSUM: u16 = 2;

/// The tunnel types by name, in the kernel's order.
pub const TUNNEL_TYPES: [&str; 3] = ["ipip", "gue", "gre"];
/// The checksum options by name: no flag, `_CSUM`, `_REMCSUM`.
pub const CHECKSUMS: [&str; 3] = ["none", "csum", "remcsum"];

/// A tunnel dest's encapsulation as the kernel holds it (all 0 on kernels
/// before 5.2, which is ipip). Other methods' dests hold [`Tunnel::IPIP`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tunnel {
    pub kind: u8,
    /// GUE's UDP port (0 for the other types).
    pub port: u16,
    pub flags: u16,
}

impl Tunnel {
    /// The kernel's default.
    pub const IPIP: Tunnel = Tunnel {
        kind: TUN_TYPE_IPIP,
        port: 0,
        flags: 0,
    };

    /// The type's name, or `None` for a type the kernel does not define.
    pub fn type_name(&self) -> Option<&'static str> {
        TUNNEL_TYPES.get(usize::from(self.kind)).copied()
    }

    /// The checksum option's name, or `None` for other flag bits.
    pub fn checksum_name(&self) -> Option<&'static str> {
        CHECKSUMS.get(usize::from(self.flags)).copied()
    }

    /// Whether the type has a UDP port (gue), and whether it takes a
    /// checksum option (gue, gre), as ipvsadm's table of tunnel options.
    pub fn has_port(&self) -> bool {
        self.kind == TUN_TYPE_GUE || self.port != 0
    }

    pub fn has_checksum(&self) -> bool {
        matches!(self.kind, TUN_TYPE_GUE | TUN_TYPE_GRE) || self.flags != 0
    }

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

/// `ipip`, `gue port 6080`, `gue port 6080 checksum csum`, `gre checksum
/// remcsum` (no checksum word for none); numbers where no name exists
/// (`type 7`, `checksum 3`).
impl fmt::Display for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.type_name() {
            Some(name) => f.write_str(name)?,
            None => write!(f, "type {}", self.kind)?,
        }
        if self.has_port() {
            write!(f, " port {}", self.port)?;
        }
        match self.checksum_name() {
            Some("none") => Ok(()),
            Some(name) => write!(f, " checksum {name}"),
            None => write!(f, " checksum {}", self.flags),
        }
    }
}

/// A name, or the number where no name exists.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Named {
    Name(String),
    Number(u16),
}

/// The serialized form, the config's `tunnel:` block: `{"type": "gue",
/// "port": 6080, "checksum": "none"}`; `port` for gue, `checksum` for gue
/// and gre (or where the kernel holds one anyway).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TunnelDoc {
    #[serde(rename = "type")]
    kind: Named,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<Named>,
}

fn named(name: Option<&'static str>, n: u16) -> Named {
    name.map_or(Named::Number(n), |s| Named::Name(s.to_string()))
}

impl Serialize for Tunnel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TunnelDoc {
            kind: named(self.type_name(), u16::from(self.kind)),
            port: self.has_port().then_some(self.port),
            checksum: self
                .has_checksum()
                .then(|| named(self.checksum_name(), self.flags)),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tunnel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let doc = TunnelDoc::deserialize(d)?;
        let lookup = |v: Named, names: &[&str], what: &str| -> Result<u16, D::Error> {
            match v {
                Named::Number(n) => Ok(n),
                Named::Name(s) => names
                    .iter()
                    .position(|n| *n == s)
                    .map(|i| i as u16)
                    .ok_or_else(|| {
                        D::Error::custom(format!(
                            "unknown tunnel {what} {s:?}, expected one of {}",
                            names.join(", ")
                        ))
                    }),
            }
        };
        let kind = lookup(doc.kind, &TUNNEL_TYPES, "type")?;
        let kind = u8::try_from(kind).map_err(|_| D::Error::custom("tunnel type above 255"))?;
        let flags = match doc.checksum {
            Some(c) => lookup(c, &CHECKSUMS, "checksum")?,
            None => 0,
        };
        Ok(Tunnel {
            kind,
            port: doc.port.unwrap_or(0),
            flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnels_read_as_the_config_block_and_back() {
        let cases = [
            (Tunnel::IPIP, r#"{"type":"ipip"}"#, "ipip"),
            (
                Tunnel {
                    kind: TUN_TYPE_GUE,
                    port: 6080,
                    flags: 0,
                },
                r#"{"type":"gue","port":6080,"checksum":"none"}"#,
                "gue port 6080",
            ),
            (
                Tunnel {
                    kind: TUN_TYPE_GRE,
                    port: 0,
                    flags: TUN_FLAG_REMCSUM,
                },
                r#"{"type":"gre","checksum":"remcsum"}"#,
                "gre checksum remcsum",
            ),
            // What no name covers, as numbers.
            (
                Tunnel {
                    kind: 7,
                    port: 0,
                    flags: 3,
                },
                r#"{"type":7,"checksum":3}"#,
                "type 7 checksum 3",
            ),
        ];
        for (t, json, text) in cases {
            assert_eq!(serde_json::to_string(&t).unwrap(), json);
            assert_eq!(serde_json::from_str::<Tunnel>(json).unwrap(), t);
            assert_eq!(t.to_string(), text);
        }
        let e = serde_json::from_str::<Tunnel>(r#"{"type":"vxlan"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown tunnel type"), "{e}");
        assert!(serde_json::from_str::<Tunnel>(r#"{"type":"gue","prot":1}"#).is_err());
    }
}
