//! Fast text of the numbers and addresses in large tables (a dest line of
//! `ipvsadm -S`, a plan, `show`): the same text as `Display`, without
//! `core::fmt`.
//!
//! Invariant: appends to a `String`; no I/O.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Appends `n` in decimal (without `core::fmt`, which costs several
/// times more on tables of 100k dests).
pub fn push_u32(out: &mut String, mut n: u32) {
    if n < 10 {
        out.push(char::from(b'0' + n as u8));
        return;
    }
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits pushed one by one: no UTF-8 check of the slice.
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// Appends `addr` as its `Display` writes it (`10.0.0.1:80`, `[::1]:80`).
pub fn push_socket_addr(out: &mut String, addr: &SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            let [a, b, c, d] = a.ip().octets();
            for (i, octet) in [a, b, c, d].into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u32(out, u32::from(octet));
            }
            out.push(':');
            push_u32(out, u32::from(addr.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{addr}");
        }
    }
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
