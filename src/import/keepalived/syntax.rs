//! keepalived.conf's syntax: lines of words, `{ }` blocks, comments from
//! `#` or `!` to the end of the line, double-quoted strings, `include`,
//! `@ID` / `@^ID` conditional lines and `$NAME=value` definitions, read
//! into a tree of statements with file:line:col on every word.
//!
//! Written by hand: no maintained crate reads keepalived's format (it is
//! keepalived's own, not a general one), and the part the import needs is
//! small. Every problem is collected; nothing panics and nothing loops
//! (includes nest at most [`MAX_INCLUDE_DEPTH`] deep, at most [`MAX_FILES`]
//! files in all, and a file's words are bounded by its size).
//!
//! Must not: read files itself (includes come through the caller's
//! function).

use crate::diag::{Diagnostics, Pos};

use super::super::Skipped;

/// How deep includes nest (keepalived's own limit is in the same range).
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// How many files one configuration may include in all.
pub const MAX_FILES: usize = 1000;

/// One word, where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub file: usize,
    pub pos: Pos,
}

/// `keyword args... [{ statements }]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    pub words: Vec<Word>,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", |w| w.text.as_str())
    }
}

/// A file the `include` function hands back: its name and contents.
pub type Included = Vec<(String, String)>;

/// What the reader needs besides the text: the config id for `@` lines and
/// the function that resolves an `include` (pattern, including file) to
/// files.
pub struct Input<'a> {
    pub config_id: Option<&'a str>,
    pub include: &'a mut dyn FnMut(&str, &str) -> Result<Included, String>,
}

#[derive(Debug)]
enum Token {
    Word(Word),
    Open(Word),
    Close(Word),
    Newline,
}

/// The parsed statements, the file names (by `Word::file`) and what was
/// not read (conditional lines of other config ids).
pub struct Parsed {
    pub stmts: Vec<Stmt>,
    pub files: Vec<String>,
}

struct Lexer<'a, 'i> {
    input: &'a mut Input<'i>,
    files: Vec<String>,
    tokens: Vec<Token>,
    vars: Vec<(String, String)>,
    diags: Diagnostics,
    skipped: Vec<Skipped>,
}

/// Reads `text` (named `name`) and its includes into statements, and
/// every problem found on the way (what could be read is read: a caller
/// can look for more problems in it).
pub fn parse(
    name: &str,
    text: &str,
    input: &mut Input<'_>,
    skipped: &mut Vec<Skipped>,
) -> (Parsed, Diagnostics) {
    let mut lx = Lexer {
        input,
        files: Vec::new(),
        tokens: Vec::new(),
        vars: Vec::new(),
        diags: Diagnostics(Vec::new()),
        skipped: Vec::new(),
    };
    lx.file(name, text, 0);
    let files = std::mem::take(&mut lx.files);
    let mut diags = lx.diags;
    skipped.append(&mut lx.skipped);
    let mut tokens = lx.tokens.into_iter().peekable();
    let stmts = block(&mut tokens, None, 0, &files, &mut diags);
    (Parsed { stmts, files }, diags)
}

impl Lexer<'_, '_> {
    fn error(&mut self, file: usize, line: usize, column: usize, message: impl Into<String>) {
        let pos = Pos {
            line: line as u64,
            column: column as u64,
        };
        self.diags
            .error(self.files[file].clone(), Some(pos), message);
    }

    fn file(&mut self, name: &str, text: &str, depth: usize) {
        let file = self.files.len();
        self.files.push(name.to_string());
        for (i, raw) in text.lines().enumerate() {
            self.line(file, i + 1, raw, depth);
        }
    }

