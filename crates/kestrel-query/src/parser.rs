//! Recursive-descent parser over the tokens.
//!
//! ```text
//! query   := and? EOF
//! and     := or (("AND")? or)*          -- juxtaposition is AND
//! or      := unary ("OR" unary)*
//! unary   := ("-" | "NOT") unary | primary
//! primary := "(" and ")" | term | text
//! ```
//!
//! The tree is then simplified and its size bounded (see [`crate::simplify`]); for that the
//! parser records the span of each predicate in source order.

use crate::ast::{Expr, Pred, Query};
use crate::error::QueryError;
use crate::fields::Term;
use crate::lexer::{Tok, Token, tokenize};
use crate::simplify::simplify;
use crate::{MAX_DEPTH, MAX_QUERY_LEN};

/// Parses a query, taking relative times (`since:24h`) from the current clock.
pub fn parse(src: &str) -> Result<Query, QueryError> {
    parse_at(src, caribou_model::now_us())
}

/// Parses a query with `now_us` as the present (for relative times); deterministic.
pub fn parse_at(src: &str, now_us: i64) -> Result<Query, QueryError> {
    if src.len() > MAX_QUERY_LEN {
        return Err(QueryError::new(
            src,
            MAX_QUERY_LEN..src.len(),
            format!("the query is longer than {MAX_QUERY_LEN} bytes"),
        )
        .hint("shorten it"));
    }
    // A control character can only be a mistake (or an attack): full-text engines treat NUL as the
    // end of a string, so it never reaches them.
    if let Some((at, c)) = src
        .char_indices()
        .find(|(_, c)| c.is_control() && !c.is_whitespace())
    {
        return Err(QueryError::new(
            src,
            at..at + c.len_utf8(),
            format!("control character U+{:04X}", u32::from(c)),
        )
        .hint("remove it"));
    }
    let tokens = tokenize(src)?;
    let mut p = Parser {
        src,
        tokens,
        pos: 0,
        now_us,
        depth: 0,
        leaf_spans: Vec::new(),
    };
    if p.tokens.is_empty() {
        return Ok(Query { expr: None });
    }
    let expr = p.and()?;
    if let Some(t) = p.tokens.get(p.pos) {
        return Err(QueryError::new(src, t.span.clone(), "unmatched \")\"")
            .hint("remove it or add a \"(\" before"));
    }
    Ok(Query {
        expr: Some(simplify(src, expr, p.leaf_spans)?),
    })
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    now_us: i64,
    depth: usize,
    /// The span of every predicate parsed so far, in source order.
    leaf_spans: Vec<std::ops::Range<usize>>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn end_span(&self) -> std::ops::Range<usize> {
        self.src.len()..self.src.len()
    }

    fn descend(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let span = self
                .tokens
                .get(self.pos)
                .map_or_else(|| self.end_span(), |t| t.span.clone());
            return Err(QueryError::new(
                self.src,
                span,
                format!("the query nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut parts = vec![self.or()?];
        loop {
            match self.peek() {
                None | Some(Tok::RParen) => break,
                Some(Tok::And) => {
                    let span = self.tokens[self.pos].span.clone();
                    self.pos += 1;
                    if matches!(self.peek(), None | Some(Tok::RParen | Tok::Or | Tok::And)) {
                        return Err(QueryError::new(
                            self.src,
                            span,
                            "\"AND\" needs a term after it",
                        ));
                    }
                }
                Some(_) => parts.push(self.or()?),
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut parts = vec![self.unary()?];
        while let Some(Tok::Or) = self.peek() {
            let span = self.tokens[self.pos].span.clone();
            self.pos += 1;
            if matches!(self.peek(), None | Some(Tok::RParen | Tok::Or | Tok::And)) {
                return Err(
                    QueryError::new(self.src, span, "\"OR\" needs a term after it")
                        .hint("write a OR b; a bare word \"or\" in lowercase is searched as text"),
                );
            }
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if let Some(Tok::Not) = self.peek() {
            let span = self.tokens[self.pos].span.clone();
            self.pos += 1;
            if matches!(self.peek(), None | Some(Tok::RParen | Tok::Or | Tok::And)) {
                return Err(QueryError::new(self.src, span, "nothing to negate")
                    .hint("write -term or NOT term"));
            }
            self.descend()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let Some(token) = self.tokens.get(self.pos).cloned() else {
            return Err(QueryError::new(
                self.src,
                self.end_span(),
                "the query ends where a term was expected",
            ));
        };
        self.pos += 1;
        match token.tok {
            Tok::LParen => {
                if let Some(Tok::RParen) = self.peek() {
                    let span = token.span.start..self.tokens[self.pos].span.end;
                    return Err(QueryError::new(self.src, span, "empty parentheses")
                        .hint("put terms inside or remove them"));
                }
                self.descend()?;
                let inner = self.and()?;
                self.depth -= 1;
                match self.peek() {
                    Some(Tok::RParen) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => {
                        Err(QueryError::new(self.src, token.span, "unclosed \"(\"")
                            .hint("add a \")\""))
                    }
                }
            }
            Tok::RParen => Err(QueryError::new(self.src, token.span, "unmatched \")\"")
                .hint("remove it or add a \"(\" before")),
            Tok::Or | Tok::And => {
                let word = if token.tok == Tok::Or { "OR" } else { "AND" };
                Err(QueryError::new(
                    self.src,
                    token.span,
                    format!("\"{word}\" needs a term before it"),
                ))
            }
            Tok::Not => Err(QueryError::new(self.src, token.span, "nothing to negate")),
            Tok::Text(text) => {
                self.leaf_spans.push(token.span);
                Ok(Expr::Pred(Pred::Text(text)))
            }
            Tok::Term {
                field,
                field_span,
                key,
                op,
                value,
                value_span,
                quoted: _,
            } => {
                let term = Term {
                    src: self.src,
                    field: &field,
                    field_span,
                    key: key.as_deref(),
                    op,
                    value: &value,
                    value_span,
                    now_us: self.now_us,
                };
                let pred = term.to_pred()?;
                self.leaf_spans.push(token.span);
                Ok(Expr::Pred(pred))
            }
        }
    }
}
