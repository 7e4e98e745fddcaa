//! Errors that teach: what is wrong, where, and what would be right.
//!
//! A message quotes the user's own text (a field, a value) only through [`cut`] or [`shown`], so
//! no message repeats more than [`MAX_ECHO_CHARS`](crate::MAX_ECHO_CHARS) characters of the
//! query, however long the term: the position already says where the whole term is.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use crate::MAX_ECHO_CHARS;

/// A query that could not be parsed. `Display` gives the full message, e.g.
/// `unknown field "stauts" at 1..7; did you mean "status"?`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct QueryError {
    /// What is wrong, without the position.
    pub message: String,
    /// The offending text, as 1-based character columns, end exclusive.
    pub columns: Range<usize>,
    /// The same span in bytes of the query string (for highlighting).
    pub bytes: Range<usize>,
    /// A hint, such as a suggested spelling or the expected form.
    pub hint: Option<String>,
}

impl QueryError {
    pub(crate) fn new(query: &str, bytes: Range<usize>, message: impl Into<String>) -> QueryError {
        let start = query.get(..bytes.start).map_or(0, |s| s.chars().count());
        let len = query
            .get(bytes.clone())
            .map_or(0, |s| s.chars().count())
            .max(1);
        QueryError {
            message: message.into(),
            columns: start + 1..start + 1 + len,
            bytes,
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> QueryError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}..{}",
            self.message, self.columns.start, self.columns.end
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// `text` as a message repeats it: whole when it has at most [`MAX_ECHO_CHARS`] characters, else
/// its first [`MAX_ECHO_CHARS`] followed by "…".
pub(crate) fn cut(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// `text` cut (see [`cut`]) and in double quotes, with quotes, backslashes and invisible
/// characters escaped as in Rust (`"a\"b"`).
pub(crate) fn shown(text: &str) -> String {
    format!("{:?}", cut(text))
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (levenshtein(&word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("stauts", ["status", "tag", "step"]),
            Some("status")
        );
        assert_eq!(did_you_mean("zzzzzz", ["status", "tag"]), None);
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(cut("short"), "short");
        let exact = "é".repeat(MAX_ECHO_CHARS);
        assert_eq!(cut(&exact), exact);
        let long = "é".repeat(MAX_ECHO_CHARS + 1);
        assert_eq!(cut(&long), format!("{exact}…"));
        assert_eq!(shown("a\"b"), "\"a\\\"b\"");
    }
}
