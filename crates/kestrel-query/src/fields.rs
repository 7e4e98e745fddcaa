//! The fields a query may name, and how each turns `field<op>value` into a typed [`Pred`].

use std::ops::{Bound, Range};

use caribou_model::{Phase, RolloutStatus};

use crate::ast::{NumRange, Pred, TextMatch};
use crate::error::{QueryError, cut, did_you_mean, shown};
use crate::lexer::Op;
use crate::values;

/// Every field with a one-line description (for help texts and error hints). `meta.` and `grade.`
/// take a key after the dot, in double quotes when it holds a space, a quote, a parenthesis or one
/// of `:<>` (`meta."customer id":x`; `\"` and `\\` inside stand for `"` and `\`).
pub const FIELDS: &[(&str, &str)] = &[
    (
        "status",
        "status:error — RUNNING, COMPLETED, TRUNCATED, ERROR, CANCELLED (any case)",
    ),
    ("phase", "phase:prod — eval, train or prod"),
    ("tag", "tag:premium_tier — has this tag"),
    ("model", "model:gpt-4o — the trace's or a message's model"),
    ("project", "project:my-agent"),
    ("run", "run:<run id>"),
    ("datapoint", "datapoint:<datapoint id>"),
    ("trace", "trace:<trace id>"),
    ("tool", "tool:search_web — ran this tool"),
    ("error", "error:\"timed out\" — words in the error message"),
    ("step", "step:10..20, step>=5"),
    ("cost", "cost>0.01 — USD"),
    ("tokens", "tokens>1000 — input + output"),
    ("input_tokens", "input_tokens>500"),
    ("output_tokens", "output_tokens>500"),
    ("duration", "duration>2s — ms, s, m, h, d"),
    ("after", "after:2026-11-01 — started at or after"),
    ("before", "before:2026-11-01 — started before"),
    (
        "since",
        "since:24h — started within the last 24h (or since a date)",
    ),
    (
        "meta.",
        "meta.customer_id:cust_123, meta.latency_ms>400, meta.\"customer id\":c1",
    ),
    (
        "grade.",
        "grade.reward>=0.5, grade.correct:true, grade.\"pass rate\">0.5",
    ),
];

/// One `field<op>value` term as written, with spans for errors. Messages repeat the field and
/// value only cut (see [`cut`]), so a long term is not echoed whole.
pub(crate) struct Term<'a> {
    pub src: &'a str,
    /// The field as written (`meta."customer id"` included), for messages.
    pub field: &'a str,
    pub field_span: Range<usize>,
    /// The unquoted key of `meta."key"` or `grade."name"`.
    pub key: Option<&'a str>,
    pub op: Op,
    pub value: &'a str,
    pub value_span: Range<usize>,
    pub now_us: i64,
}

