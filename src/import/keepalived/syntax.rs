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
        if let Some(def) = line.trim_start().strip_prefix('$')
            && let Some((name, value)) = def.split_once('=')
            && is_var_name(name.trim())
        {
            let value = self.substitute(file, n, value.trim());
            self.vars.retain(|(v, _)| v != name.trim());
            self.vars.push((name.trim().to_string(), value));
            return;
        }
        let line = if line.contains('$') {
            self.substitute(file, n, line)
        } else {
            line.to_string()
        };
        let before = self.tokens.len();
        self.words(file, n, &line);
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

    /// The line without its `@ID ` prefix when it applies, `None` when it
    /// is another config id's.
    fn condition<'l>(&mut self, file: usize, n: usize, raw: &'l str) -> Option<&'l str> {
        let t = raw.trim_start();
        let Some(cond) = t.strip_prefix('@') else {
            return Some(raw);
        };
        let (id, rest) = cond.split_once(char::is_whitespace).unwrap_or((cond, ""));
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

    /// `$NAME` and `${NAME}` replaced by their definitions.
    fn substitute(&mut self, file: usize, n: usize, line: &str) -> String {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
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
                    line.len() - rest.len() + i + 1,
                    "a line longer than 64 KiB after $ substitution",
                ),
                None => {
                    let col = line.len() - rest.len() + i + 1;
                    self.error(
                        file,
                        n,
                        col,
                        format!("${name} is not defined (define it with ${name}=VALUE before)"),
                    );
                }
            }
            rest = &after[skip..];
        }
        out.push_str(rest);
        out
    }

    /// Splits one line into words, `{`, `}`; stops at a comment.
    fn words(&mut self, file: usize, n: usize, line: &str) {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let pos = Pos {
                line: n as u64,
                column: (i + 1) as u64,
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
