//! keepalived.conf (`clusterf import --from keepalived`): reading never
//! panics or hangs, and what reads imports to a repository that renders
//! back to its table (or lists why not).
#![no_main]

use clusterf::fuzzing::check_keepalived;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_keepalived(data);
});
