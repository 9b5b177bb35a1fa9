//! Netlink, generic netlink and IPVS messages as typed values that parse from
//! and emit to bytes, one file per protocol layer (as rust-netlink splits
//! its crates):
//!
//! - `attr`: attributes (TLVs) and the [`DecodeError`] of every layer.
//! - `nlmsg`: the netlink header, a datagram's messages, acks and errors.
//! - `genl`: the generic netlink header and family resolution.
//! - `ipvs`: the IPVS commands and attribute sets.
//! - `rtnl`: route netlink links and addresses (the VIP interface).
//! - `nft`: nf_tables tables, chains, rules and expressions (DNAT).
//!
//! Each attribute set is one type that parses and emits; unknown attributes
//! are kept (in `other`) and emitted after the known ones; malformed input is
//! a [`DecodeError`], never a panic. Everything is re-exported here, so
//! callers write `message::ServiceMsg`.
//!
//! Invariant: pure bytes in, values out (and back). No sockets, no model
//! types, no policy: what a message means for clusterf is `mapping`'s job.

mod attr;
mod genl;
mod ipvs;
mod nft;
mod nlmsg;
mod rtnl;

pub use attr::*;
pub use genl::*;
pub use ipvs::*;
pub use nft::*;
pub use nlmsg::*;
pub use rtnl::*;

/// The bytes of a netlink fixture, `tests/fixtures/netlink/NAME.hex` (hex
/// digits, `#` comments).
#[cfg(test)]
macro_rules! fixture {
    ($name:literal) => {
        $crate::netlink::message::tests::hex(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/netlink/",
            $name,
            ".hex"
        )))
    };
}
#[cfg(test)]
pub(crate) use fixture;

#[cfg(test)]
mod nft_tests;
#[cfg(test)]
mod rtnl_tests;
#[cfg(test)]
pub(crate) mod tests;