    fn line(&mut self, file: usize, n: usize, raw: &str, depth: usize) {
        let Some(line) = self.condition(file, n, raw) else {
            return;
        };
        // Columns count from the start of the raw line.
        let col = |part: &str| {
            raw[..part.as_ptr() as usize - raw.as_ptr() as usize]
                .chars()
                .count()
        };
        if let Some(def) = line.trim_start().strip_prefix('$')
            && let Some((name, value)) = def.split_once('=')
            && is_var_name(name.trim())
        {
            let value = self.substitute(file, n, value.trim(), col(value.trim()));
            self.vars.retain(|(v, _)| v != name.trim());
            self.vars.push((name.trim().to_string(), value));
            return;
        }
        let base = col(line);
        let line = if line.contains('$') {
            self.substitute(file, n, line, base)
        } else {
            line.to_string()
        };
        let before = self.tokens.len();
        self.words(file, n, &line, base);
        let first = match self.tokens.get(before) {
            Some(Token::Word(w)) => w.text.clone(),
            _ => String::new(),
        };
        if matches!(
            first.as_str(),
            "include" | "includer" | "includem" | "includew" | "includeb" | "includef"
        ) {
            let words: Vec<Token> = self.tokens.drain(before..).collect();
            self.include(file, n, words, depth);
            return;
        }
        if first.starts_with('~') {
            self.tokens.truncate(before);
            self.skipped.push(Skipped {
                at: format!("{}:{n}", self.files[file]),
                what: format!("{first}: keepalived's sequence lines are not read"),
            });
            return;
        }
        self.tokens.push(Token::Newline);
    }

    /// The line without its `@ID ` prefix (a part of `raw`) when it
    /// applies, `None` when it is another config id's.
    fn condition<'l>(&mut self, file: usize, n: usize, raw: &'l str) -> Option<&'l str> {
        let t = raw.trim_start();
        let Some(cond) = t.strip_prefix('@') else {
            return Some(raw);
        };
        // `rest` stays a part of `raw` (its columns are counted from it).
        let (id, rest) = cond
            .split_once(char::is_whitespace)
            .unwrap_or((cond, &cond[cond.len()..]));
        let (negated, id) = match id.strip_prefix('^') {
            Some(id) => (true, id),
            None => (false, id),
        };
        let matches = self.input.config_id == Some(id);
        if matches != negated {
            return Some(rest);
        }
        if !negated && self.input.config_id.is_none() {
            self.skipped.push(Skipped {
                at: format!("{}:{n}", self.files[file]),
                what: format!("a line for config id {id:?} (--config-id {id} reads it)"),
            });
        }
        None
    }

    /// `$NAME` and `${NAME}` replaced by their definitions; `base` is the
    /// column `line` starts at, for errors.
    fn substitute(&mut self, file: usize, n: usize, line: &str, base: usize) -> String {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let col = base + line[..line.len() - rest.len() + i].chars().count() + 1;
            let after = &rest[i + 1..];
            let (name, skip) = match after.strip_prefix('{') {
                Some(b) => match b.find('}') {
                    Some(j) => (&b[..j], j + 2),
                    None => ("", 0),
                },
                None => {
                    let len = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    (&after[..len], len)
                }
            };
            if name.is_empty() {
                out.push('$');
                rest = after;
                continue;
            }
            match self.vars.iter().find(|(v, _)| v == name) {
                // Bounded: a value's own `$`s were replaced when defined.
                Some((_, value)) if out.len() + value.len() <= 1 << 16 => out.push_str(value),
                Some(_) => self.error(
                    file,
                    n,
                    col,
                    "a line longer than 64 KiB after $ substitution",
                ),
                None => self.error(
                    file,
                    n,
                    col,
                    format!("${name} is not defined (define it with ${name}=VALUE before)"),
                ),
            }
            rest = &after[skip..];
        }
        out.push_str(rest);
        out
    }

    /// Splits one line into words, `{`, `}`; stops at a comment.
    fn words(&mut self, file: usize, n: usize, line: &str, base: usize) {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let pos = Pos {
                line: n as u64,
                column: (base + i + 1) as u64,
            };
            let word = |text: String| Word { text, file, pos };
            match c {
                '#' | '!' => break,
                c if c.is_whitespace() => i += 1,
                '{' | '}' => {
                    i += 1;
                    let w = word(c.to_string());
                    self.tokens.push(if c == '{' {
                        Token::Open(w)
                    } else {
                        Token::Close(w)
                    });
                }
                '"' => {
                    i += 1;
                    let mut text = String::new();
                    let mut closed = false;
                    while i < chars.len() {
                        let c = chars[i];
                        i += 1;
                        match c {
                            '"' => {
                                closed = true;
                                break;
                            }
                            '\\' if i < chars.len() => {
                                text.push(chars[i]);
                                i += 1;
                            }
                            c => text.push(c),
                        }
                    }
                    if !closed {
                        self.error(
                            file,
                            n,
                            pos.column as usize,
                            "a quoted string is not closed on its line",
                        );
                    }
                    self.tokens.push(Token::Word(word(text)));
                }
                _ => {
                    let start = i;
                    while i < chars.len()
                        && !(chars[i].is_whitespace()
                            || matches!(chars[i], '{' | '}' | '"' | '#' | '!'))
                    {
                        i += 1;
                    }
                    self.tokens
                        .push(Token::Word(word(chars[start..i].iter().collect())));
                }
            }
        }
    }

    fn include(&mut self, file: usize, n: usize, words: Vec<Token>, depth: usize) {
        let (pattern, col) = match words.get(1) {
            Some(Token::Word(w)) => (w.text.clone(), w.pos.column as usize),
            _ => {
                self.error(file, n, 1, "include needs a file name");
                return;
            }
        };
        if self.files.len() >= MAX_FILES {
            self.error(
                file,
                n,
                col,
                format!("more than {MAX_FILES} files included"),
            );
            return;
        }
        if depth >= MAX_INCLUDE_DEPTH {
            self.error(
                file,
                n,
                col,
                format!("includes nest more than {MAX_INCLUDE_DEPTH} deep (an include loop?)"),
            );
            return;
        }
        let from = self.files[file].clone();
        match (self.input.include)(&pattern, &from) {
            Ok(found) => {
                for (name, text) in found {
                    self.file(&name, &text, depth + 1);
                }
            }
            Err(e) => self.error(file, n, col, format!("include {pattern}: {e}")),
        }
    }
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// How deep blocks nest (keepalived's deepest is four).
const MAX_DEPTH: usize = 32;

