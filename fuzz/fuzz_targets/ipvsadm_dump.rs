//! `ipvsadm -S -n` dumps (`plan --live FILE`): parsing never panics, and
//! what parses formats back to a dump that parses to the same state.
#![no_main]

use clusterf::fuzzing::check_ipvsadm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_ipvsadm(data);
});
