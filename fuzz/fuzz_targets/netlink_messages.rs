//! Kernel netlink datagrams: splitting into messages and parsing every
//! layer (netlink errors and acks, generic netlink control, IPVS) never
//! panics, and an IPVS message that parses emits bytes that parse to the
//! same message.
#![no_main]

use clusterf::fuzzing::check_netlink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_netlink(data);
});
