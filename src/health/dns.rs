//! The DNS probe's two packets: a query for one name (type A, class IN,
//! recursion desired) and the check of its answer. Written here because a
//! liveness query is a few dozen bytes of RFC 1035 and a DNS library would
//! add a dependency tree for it. Pure.

/// DNS response codes that mean the server is not serving (RFC 1035 4.1.1):
/// server failure, not implemented, refused. Others (no error, name error)
/// mean a working server.
const DEAD_RCODES: [(u8, &str); 3] = [(2, "SERVFAIL"), (4, "NOTIMP"), (5, "REFUSED")];

/// The query packet for `name` (already validated by
/// [`super::spec::dns_name_problems`]).
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // standard query, recursion desired
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&[0, 1, 0, 1]); // type A, class IN
    out
}

/// Whether `packet` answers query `id` from a serving server: `Ok` with the
/// response code's name, or what is wrong, in a few words.
pub fn check_answer(id: u16, packet: &[u8]) -> Result<&'static str, String> {
    let [a, b, flags, rcode_byte, ..] = *packet else {
        return Err(format!("dns answer of {} bytes", packet.len()));
    };
    if packet.len() < 12 {
        return Err(format!("dns answer of {} bytes", packet.len()));
    }
    if u16::from_be_bytes([a, b]) != id {
        return Err("dns answer to another query".to_string());
    }
    if flags & 0x80 == 0 {
        return Err("dns packet is not an answer".to_string());
    }
    let rcode = rcode_byte & 0x0f;
    if let Some((_, name)) = DEAD_RCODES.iter().find(|(c, _)| *c == rcode) {
        return Err(format!("dns {name}"));
    }
    Ok(match rcode {
        0 => "NOERROR",
        3 => "NXDOMAIN",
        _ => "answered",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_rfc_1035_bytes() {
        let q = query(0xbeef, "ab.c.");
        assert_eq!(
            q,
            [
                0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // header
                2, b'a', b'b', 1, b'c', 0, // name
                0, 1, 0, 1, // A, IN
            ]
        );
    }

    #[test]
    fn answers_are_judged_by_id_direction_and_response_code() {
        let mut answer = query(7, "x");
        answer[2] |= 0x80;
        assert_eq!(check_answer(7, &answer), Ok("NOERROR"));
        answer[3] = 0x83;
        assert_eq!(check_answer(7, &answer), Ok("NXDOMAIN"));
        answer[3] = 0x85;
        assert_eq!(check_answer(7, &answer), Err("dns REFUSED".into()));
        assert!(check_answer(8, &answer).is_err());
        assert!(
            check_answer(7, &query(7, "x")).is_err(),
            "a query is not an answer"
        );
        for len in 0..12 {
            assert!(check_answer(7, &answer[..len]).is_err());
        }
    }
}
