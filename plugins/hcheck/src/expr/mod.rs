//! The `expr` language: an hcexpr-like condition on a probe's response.
//!
//! ```text
//! expr       = or
//! or         = and { ("or" | "||") and }
//! and        = unary { ("and" | "&&") unary }
//! unary      = ("not" | "!") unary | primary
//! primary    = "(" expr ")" | status | header | body
//! status     = "status" cmp CODE
//!            | "status" "in" CODE ".." CODE
//!            | "status" "in" "[" item { "," item } "]"
//! item       = CODE [ ".." CODE ]
//! header     = "header" "(" STRING ")" ( "exists" | strop STRING )
//! body       = "body" strop STRING
//! cmp        = "==" | "!=" | "<" | "<=" | ">" | ">="
//! strop      = "==" | "!=" | "contains" | "starts_with" | "ends_with"
//! CODE       = a status code, 100..999
//! STRING     = '"' { any character but '"' and '\', or '\"', or '\\' } '"'
//! ```
//!
//! `not` binds tighter than `and`, which binds tighter than `or`; ranges are inclusive;
//! keywords are lowercase; header names are compared ignoring case. Split into [`lex`] (text
//! to tokens), [`parse`] (tokens to [`Expr`]) and [`eval`] (an [`Expr`] and a response to a
//! verdict with the reason).

mod eval;
mod lex;
mod parse;

use std::fmt;

pub(crate) use eval::Judged;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// True when any is (two or more).
    Or(Vec<Expr>),
    /// True when all are (two or more).
    And(Vec<Expr>),
    /// The opposite.
    Not(Box<Expr>),
    /// A test of the status code.
    Status(StatusTest),
    /// A test of a header, by name as written.
    Header(String, HeaderTest),
    /// A test of the body (its first `body_limit` bytes).
    Body(StrOp, String),
}

/// A comparison operator on status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A test of the status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StatusTest {
    /// `status <op> CODE`
    Cmp(Cmp, u16),
    /// `status in LO..HI`, or `status in [ ... ]` (inclusive ranges; a lone code is `c..c`).
    In { list: bool, ranges: Vec<(u16, u16)> },
}

/// A string operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrOp {
    Eq,
    Ne,
    Contains,
    StartsWith,
    EndsWith,
}

/// A test of a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderTest {
    /// `exists`
    Exists,
    /// `<strop> STRING`
    Str(StrOp, String),
}

impl Expr {
    /// Parses `src`. The error quotes the expression and says where it went wrong, e.g.
    /// ``hcexpr: expected a status code after `in` at column 11: status in abc``.
    pub(crate) fn parse(src: &str) -> Result<Expr, String> {
        if src.trim().is_empty() {
            return Err("hcexpr: the expression is empty".to_string());
        }
        let (tokens, lex_error) = lex::lex(src);
        parse::parse(&tokens, lex_error).map_err(|e| e.render(src))
    }

    /// Whether any part of the expression reads the body.
    pub(crate) fn reads_body(&self) -> bool {
        match self {
            Expr::Or(items) | Expr::And(items) => items.iter().any(Expr::reads_body),
            Expr::Not(e) => e.reads_body(),
            Expr::Body(..) => true,
            Expr::Status(_) | Expr::Header(..) => false,
        }
    }

    /// Evaluates the expression on a response.
    pub(crate) fn judge(&self, status: u16, headers: &[switchyard_sdk::Header], body: &[u8]) -> Judged {
        eval::eval(self, &eval::Response { status, headers, body })
    }
}

/// A parse error: a message and the byte offset it points at (`None`: the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExprError {
    pub(crate) message: String,
    pub(crate) at: Option<usize>,
}

impl ExprError {
    pub(crate) fn at(at: usize, message: impl Into<String>) -> Self {
        Self { message: message.into(), at: Some(at) }
    }

    pub(crate) fn at_end(message: impl Into<String>) -> Self {
        Self { message: message.into(), at: None }
    }

    /// `hcexpr: <message> at column <n>: <src>`, the column counted in characters from 1.
    fn render(&self, src: &str) -> String {
        match self.at {
            Some(at) => {
                let column = src.get(..at).map_or(at, |s| s.chars().count()) + 1;
                format!("hcexpr: {} at column {column}: {src}", self.message)
            }
            None => format!("hcexpr: {} at the end: {src}", self.message),
        }
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        })
    }
}

impl fmt::Display for StatusTest {
    /// The test as the expression would write it, after `status`: `== 200`, `in 200..399`,
    /// `in [200, 300..399]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = |f: &mut fmt::Formatter<'_>, &(lo, hi): &(u16, u16)| {
            if lo == hi { write!(f, "{lo}") } else { write!(f, "{lo}..{hi}") }
        };
        match self {
            StatusTest::Cmp(op, code) => write!(f, "{op} {code}"),
            StatusTest::In { list: false, ranges } => {
                f.write_str("in ")?;
                ranges.iter().try_for_each(|r| range(f, r))
            }
            StatusTest::In { list: true, ranges } => {
                f.write_str("in [")?;
                for (i, r) in ranges.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    range(f, r)?;
                }
                f.write_str("]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_quote_the_expression_and_point_at_the_column() {
        assert_eq!(
            Expr::parse("status in abc").expect_err("bad"),
            "hcexpr: expected a status code after `in` at column 11: status in abc"
        );
        assert_eq!(
            Expr::parse("body contains").expect_err("bad"),
            "hcexpr: expected a string in double quotes after `contains` at the end: body contains"
        );
        // Columns count characters, not bytes.
        assert_eq!(
            Expr::parse(r#"body == "é" && stat"#).expect_err("bad"),
            "hcexpr: expected `status`, `header(\"...\")`, `body`, `not` or `(` after `&&` at column 16: body == \"é\" && stat"
        );
        assert_eq!(Expr::parse("  ").expect_err("bad"), "hcexpr: the expression is empty");
    }

    #[test]
    fn reads_body() {
        let parse = |s| Expr::parse(s).expect("valid");
        assert!(!parse("status == 200 and header(\"x\") exists").reads_body());
        assert!(parse("status == 200 or not (header(\"x\") exists and body contains \"UP\")").reads_body());
    }

    #[test]
    fn status_tests_display_as_written() {
        let list = StatusTest::In { list: true, ranges: vec![(200, 200), (300, 399)] };
        assert_eq!(list.to_string(), "in [200, 300..399]");
        assert_eq!(StatusTest::In { list: false, ranges: vec![(200, 399)] }.to_string(), "in 200..399");
        assert_eq!(StatusTest::Cmp(Cmp::Ge, 500).to_string(), ">= 500");
    }
}
