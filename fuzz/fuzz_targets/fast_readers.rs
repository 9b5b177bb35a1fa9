//! Differential: whatever the fast readers (a flat JSON reader, a YAML
//! subset reader) take, the full parsers (serde_json, serde-saphyr) read the
//! same way, without a diagnostic. The input is one file; its first byte
//! picks the reader.
#![no_main]

use clusterf::fuzzing::check_fast_readers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_fast_readers(data);
});
