//! Fast text of the numbers and addresses in large tables (a dest line of
//! `ipvsadm -S`, a plan, `show`): the same text as `Display`, without
//! `core::fmt`.
//!
//! Invariant: appends to a `String`; no I/O.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Appends `n` in decimal (without `core::fmt`, which costs several
/// times more on tables of 100k dests).
pub fn push_u32(out: &mut String, n: u32) {
    let mut buf = [0u8; 10];
    let start = put_u32(&mut buf, 10, n);
    push_ascii(out, &buf[start..]);
}

/// Appends `addr` as its `Display` writes it (`10.0.0.1:80`, `[::1]:80`).
pub fn push_socket_addr(out: &mut String, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            // Built backwards in one buffer: `255.255.255.255:65535`.
            let mut buf = [0u8; 21];
            let mut at = put_u32(&mut buf, 21, u32::from(a.port()));
            for (i, octet) in a.ip().octets().into_iter().rev().enumerate() {
                at -= 1;
                buf[at] = if i == 0 { b':' } else { b'.' };
                at = put_u32(&mut buf, at, u32::from(octet));
            }
            push_ascii(out, &buf[at..]);
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{addr}");
        }
    }
}

/// Writes `n` in decimal into `buf`, ending at `end`; where it starts.
fn put_u32(buf: &mut [u8], mut end: usize, mut n: u32) -> usize {
    loop {
        end -= 1;
        buf[end] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return end;
        }
    }
}

/// Appends ASCII text (digits and punctuation: the check cannot fail).
fn push_ascii(out: &mut String, text: &[u8]) {
    out.push_str(std::str::from_utf8(text).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_number_and_address_writers_match_display() {
        for n in [0, 1, 9, 10, 99, 100, 65535, 1_000_000, u32::MAX] {
            let mut s = String::new();
            push_u32(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for a in [
            "0.0.0.0:0",
            "10.128.3.10:8080",
            "255.255.255.255:65535",
            "[2001:db8::1]:53",
            "[::ffff:10.0.0.1]:80",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let mut s = String::new();
            push_socket_addr(&mut s, &a);
            assert_eq!(s, a.to_string());
        }
    }
}
