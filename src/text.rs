//! Text: wording shared by the messages of every layer.
//!
//! Invariant: pure; no I/O, no knowledge of what the words mean.

use std::fmt;

/// `1 dest`, `2 dests`, `0 batches`: the count and the noun, plural unless
/// the count is one. Regular English plurals only: `-es` after s, x, z, ch
/// and sh, `-s` after anything else.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    let es = ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|e| noun.ends_with(e));
    format!("{n} {noun}{}", if es { "es" } else { "s" })
}

/// How many characters of a value a message echoes ([`quote`], [`cut`]).
pub const ECHO_CHARS: usize = 64;

/// How many characters of a whole message (a library's, or one quoting
/// several values) are kept ([`cut_message`]).
pub const MESSAGE_CHARS: usize = 1024;

/// A value quoted in a message, as `{:?}` writes it (control characters
/// escaped), cut after [`ECHO_CHARS`] characters: `"aaaa…" (5242880
/// bytes)`. Every message that echoes input goes through this or [`cut`],
/// so that a 5 MB value never becomes 5 MB of stderr.
pub fn quote(value: &str) -> Echo<'_> {
    Echo {
        value,
        limit: ECHO_CHARS,
        quoted: true,
    }
}

/// A value echoed as is (a number as written, a URL), cut like [`quote`].
pub fn cut(value: &str) -> Echo<'_> {
    Echo {
        value,
        limit: ECHO_CHARS,
        quoted: false,
    }
}

/// A whole message of more than [`MESSAGE_CHARS`] characters, cut in the
/// middle (its start says what, its end often what was expected): the
/// last guard for text that quotes input we did not word (a library's
/// error, an error line).
pub fn cut_message(message: &str) -> String {
    let chars = message.chars().count();
    if chars <= MESSAGE_CHARS {
        return message.to_string();
    }
    let (head, tail) = (MESSAGE_CHARS * 3 / 4, MESSAGE_CHARS / 4);
    let byte = |n: usize| message.char_indices().nth(n).map_or(message.len(), |c| c.0);
    let (end, start) = (byte(head), byte(chars - tail));
    format!(
        "{} …({} bytes left out)… {}",
        &message[..end],
        start - end,
        &message[start..]
    )
}

/// A value as a message echoes it: see [`quote`] and [`cut`].
#[derive(Clone, Copy, Debug)]
pub struct Echo<'a> {
    value: &'a str,
    limit: usize,
    quoted: bool,
}

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = match self.value.char_indices().nth(self.limit) {
            Some((i, _)) => &self.value[..i],
            None => self.value,
        };
        let whole = kept.len() == self.value.len();
        if self.quoted {
            let debug = format!("{kept:?}");
            match whole {
                true => f.write_str(&debug)?,
                // The closing quote after the ellipsis: `"aaa…"`.
                false => write!(f, "{}…\"", &debug[..debug.len() - 1])?,
            }
        } else {
            f.write_str(kept)?;
            if !whole {
                f.write_str("…")?;
            }
        }
        if !whole {
            write!(f, " ({} bytes)", self.value.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "problem"), "1 problem");
        assert_eq!(plural(0, "problem"), "0 problems");
        assert_eq!(plural(2, "owned dest"), "2 owned dests");
        assert_eq!(plural(1, "batch"), "1 batch");
        assert_eq!(plural(3, "batch"), "3 batches");
        assert_eq!(plural(2, "change"), "2 changes");
    }

    #[test]
    fn short_values_are_echoed_whole() {
        assert_eq!(quote("rr").to_string(), "\"rr\"");
        assert_eq!(quote("a\"b\n").to_string(), "\"a\\\"b\\n\"");
        assert_eq!(cut("80").to_string(), "80");
        let exact = "x".repeat(ECHO_CHARS);
        assert_eq!(quote(&exact).to_string(), format!("\"{exact}\""));
    }

    #[test]
    fn long_values_are_cut_and_say_how_long_they_were() {
        let huge = "s".repeat(5 << 20);
        let q = quote(&huge).to_string();
        assert_eq!(
            q,
            format!("\"{}…\" (5242880 bytes)", "s".repeat(ECHO_CHARS))
        );
        assert_eq!(
            cut(&huge).to_string(),
            format!("{}… (5242880 bytes)", "s".repeat(ECHO_CHARS))
        );
        let message = format!("unknown field {huge}, expected one of a, b");
        let cut = cut_message(&message);
        assert!(cut.len() < MESSAGE_CHARS + 40, "{}", cut.len());
        assert!(cut.starts_with("unknown field sss"), "{cut}");
        assert!(cut.ends_with("sss, expected one of a, b"), "{cut}");
        assert_eq!(cut_message("short"), "short");
        // Cut on a character boundary, never inside one.
        let wide = "é".repeat(100);
        assert!(
            quote(&wide)
                .to_string()
                .starts_with(&format!("\"{}…", "é".repeat(64)))
        );
    }
}
