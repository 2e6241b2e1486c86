//! The tail of a job's log: GitHub answers `GET .../actions/jobs/{id}/logs` with a redirect to the
//! plain-text log, which can run to many megabytes. It is read as a stream, keeping only the last lines
//! (and at most a bounded number of bytes in all), each without the timestamp GitHub prefixes it with.

use std::collections::VecDeque;

use reqwest::Response;

use super::GitHubError;

/// Bytes read from a log at most; what comes after is not read (the tail then ends there).
const MAX_LOG_BYTES: usize = 32 << 20;
/// The longest line kept, in bytes (a minified bundle on one line says nothing more in full).
const MAX_LINE_BYTES: usize = 1_000;

/// The last `lines` lines of the log in `response`'s body.
pub(super) async fn tail(mut response: Response, lines: usize) -> Result<String, GitHubError> {
    let mut tail = Tail::new(lines);
    let mut read = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| GitHubError::Unavailable(format!("reading a job's log: {e}")))?
    {
        read += chunk.len();
        tail.push(&chunk);
        if read >= MAX_LOG_BYTES {
            break;
        }
    }
    Ok(tail.finish())
}

struct Tail {
    keep: usize,
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

impl Tail {
    fn new(keep: usize) -> Self {
        Self {
            keep,
            lines: VecDeque::with_capacity(keep.min(1_024)),
            partial: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            if self.partial.len() < MAX_LINE_BYTES * 4 {
                self.partial.extend_from_slice(piece);
            }
            if piece.ends_with(b"\n") {
                let line = std::mem::take(&mut self.partial);
                self.keep_line(&line);
            }
        }
    }

    fn keep_line(&mut self, raw: &[u8]) {
        if self.keep == 0 {
            return;
        }
        let text = String::from_utf8_lossy(raw);
        let line = without_timestamp(text.trim_end_matches(['\n', '\r']));
        let line = match line.char_indices().nth(MAX_LINE_BYTES) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_owned(),
        };
        if self.lines.len() == self.keep {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn finish(mut self) -> String {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.keep_line(&last);
        }
        Vec::from(self.lines).join("\n")
    }
}

/// A log line without GitHub's `2024-01-01T12:00:00.1234567Z ` prefix.
fn without_timestamp(line: &str) -> &str {
    match line.split_once(' ') {
        Some((stamp, rest))
            if stamp.len() >= 20
                && stamp.ends_with('Z')
                && stamp.as_bytes()[4] == b'-'
                && stamp.as_bytes()[10] == b'T' =>
        {
            rest
        }
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(log: &str, keep: usize, chunk: usize) -> String {
        let mut tail = Tail::new(keep);
        for piece in log.as_bytes().chunks(chunk) {
            tail.push(piece);
        }
        tail.finish()
    }

    #[test]
    fn keeps_the_last_lines_without_timestamps_whatever_the_chunks() {
        let log: String = (1..=500)
            .map(|n| format!("2026-12-05T10:00:00.1234567Z line {n}\n"))
            .collect();
        for chunk in [1, 7, 64, 100_000] {
            let tail = tail_of(&log, 3, chunk);
            assert_eq!(tail, "line 498\nline 499\nline 500", "chunks of {chunk}");
        }
    }

    #[test]
    fn a_last_line_without_newline_counts_and_long_lines_are_cut() {
        assert_eq!(tail_of("a\nb\nc", 2, 4), "b\nc");
        let long = "x".repeat(5_000);
        let kept = tail_of(&format!("{long}\nend\n"), 2, 512);
        let first = kept.lines().next().unwrap();
        assert_eq!(first.chars().count(), MAX_LINE_BYTES + 1);
        assert!(first.ends_with('…'));
        assert!(kept.ends_with("\nend"));
    }

    #[test]
    fn lines_that_only_look_like_timestamps_are_kept_whole() {
        assert_eq!(
            without_timestamp("error: something broke"),
            "error: something broke"
        );
        assert_eq!(
            without_timestamp("2026-12-05 not a stamp"),
            "2026-12-05 not a stamp"
        );
    }
}
