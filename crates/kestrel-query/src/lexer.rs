//! Splits a query into tokens, keeping byte spans for error messages.

use std::ops::Range;

use crate::error::QueryError;

/// A comparison operator between a field and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Colon,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Colon => ":",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    /// `-` right before a term, or the keyword `NOT`.
    Not,
    Or,
    And,
    /// A bare word or a quoted phrase.
    Text(String),
    /// `field<op>value`. `field` is the field as written (for messages); `key` the unquoted key
    /// of `meta."key"` or `grade."name"`; `value_span` is the value's own span; `quoted` if the
    /// value was in quotes.
    Term {
        field: String,
        field_span: Range<usize>,
        key: Option<String>,
        op: Op,
        value: String,
        value_span: Range<usize>,
        quoted: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Range<usize>,
}

/// The fields whose key may be quoted (`meta."customer id":x`), for keys that hold a space, a
/// quote, a parenthesis, or one of `:<>`, which would end a bare key.
/// Each with an example key for hints.
const QUOTED_KEY_FIELDS: &[(&str, &str)] = &[("meta.", "customer id"), ("grade.", "pass rate")];

fn is_stop(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')' || c == '"'
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> QueryError {
        QueryError::new(self.src, span, msg)
    }

    /// Reads a quoted string starting at the opening quote; `\"` and `\\` are escapes.
    fn quoted(&mut self) -> Result<(String, Range<usize>), QueryError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self
                        .err(start..self.pos, "unclosed quote")
                        .hint("add a closing \" (write \\\" for a quote inside)"));
                }
                Some('"') => return Ok((out, start..self.pos)),
                Some('\\') => match self.bump() {
                    Some(c @ ('"' | '\\')) => out.push(c),
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => {
                        return Err(self
                            .err(start..self.pos, "unclosed quote")
                            .hint("add a closing \""));
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// Reads a run of non-stop characters.
    fn word(&mut self, stop_at_op: bool) -> Range<usize> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_stop(c) || (stop_at_op && matches!(c, ':' | '>' | '<')) {
                break;
            }
            self.bump();
        }
        start..self.pos
    }

    fn op(&mut self) -> Option<Op> {
        let op = match self.peek()? {
            ':' => Op::Colon,
            '>' if self.src[self.pos..].starts_with(">=") => Op::Ge,
            '<' if self.src[self.pos..].starts_with("<=") => Op::Le,
            '>' => Op::Gt,
            '<' => Op::Lt,
            _ => return None,
        };
        self.pos += op.as_str().len();
        Some(op)
    }

    fn next(&mut self) -> Result<Option<Token>, QueryError> {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let tok = match c {
            '(' => {
                self.bump();
                Tok::LParen
            }
            ')' => {
                self.bump();
                Tok::RParen
            }
            '"' => Tok::Text(self.quoted()?.0),
            '-' => {
                self.bump();
                match self.peek() {
                    Some(c) if !c.is_whitespace() && c != ')' => Tok::Not,
                    _ => {
                        return Err(self
                            .err(start..self.pos, "a lone \"-\"")
                            .hint("write -term to exclude a term, with no space after the -"));
                    }
                }
            }
            _ => {
                let mut key = self.word(true);
                let mut quoted_key = None;
                let quotable = QUOTED_KEY_FIELDS
                    .iter()
                    .find(|(f, _)| *f == &self.src[key.clone()]);
                if let Some((prefix, example)) = quotable
                    && self.peek() == Some('"')
                {
                    let (name, span) = self.quoted()?;
                    key.end = span.end;
                    quoted_key = Some(name);
                    if !matches!(self.peek(), Some(':' | '>' | '<')) {
                        return Err(self
                            .err(
                                key,
                                "a quoted key needs \":\" or a comparison right after it",
                            )
                            .hint(format!("write e.g. {prefix}\"{example}\":value")));
                    }
                }
                let key_text = &self.src[key.clone()];
                let Some(op) = self.op() else {
                    return Ok(Some(Token {
                        tok: keyword_or_text(key_text),
                        span: key,
                    }));
                };
                if key.is_empty() {
                    return Err(self
                        .err(
                            start..self.pos,
                            format!("missing field name before \"{}\"", op.as_str()),
                        )
                        .hint("write field:value, e.g. status:error"));
                }
                let (value, value_span, quoted) = if self.peek() == Some('"') {
                    let (v, span) = self.quoted()?;
                    (v, span, true)
                } else {
                    let span = self.word(false);
                    (self.src[span.clone()].to_owned(), span, false)
                };
                Tok::Term {
                    field: key_text.to_owned(),
                    field_span: key,
                    key: quoted_key,
                    op,
                    value,
                    value_span,
                    quoted,
                }
            }
        };
        Ok(Some(Token {
            tok,
            span: start..self.pos,
        }))
    }
}

fn keyword_or_text(word: &str) -> Tok {
    match word {
        "OR" => Tok::Or,
        "AND" => Tok::And,
        "NOT" => Tok::Not,
        _ => Tok::Text(word.to_owned()),
    }
}

/// Tokenizes the whole query.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, QueryError> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    while let Some(t) = lexer.next()? {
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let toks = tokenize(r#"status:error -tag:x error:"timed out" (a OR b) cost>=0.5"#).unwrap();
        let kinds: Vec<_> = toks.iter().map(|t| &t.tok).collect();
        assert!(
            matches!(kinds[0], Tok::Term { field, op: Op::Colon, value, .. } if field == "status" && value == "error")
        );
        assert_eq!(kinds[1], &Tok::Not);
        assert!(matches!(kinds[3], Tok::Term { value, quoted: true, .. } if value == "timed out"));
        assert_eq!(kinds[4], &Tok::LParen);
        assert_eq!(kinds[6], &Tok::Or);
        assert!(matches!(kinds[9], Tok::Term { op: Op::Ge, value, .. } if value == "0.5"));
    }
}
