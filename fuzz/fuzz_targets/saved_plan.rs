//! Saved plans (`clusterf apply plan.json`): reading never panics.
#![no_main]

use clusterf::fuzzing::check_saved_plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_saved_plan(data);
});
