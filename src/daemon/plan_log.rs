//! The applied plan's text into the log as it is written
//! (`plan::output::write_text`), a chunk of whole lines an event, so that a
//! first pass's plan (a line per dest) is never held whole; keeps the head
//! that the status page shows and counts the lines.
//!
//! Must not: decide what the plan says or when it is logged (`pass` does).

use std::io;

use tracing::info;

use super::status_page::snapshot::{PLAN_LINES, PlanText};

/// Bytes of whole lines gathered before an event is logged.
const CHUNK: usize = 64 * 1024;

/// An `io::Write` that logs the plan's text: the first event `applying`,
/// as a plan that fits in one chunk always was, the next ones `applying
/// (continued)`.
pub struct PlanLog {
    changes: usize,
    buf: Vec<u8>,
    events: usize,
    head: Vec<u8>,
    /// Lines in `head`, and in all.
    head_lines: usize,
    lines: usize,
}

/// What the status page keeps of a logged plan: its first [`PLAN_LINES`]
/// lines (with their newlines) and how many lines it had in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanHead {
    pub head: String,
    pub lines: usize,
}

impl PlanHead {
    /// Lines of the plan past the head.
    pub fn beyond_head(&self) -> usize {
        self.lines - self.head.lines().count()
    }

    /// What the status page shows of the plan, as of the whole text.
    pub fn plan_text(&self, at_ms: u64) -> PlanText {
        let mut text = PlanText::of(&self.head, at_ms);
        text.omitted_lines += self.beyond_head();
        text
    }
}

impl PlanLog {
    pub fn new(changes: usize) -> PlanLog {
        PlanLog {
            changes,
            buf: Vec::with_capacity(CHUNK + CHUNK / 4),
            events: 0,
            head: Vec::new(),
            head_lines: 0,
            lines: 0,
        }
    }

    /// Logs what is left (trailing whitespace trimmed, as the whole text
    /// was); the head and the count of lines.
    pub fn finish(mut self) -> PlanHead {
        let rest = std::mem::take(&mut self.buf);
        self.count(&rest);
        let end = rest.trim_ascii_end().len();
        if end > 0 || self.events == 0 {
            self.log(&rest[..end]);
        }
        PlanHead {
            head: String::from_utf8_lossy(&self.head).into_owned(),
            lines: self.lines,
        }
    }

    /// One event.
    fn log(&mut self, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        let changes = self.changes;
        if self.events == 0 {
            info!(changes, "applying\n{text}");
        } else {
            info!(changes, "applying (continued)\n{text}");
        }
        self.events += 1;
    }

    /// Counts the lines of `bytes` (as `str::lines` does: a last line
    /// without its newline too) and keeps them while the head is short.
    fn count(&mut self, bytes: &[u8]) {
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            self.lines += 1;
            if self.head_lines < PLAN_LINES {
                self.head.extend_from_slice(line);
                self.head_lines += 1;
            }
        }
    }
}

impl io::Write for PlanLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK
            && let Some(last) = self.buf.iter().rposition(|b| *b == b'\n')
        {
            // One buffer for the whole plan: no allocation a chunk.
            let whole = std::mem::take(&mut self.buf);
            self.count(&whole[..=last]);
            self.log(&whole[..last]);
            self.buf = whole;
            self.buf.drain(..=last);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What `write` logs, as the text subscriber writes it (no time, no
    /// level), one event per element, less the ` changes=7` field after
    /// the message.
    fn events(write: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<String>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(b).into_owned());
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_level(false)
            .finish();
        tracing::subscriber::with_default(subscriber, write);
        let events = buf.0.lock().unwrap().clone();
        events
            .iter()
            .map(|e| e.strip_suffix(" changes=7\n").expect(e).to_string())
            .collect()
    }

    /// A plan-like text of `n` dest lines and a summary.
    fn text(n: usize) -> String {
        let mut t = String::from("  service TCP 10.100.0.1:80\n");
        for i in 0..n {
            t.push_str(&format!(
                "+ dest 10.0.{}.{}:8080 masq weight 10\n",
                i / 256,
                i % 256
            ));
        }
        t.push_str("\nPlan: 1 to add, 0 to change, 0 to remove.\n");
        t
    }

    fn logged(text: &str, piece: usize) -> (Vec<String>, PlanHead) {
        let mut head = None;
        let events = events(|| {
            let mut log = PlanLog::new(7);
            for part in text.as_bytes().chunks(piece) {
                log.write_all(part).unwrap();
            }
            head = Some(log.finish());
        });
        (events, head.unwrap())
    }

    #[test]
    fn a_small_plan_is_one_event_as_the_whole_text_was() {
        let t = text(3);
        let (events, head) = logged(&t, 5);
        assert_eq!(events, [format!("applying\n{}", t.trim_end())]);
        assert_eq!(
            head,
            PlanHead {
                head: t.clone(),
                lines: t.lines().count()
            }
        );
    }

    #[test]
    fn a_large_plan_is_logged_a_chunk_at_a_time_with_every_line_once() {
        let t = text(20_000);
        let (events, _) = logged(&t, 4096);
        assert!(events.len() > 10, "{} events", events.len());
        assert!(events.iter().all(|e| e.len() < CHUNK + 4096 + 64));
        assert!(events[0].starts_with("applying\n  service"));
        let mut lines = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let (first, rest) = e.split_once('\n').unwrap();
            let want = if i == 0 {
                "applying"
            } else {
                "applying (continued)"
            };
            assert_eq!(first, want);
            lines.extend(rest.lines().map(str::to_string));
        }
        let want: Vec<&str> = t.trim_end().lines().collect();
        assert_eq!(lines, want);
    }

    #[test]
    fn the_status_page_gets_the_same_plan_text_as_from_the_whole_text() {
        for n in [3, PLAN_LINES - 3, PLAN_LINES, 20_000] {
            let t = text(n);
            let (_, head) = logged(&t, 1000);
            assert_eq!(head.plan_text(1), PlanText::of(&t, 1), "{n} lines");
        }
    }
}
