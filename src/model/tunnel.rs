//! A tunnel dest's encapsulation as the kernel reports it, and how ipvsadm
//! prints it. The model's dests hold only ipip tunnels (the kernel's
//! default); this is for reading what a live kernel has.
//!
//! Invariant: plain data; no I/O.

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
