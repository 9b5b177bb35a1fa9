//! Service flag names as [`ServiceAttrs::flags`](super::ServiceAttrs) holds
//! them, which are ipvsadm's: `ops` (one-packet scheduling), the scheduler
//! flags (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`, otherwise
//! `flag-1`..`flag-3`) and `pe=NAME` (the persistence engine).
//!
//! Invariant: names only; the kernel's bits are `netlink::mapping`'s, the
//! `-o`/`-b`/`--pe` options `ipvsadm`'s.

/// Flag name of one-packet scheduling (`-o`, `--ops`).
pub const FLAG_OPS: &str = "ops";

/// Prefix of the persistence-engine flag (`--pe sip` is `pe=sip`).
pub const FLAG_PE_PREFIX: &str = "pe=";

/// The name ipvsadm gives scheduler flag `bit` (1, 2 or 3) of `scheduler`.
pub fn sched_flag_name(scheduler: &str, bit: u8) -> &'static str {
    match (scheduler, bit) {
        ("sh", 1) => "sh-fallback",
        ("sh", 2) => "sh-port",
        ("mh", 1) => "mh-fallback",
        ("mh", 2) => "mh-port",
        (_, 1) => "flag-1",
        (_, 2) => "flag-2",
        _ => "flag-3",
    }
}

/// Which scheduler flag bit (1, 2 or 3) a flag name sets, if it is one.
pub fn sched_flag_bit(name: &str) -> Option<u8> {
    match name {
        "sh-fallback" | "mh-fallback" | "flag-1" => Some(1),
        "sh-port" | "mh-port" | "flag-2" => Some(2),
        "flag-3" => Some(3),
        _ => None,
    }
}

/// Flags as ipvsadm names them for `scheduler`, sorted and deduplicated:
/// `flag-1` of `sh` is `sh-fallback`, and so on. Unknown names are kept.
pub fn canonical_flags(scheduler: &str, flags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = flags
        .iter()
        .map(|f| match sched_flag_bit(f) {
            Some(bit) => sched_flag_name(scheduler, bit).to_string(),
            None => f.clone(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
