//! A config tree and an overlay tree from one input (records
//! `PATH\0CONTENT`, separated by `\0\0`; see docs/fuzzing.md): parsing,
//! compiling and the incremental renderer never panic; every diagnostic
//! names a file of its tree; a clean render formats and re-parses as the
//! same IPVS state.
#![no_main]

use clusterf::fuzzing::{check_render, tree_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (config, overlay) = tree_of(data);
    check_render(&config, &overlay);
});
