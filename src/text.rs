//! Text: wording shared by the messages of every layer.
//!
//! Invariant: pure; no I/O, no knowledge of what the words mean.

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

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "problem"), "1 problem");
        assert_eq!(plural(0, "problem"), "0 problems");
        assert_eq!(plural(2, "owned dest"), "2 owned dests");
        assert_eq!(plural(1, "batch"), "1 batch");
        assert_eq!(plural(3, "batch"), "3 batches");
        assert_eq!(plural(2, "change"), "2 changes");
    }
}