impl Term<'_> {
    fn value_err(&self, msg: impl Into<String>) -> QueryError {
        QueryError::new(
            self.src,
            self.value_span.clone(),
            format!("{}: {}", cut(self.field), msg.into()),
        )
    }

    fn only_colon(&self) -> Result<(), QueryError> {
        if self.op == Op::Colon {
            return Ok(());
        }
        let span = self.field_span.start..self.value_span.end;
        Err(QueryError::new(
            self.src,
            span,
            format!(
                "{} cannot be compared with \"{}\"",
                shown(self.field),
                self.op.as_str()
            ),
        )
        .hint(format!("write {}:value", cut(self.field))))
    }

    /// An exact string value (`tag:x`), which must not be empty.
    fn word(&self) -> Result<String, QueryError> {
        self.only_colon()?;
        if self.value.is_empty() {
            return Err(self
                .value_err("missing value")
                .hint(format!("write {}:value", cut(self.field))));
        }
        Ok(self.value.to_owned())
    }

    /// A numeric interval from the op and value.
    fn range<T: Copy + PartialOrd>(
        &self,
        one: impl Fn(&str) -> Result<T, String>,
    ) -> Result<NumRange<T>, QueryError> {
        if self.value.is_empty() {
            let field = cut(self.field);
            return Err(self
                .value_err("missing value")
                .hint(format!("write e.g. {field}>10 or {field}:10..20")));
        }
        let v = |s: &str| one(s).map_err(|e| self.value_err(e));
        Ok(match self.op {
            Op::Colon => values::range(self.value, &one).map_err(|e| self.value_err(e))?,
            Op::Gt => NumRange {
                lo: Bound::Excluded(v(self.value)?),
                hi: Bound::Unbounded,
            },
            Op::Ge => NumRange {
                lo: Bound::Included(v(self.value)?),
                hi: Bound::Unbounded,
            },
            Op::Lt => NumRange {
                lo: Bound::Unbounded,
                hi: Bound::Excluded(v(self.value)?),
            },
            Op::Le => NumRange {
                lo: Bound::Unbounded,
                hi: Bound::Included(v(self.value)?),
            },
        })
    }

    /// A metadata or grade comparison: numbers as numbers, anything else as an exact string.
    fn text_match(&self, bools: bool) -> Result<TextMatch, QueryError> {
        if self.value.is_empty() {
            return Err(self.value_err("missing value"));
        }
        if bools && self.op == Op::Colon {
            match self.value {
                "true" => return Ok(TextMatch::Num(NumRange::eq(1.0))),
                "false" => return Ok(TextMatch::Num(NumRange::eq(0.0))),
                _ => {}
            }
        }
        let numeric = self
            .value
            .split("..")
            .all(|p| p.is_empty() || values::number(p).is_ok());
        if numeric && self.value != ".." {
            return Ok(TextMatch::Num(self.range(values::number)?));
        }
        if self.op != Op::Colon {
            // The hint repeats the value as written, quotes included, so it can be pasted back.
            return Err(self
                .value_err(format!(
                    "{} is not a number, so it cannot be compared with \"{}\"",
                    shown(self.value),
                    self.op.as_str()
                ))
                .hint(format!(
                    "write {}:{} to match the text",
                    cut(self.field),
                    cut(&self.src[self.value_span.clone()])
                )));
        }
        Ok(TextMatch::Str(self.value.to_owned()))
    }

    fn time(&self, lo: bool, exclusive: bool) -> Result<Pred, QueryError> {
        self.only_colon()?;
        if self.value.is_empty() {
            return Err(self
                .value_err("missing value")
                .hint("write e.g. 2026-11-01 or 24h"));
        }
        let t = values::time_us(self.value, self.now_us).map_err(|e| self.value_err(e))?;
        let b = if exclusive {
            Bound::Excluded(t)
        } else {
            Bound::Included(t)
        };
        Ok(Pred::StartedAt(if lo {
            NumRange {
                lo: b,
                hi: Bound::Unbounded,
            }
        } else {
            NumRange {
                lo: Bound::Unbounded,
                hi: b,
            }
        }))
    }

    /// One of `all`, named in any case (`status:error`, `status:ERROR`).
    fn one_of<T: Copy>(&self, all: &[T], name: fn(T) -> &'static str) -> Result<T, QueryError> {
        let word = self.word()?;
        all.iter()
            .copied()
            .find(|v| name(*v).eq_ignore_ascii_case(&word))
            .ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
                self.value_err(format!(
                    "unknown {} {}; expected one of {}",
                    self.field.to_ascii_lowercase(),
                    shown(&word),
                    names.join(", ")
                ))
            })
    }

    fn key_after_dot(&self, prefix: &str) -> Result<String, QueryError> {
        let key = self.key.unwrap_or(&self.field[prefix.len()..]);
        if key.is_empty() {
            let what = if prefix == "meta." {
                "metadata key"
            } else {
                "grade name"
            };
            return Err(QueryError::new(
                self.src,
                self.field_span.clone(),
                format!("missing {what} after \"{prefix}\""),
            )
            .hint(format!("write e.g. {prefix}name:value")));
        }
        Ok(key.to_owned())
    }

    /// The typed predicate of this term.
    pub(crate) fn to_pred(&self) -> Result<Pred, QueryError> {
        if self.field.starts_with("meta.") {
            return Ok(Pred::Meta {
                key: self.key_after_dot("meta.")?,
                value: self.text_match(false)?,
            });
        }
        if self.field.starts_with("grade.") {
            return Ok(Pred::Grade {
                name: self.key_after_dot("grade.")?,
                value: self.text_match(true)?,
            });
        }
        let field = self.field.to_ascii_lowercase();
        Ok(match field.as_str() {
            "status" => Pred::Status(self.one_of(&RolloutStatus::ALL, RolloutStatus::as_str)?),
            "phase" => Pred::Phase(self.one_of(&Phase::ALL, Phase::as_str)?),
            "tag" => Pred::Tag(self.word()?),
            "model" => Pred::Model(self.word()?),
            "project" => Pred::Project(self.word()?),
            "run" => Pred::Run(self.word()?),
            "datapoint" => Pred::Datapoint(self.word()?),
            "trace" => Pred::TraceId(self.word()?),
            "tool" => Pred::Tool(self.word()?),
            "error" => Pred::Error(self.word()?),
            "step" => Pred::Step(self.range(values::integer)?),
            "cost" => Pred::Cost(self.range(values::number)?),
            "tokens" => Pred::Tokens(self.range(values::integer)?),
            "input_tokens" => Pred::InputTokens(self.range(values::integer)?),
            "output_tokens" => Pred::OutputTokens(self.range(values::integer)?),
            "duration" => Pred::DurationMs(self.range(values::duration_ms)?),
            "after" | "since" => self.time(true, false)?,
            "before" => self.time(false, true)?,
            _ => {
                let names = FIELDS.iter().map(|(n, _)| n.trim_end_matches('.'));
                let err = QueryError::new(
                    self.src,
                    self.field_span.clone(),
                    format!("unknown field {}", shown(self.field)),
                );
                return Err(match did_you_mean(&field, names) {
                    Some(s) => err.hint(format!("did you mean {s:?}?")),
                    None => err.hint(
                        "known fields: status, phase, tag, model, project, run, datapoint, trace, tool, error, step, cost, \
                         tokens, input_tokens, output_tokens, duration, after, before, since, meta.<key>, grade.<name>; \
                         quote the text to search for it as words",
                    ),
                });
            }
        })
    }
}