type Tokens = std::iter::Peekable<std::vec::IntoIter<Token>>;

/// Statements until the `}` that closes `open` (or the end, at the top).
fn block(
    tokens: &mut Tokens,
    open: Option<&Word>,
    depth: usize,
    files: &[String],
    diags: &mut Diagnostics,
) -> Vec<Stmt> {
    if let Some(o) = open.filter(|_| depth > MAX_DEPTH) {
        diags.error(
            files[o.file].clone(),
            Some(o.pos),
            format!("blocks nest more than {MAX_DEPTH} deep"),
        );
        skip_block(tokens);
        return Vec::new();
    }
    let mut out: Vec<Stmt> = Vec::new();
    loop {
        match tokens.next() {
            None => {
                if let Some(o) = open {
                    diags.error(files[o.file].clone(), Some(o.pos), "this { is never closed");
                }
                return out;
            }
            Some(Token::Newline) => {}
            Some(Token::Close(c)) => {
                if open.is_some() {
                    return out;
                }
                diags.error(
                    files[c.file].clone(),
                    Some(c.pos),
                    "a } without a { before it",
                );
            }
            Some(Token::Open(o)) => {
                // `{` on a line of its own opens the previous statement's block.
                let inner = block(tokens, Some(&o), depth + 1, files, diags);
                match out.last_mut() {
                    Some(s) if s.block.is_none() => s.block = Some(inner),
                    _ => diags.error(
                        files[o.file].clone(),
                        Some(o.pos),
                        "a { without a keyword before it",
                    ),
                }
            }
            Some(Token::Word(w)) => {
                let mut words = vec![w];
                while let Some(Token::Word(_)) = tokens.peek() {
                    if let Some(Token::Word(w)) = tokens.next() {
                        words.push(w);
                    }
                }
                let block = match tokens.peek() {
                    Some(Token::Open(_)) => match tokens.next() {
                        Some(Token::Open(o)) => {
                            Some(block(tokens, Some(&o), depth + 1, files, diags))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                out.push(Stmt { words, block });
            }
        }
    }
}

/// Skips to the `}` that closes the block just opened, without recursion.
fn skip_block(tokens: &mut Tokens) {
    let mut open = 1usize;
    for t in tokens.by_ref() {
        match t {
            Token::Open(_) => open += 1,
            Token::Close(_) => open -= 1,
            _ => {}
        }
        if open == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, config_id: Option<&str>) -> (Vec<Stmt>, Vec<String>, Vec<Skipped>) {
        let mut include = |pattern: &str, from: &str| -> Result<Included, String> {
            match pattern {
                "loop.conf" => Ok(vec![("loop.conf".into(), "include loop.conf\n".into())]),
                "rs.conf" => Ok(vec![(
                    "rs.conf".into(),
                    format!("real_server 10.0.0.9 80 # from {from}\n"),
                )]),
                _ => Err("no file matches".into()),
            }
        };
        let mut input = Input {
            config_id,
            include: &mut include,
        };
        let mut skipped = Vec::new();
        let (parsed, diags) = parse("k.conf", text, &mut input, &mut skipped);
        let errors = diags.iter().map(ToString::to_string).collect();
        (parsed.stmts, errors, skipped)
    }

    /// The statements as `keyword args [{ ... }]` text.
    fn show(stmts: &[Stmt]) -> String {
        stmts
            .iter()
            .map(|s| {
                let words: Vec<&str> = s.words.iter().map(|w| w.text.as_str()).collect();
                match &s.block {
                    Some(b) => format!("{} {{{}}}", words.join(" "), show(b)),
                    None => words.join(" "),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn braces_comments_quotes_and_one_line_blocks_read_as_keepalived_reads_them() {
        let text = "virtual_server 10.0.0.1 80 { # a comment\n  lb_algo rr ! another\n  real_server 10.1.0.1 80 { weight 2 }\n  HTTP_GET\n  {\n    url { path \"/a b#c\" }\n  }\n}\n";
        let (stmts, errors, _) = read(text, None);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(
            show(&stmts),
            "virtual_server 10.0.0.1 80 {lb_algo rr; real_server 10.1.0.1 80 {weight 2}; HTTP_GET {url {path /a b#c}}}"
        );
        let path = &stmts[0].block.as_ref().unwrap()[2].block.as_ref().unwrap()[0]
            .block
            .as_ref()
            .unwrap()[0]
            .words[1];
        assert_eq!((path.pos.line, path.pos.column), (6, 16));
    }

    #[test]
    fn conditional_lines_follow_the_config_id_and_variables_are_substituted() {
        let text = "$PORT=8080\n$ADDR=10.0.0.${LAST}\n@lb1 a ${PORT}\n@^lb1 b $PORT\n";
        let (stmts, errors, skipped) = read(text, Some("lb1"));
        assert_eq!(show(&stmts), "a 8080");
        assert_eq!(
            errors,
            ["k.conf:2:14: $LAST is not defined (define it with $LAST=VALUE before)"]
        );
        assert!(skipped.is_empty());
        let (stmts, _, skipped) = read("@lb1 a\n@^lb1 b\n", None);
        assert_eq!(show(&stmts), "b");
        assert_eq!(
            skipped[0].to_string(),
            "k.conf:1: not imported: a line for config id \"lb1\" (--config-id lb1 reads it)"
        );
    }

    #[test]
    fn includes_are_read_in_place_and_a_loop_is_an_error() {
        let (stmts, errors, _) = read("a {\n include rs.conf\n}\n", None);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(show(&stmts), "a {real_server 10.0.0.9 80}");
        let (_, errors, _) = read("include loop.conf\ninclude nothing.conf\n", None);
        assert_eq!(
            errors,
            [
                "loop.conf:1:9: includes nest more than 8 deep (an include loop?)",
                "k.conf:2:9: include nothing.conf: no file matches",
            ]
        );
    }

    #[test]
    fn unbalanced_braces_and_deep_nesting_are_errors_not_crashes() {
        let (_, errors, _) = read("a {\n}\n}\nb {\n", None);
        assert_eq!(
            errors,
            [
                "k.conf:3:1: a } without a { before it",
                "k.conf:4:3: this { is never closed"
            ]
        );
        let deep = "x {".repeat(10_000) + &"}".repeat(10_000);
        let (_, errors, _) = read(&deep, None);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("blocks nest more than 32 deep"),
            "{errors:?}"
        );
    }
}
