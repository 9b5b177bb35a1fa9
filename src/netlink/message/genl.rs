//! Generic netlink: the `genlmsghdr` after the netlink header, and the
//! controller's family resolution (`CTRL_CMD_GETFAMILY` asks for a family
//! by name, `CTRL_CMD_NEWFAMILY` answers with its id).
//!
//! Invariant: pure; knows nothing of IPVS beyond being asked for a name.

use super::attr::*;

/// Generic netlink header length (`struct genlmsghdr`).
pub const GENL_HDRLEN: usize = 4;

/// The generic netlink controller.
pub const GENL_ID_CTRL: u16 = 0x10;
pub const CTRL_CMD_NEWFAMILY: u8 = 1;
pub const CTRL_CMD_GETFAMILY: u8 = 3;
pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;
pub const CTRL_ATTR_VERSION: u16 = 3;

/// `struct genlmsghdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenlHeader {
    pub cmd: u8,
    pub version: u8,
}

/// Splits a generic netlink payload into its header and attribute bytes.
pub fn parse_genl(p: &[u8]) -> Result<(GenlHeader, &[u8]), DecodeError> {
    if p.len() < GENL_HDRLEN {
        return err(format!("generic netlink payload of {} bytes", p.len()));
    }
    Ok((
        GenlHeader {
            cmd: p[0],
            version: p[1],
        },
        &p[GENL_HDRLEN..],
    ))
}

/// Appends a generic netlink header.
pub(super) fn emit_genl(out: &mut Vec<u8>, cmd: u8, version: u8) {
    out.extend_from_slice(&[cmd, version, 0, 0]);
}

/// A controller message: `CTRL_CMD_GETFAMILY` request or `NEWFAMILY` reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyMsg {
    pub cmd: u8,
    /// The generic netlink header's version (1 in requests, 2 in replies).
    pub genl_version: u8,
    pub id: Option<u16>,
    pub name: Option<String>,
    pub version: Option<u32>,
    /// Operations, multicast groups and the rest, as they came.
    pub other: Vec<RawAttr>,
}

impl FamilyMsg {
    /// The request that resolves `name`.
    pub fn get(name: &str) -> FamilyMsg {
        FamilyMsg {
            cmd: CTRL_CMD_GETFAMILY,
            genl_version: 1,
            name: Some(name.to_string()),
            ..FamilyMsg::default()
        }
    }

    pub fn parse(p: &[u8]) -> Result<FamilyMsg, DecodeError> {
        let (h, attrs) = parse_genl(p)?;
        let mut m = FamilyMsg {
            cmd: h.cmd,
            genl_version: h.version,
            ..FamilyMsg::default()
        };
        for a in attr_refs(attrs) {
            let a = a?;
            let what = family_label(a.id());
            match a.id() {
                CTRL_ATTR_FAMILY_ID => set(&mut m.id, &a, what, get_u16)?,
                CTRL_ATTR_FAMILY_NAME => set(&mut m.name, &a, what, get_string)?,
                CTRL_ATTR_VERSION => set(&mut m.version, &a, what, get_u32)?,
                _ => m.other.push(a.owned()),
            }
        }
        Ok(m)
    }

    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // The kernel's order (ctrl_fill_info): name, id, version.
        emit_genl(&mut out, self.cmd, self.genl_version);
        if let Some(name) = &self.name {
            emit_string(&mut out, CTRL_ATTR_FAMILY_NAME, name);
        }
        if let Some(id) = self.id {
            emit_attr(&mut out, CTRL_ATTR_FAMILY_ID, &id.to_ne_bytes());
        }
        if let Some(v) = self.version {
            emit_attr(&mut out, CTRL_ATTR_VERSION, &v.to_ne_bytes());
        }
        emit_others(&mut out, &self.other);
        out
    }
}

/// The name of a controller attribute, as parse errors say it.
fn family_label(id: u16) -> &'static str {
    match id {
        CTRL_ATTR_FAMILY_ID => "family id",
        CTRL_ATTR_FAMILY_NAME => "family name",
        CTRL_ATTR_VERSION => "family version",
        _ => "family attribute",
    }
}
