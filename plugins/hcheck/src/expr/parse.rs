//! The parser: recursive descent over the tokens, one function per grammar rule (see the
//! grammar in the module above).

use super::lex::{Tok, Token};
use super::{Cmp, Expr, ExprError, HeaderTest, StatusTest, StrOp};

/// Parses a whole expression; every token must be used. `lex_error` is where the lexer
/// stopped, if it did: it is the error when the parser gets there.
pub(crate) fn parse(tokens: &[Token<'_>], lex_error: Option<ExprError>) -> Result<Expr, ExprError> {
    let mut p = Parser { tokens, pos: 0, lex_error };
    let expr = p.or()?;
    match (p.peek(), p.lex_error) {
        (Some(t), _) => Err(ExprError::at(t.at, format!("unexpected `{}` (expected `and`, `or` or the end)", t.text))),
        (None, Some(e)) => Err(e),
        (None, None) => Ok(expr),
    }
}

struct Parser<'t, 'a> {
    tokens: &'t [Token<'a>],
    pos: usize,
    lex_error: Option<ExprError>,
}

const OPERAND: &str = "`status`, `header(\"...\")`, `body`, `not` or `(`";
const STR_OPS: &str = "`==`, `!=`, `contains`, `starts_with` or `ends_with`";

impl<'t, 'a> Parser<'t, 'a> {
    fn peek(&self) -> Option<&'t Token<'a>> {
        self.tokens.get(self.pos)
    }

    /// Consumes the next token when `f` accepts it.
    fn eat(&mut self, f: impl Fn(&Tok<'a>) -> bool) -> bool {
        let hit = self.peek().is_some_and(|t| f(&t.tok));
        self.pos += usize::from(hit);
        hit
    }

    /// "expected `what` after `previous token`", pointing at the next token or the end.
    fn expected(&self, what: &str) -> ExprError {
        if let (None, Some(e)) = (self.peek(), &self.lex_error) {
            return e.clone();
        }
        let message = match self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some(prev) => format!("expected {what} after `{}`", prev.text),
            None => format!("expected {what}"),
        };
        match self.peek() {
            Some(t) => ExprError::at(t.at, message),
            None => ExprError::at_end(message),
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut items = vec![self.and()?];
        while self.eat(|t| matches!(t, Tok::OrOr | Tok::Word("or"))) {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::Or(items) })
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut items = vec![self.unary()?];
        while self.eat(|t| matches!(t, Tok::AndAnd | Tok::Word("and"))) {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::And(items) })
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.eat(|t| matches!(t, Tok::Bang | Tok::Word("not"))) {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let Some(t) = self.peek() else { return Err(self.expected(OPERAND)) };
        match t.tok {
            Tok::LParen => {
                self.pos += 1;
                let inner = self.or()?;
                if !self.eat(|t| *t == Tok::RParen) {
                    return Err(match self.peek() {
                        Some(_) => self.expected("`)`"),
                        None => self.lex_error.clone().unwrap_or_else(|| ExprError::at(t.at, "this `(` is never closed")),
                    });
                }
                Ok(inner)
            }
            Tok::Word("status") => {
                self.pos += 1;
                self.status().map(Expr::Status)
            }
            Tok::Word("header") => {
                self.pos += 1;
                self.header()
            }
            Tok::Word("body") => {
                self.pos += 1;
                let op = self.str_op().ok_or_else(|| self.expected(STR_OPS))?;
                Ok(Expr::Body(op, self.string()?))
            }
            _ => Err(self.expected(OPERAND)),
        }
    }

    fn status(&mut self) -> Result<StatusTest, ExprError> {
        let cmp = match self.peek().map(|t| &t.tok) {
            Some(Tok::Eq) => Cmp::Eq,
            Some(Tok::Ne) => Cmp::Ne,
            Some(Tok::Lt) => Cmp::Lt,
            Some(Tok::Le) => Cmp::Le,
            Some(Tok::Gt) => Cmp::Gt,
            Some(Tok::Ge) => Cmp::Ge,
            Some(Tok::Word("in")) => {
                self.pos += 1;
                return self.status_in();
            }
            _ => return Err(self.expected("`==`, `!=`, `<`, `<=`, `>`, `>=` or `in`")),
        };
        self.pos += 1;
        Ok(StatusTest::Cmp(cmp, self.code()?))
    }

    /// After `status in`: a range or a bracketed list of codes and ranges.
    fn status_in(&mut self) -> Result<StatusTest, ExprError> {
        if !self.eat(|t| *t == Tok::LBracket) {
            return Ok(StatusTest::In { list: false, ranges: vec![self.range(true)?] });
        }
        let mut ranges = vec![self.range(false)?];
        while self.eat(|t| *t == Tok::Comma) {
            ranges.push(self.range(false)?);
        }
        if !self.eat(|t| *t == Tok::RBracket) {
            return Err(self.expected("`,` or `]`"));
        }
        Ok(StatusTest::In { list: true, ranges })
    }

    /// `CODE..CODE` (`required`: the `..` part must be there) or, in a list, a lone `CODE`.
    fn range(&mut self, required: bool) -> Result<(u16, u16), ExprError> {
        let start = self.peek().map(|t| t.at);
        let lo = self.code()?;
        if !self.eat(|t| *t == Tok::DotDot) {
            if required {
                return Err(self.expected("`..` and the last status code of the range"));
            }
            return Ok((lo, lo));
        }
        let hi = self.code()?;
        if hi < lo {
            return Err(ExprError::at(start.unwrap_or(0), format!("the range {lo}..{hi} is empty")));
        }
        Ok((lo, hi))
    }

    fn code(&mut self) -> Result<u16, ExprError> {
        let Some(t) = self.peek() else { return Err(self.expected("a status code")) };
        let Tok::Int(digits) = t.tok else { return Err(self.expected("a status code")) };
        match digits.parse::<u16>() {
            Ok(code @ 100..=999) => {
                self.pos += 1;
                Ok(code)
            }
            _ => Err(ExprError::at(t.at, format!("`{digits}` is not a status code (100..999)"))),
        }
    }

    fn header(&mut self) -> Result<Expr, ExprError> {
        if !self.eat(|t| *t == Tok::LParen) {
            return Err(self.expected("`(`"));
        }
        let (name, name_at) = match self.peek() {
            Some(Token { tok: Tok::Str(name), at, .. }) => (name.clone(), *at),
            _ => return Err(self.expected("a header name in double quotes")),
        };
        self.pos += 1;
        if !switchyard_sdk::rules::is_token(&name) {
            return Err(ExprError::at(name_at, format!("{name:?} is not a valid header name")));
        }
        if !self.eat(|t| *t == Tok::RParen) {
            return Err(self.expected("`)`"));
        }
        if self.eat(|t| *t == Tok::Word("exists")) {
            return Ok(Expr::Header(name, HeaderTest::Exists));
        }
        let op = self.str_op().ok_or_else(|| self.expected(&format!("`exists`, {STR_OPS}")))?;
        Ok(Expr::Header(name, HeaderTest::Str(op, self.string()?)))
    }

    fn str_op(&mut self) -> Option<StrOp> {
        let op = match self.peek()?.tok {
            Tok::Eq => StrOp::Eq,
            Tok::Ne => StrOp::Ne,
            Tok::Word("contains") => StrOp::Contains,
            Tok::Word("starts_with") => StrOp::StartsWith,
            Tok::Word("ends_with") => StrOp::EndsWith,
            _ => return None,
        };
        self.pos += 1;
        Some(op)
    }

    fn string(&mut self) -> Result<String, ExprError> {
        match self.peek() {
            Some(Token { tok: Tok::Str(s), .. }) => {
                self.pos += 1;
                Ok(s.clone())
            }
            _ => Err(self.expected("a string in double quotes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Expr;
    use super::*;

    fn parse(src: &str) -> Expr {
        Expr::parse(src).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(src: &str) -> String {
        Expr::parse(src).expect_err(src)
    }

    fn status(op: Cmp, code: u16) -> Expr {
        Expr::Status(StatusTest::Cmp(op, code))
    }

    #[test]
    fn status_comparisons() {
        for (src, op) in [("==", Cmp::Eq), ("!=", Cmp::Ne), ("<", Cmp::Lt), ("<=", Cmp::Le), (">", Cmp::Gt), (">=", Cmp::Ge)] {
            assert_eq!(parse(&format!("status {src} 204")), status(op, 204));
        }
        assert_eq!(parse("status in 200..399"), Expr::Status(StatusTest::In { list: false, ranges: vec![(200, 399)] }));
        assert_eq!(
            parse("status in [200, 204,300..302]"),
            Expr::Status(StatusTest::In { list: true, ranges: vec![(200, 200), (204, 204), (300, 302)] })
        );
        assert_eq!(parse("status in 200..200"), Expr::Status(StatusTest::In { list: false, ranges: vec![(200, 200)] }));
    }

    #[test]
    fn headers_and_body() {
        assert_eq!(parse(r#"header("X-Ready") exists"#), Expr::Header("X-Ready".into(), HeaderTest::Exists));
        for (src, op) in [
            ("==", StrOp::Eq),
            ("!=", StrOp::Ne),
            ("contains", StrOp::Contains),
            ("starts_with", StrOp::StartsWith),
            ("ends_with", StrOp::EndsWith),
        ] {
            assert_eq!(
                parse(&format!(r#"header("x") {src} "v""#)),
                Expr::Header("x".into(), HeaderTest::Str(op, "v".into()))
            );
            assert_eq!(parse(&format!(r#"body {src} "v""#)), Expr::Body(op, "v".into()));
        }
        assert_eq!(parse(r#"body == "say \"hi\" \\o/""#), Expr::Body(StrOp::Eq, r#"say "hi" \o/"#.into()));
    }

    #[test]
    fn precedence_not_and_or() {
        let a = || status(Cmp::Eq, 200);
        let b = || status(Cmp::Eq, 201);
        let c = || status(Cmp::Eq, 202);
        let not = |e| Expr::Not(Box::new(e));
        assert_eq!(
            parse("status == 200 or status == 201 and status == 202"),
            Expr::Or(vec![a(), Expr::And(vec![b(), c()])])
        );
        assert_eq!(
            parse("status == 200 and status == 201 or status == 202"),
            Expr::Or(vec![Expr::And(vec![a(), b()]), c()])
        );
        assert_eq!(parse("not status == 200 and status == 201"), Expr::And(vec![not(a()), b()]));
        assert_eq!(parse("!(status == 200 && status == 201)"), not(Expr::And(vec![a(), b()])));
        assert_eq!(parse("status == 200 || status == 201 || status == 202"), Expr::Or(vec![a(), b(), c()]));
        assert_eq!(parse("not not status == 200"), not(not(a())));
        assert_eq!(parse("((status == 200))"), a());
        assert_eq!(
            parse("(status == 200 or status == 201) and status == 202"),
            Expr::And(vec![Expr::Or(vec![a(), b()]), c()])
        );
    }

    #[test]
    fn error_messages() {
        let cases = [
            ("status in abc", "expected a status code after `in` at column 11"),
            ("status in", "expected a status code after `in` at the end"),
            ("status in 200", "expected `..` and the last status code of the range after `200` at the end"),
            ("status in 200..", "expected a status code after `..` at the end"),
            ("status in 399..200", "the range 399..200 is empty at column 11"),
            ("status in [200, 3000]", "`3000` is not a status code (100..999) at column 17"),
            ("status in [200 204]", "expected `,` or `]` after `200` at column 16"),
            ("status in []", "expected a status code after `[` at column 12"),
            ("status == 42", "`42` is not a status code (100..999) at column 11"),
            ("status == 70000", "`70000` is not a status code (100..999) at column 11"),
            ("status 200", "expected `==`, `!=`, `<`, `<=`, `>`, `>=` or `in` after `status` at column 8"),
            ("status contains \"2\"", "expected `==`, `!=`, `<`, `<=`, `>`, `>=` or `in` after `status` at column 8"),
            ("status == \"200\"", "expected a status code after `==` at column 11"),
            ("header(X-Ready) exists", "expected a header name in double quotes after `(` at column 8"),
            ("status == 200 and header(\"x\") = \"1\"", "unexpected `=` (did you mean `==`?) at column 31"),
            ("(status == 200 && body contains \"a)", "unterminated string (a `\"` without its closing `\"`) at column 33"),
            ("header \"x\" exists", "expected `(` after `header` at column 8"),
            ("header(\"x\" exists", "expected `)` after `\"x\"` at column 12"),
            ("header(\"a b\") exists", "\"a b\" is not a valid header name at column 8"),
            (
                "header(\"x\") < \"1\"",
                "expected `exists`, `==`, `!=`, `contains`, `starts_with` or `ends_with` after `)` at column 13",
            ),
            ("header(\"x\") contains", "expected a string in double quotes after `contains` at the end"),
            ("body exists", "expected `==`, `!=`, `contains`, `starts_with` or `ends_with` after `body` at column 6"),
            ("body contains UP", "expected a string in double quotes after `contains` at column 15"),
            ("status == 200 and", "expected `status`, `header(\"...\")`, `body`, `not` or `(` after `and` at the end"),
            ("status == 200 AND status == 201", "unexpected `AND` (expected `and`, `or` or the end) at column 15"),
            ("status == 200 status == 201", "unexpected `status` (expected `and`, `or` or the end) at column 15"),
            ("(status == 200", "this `(` is never closed at column 1"),
            ("(status == 200 status", "expected `)` after `200` at column 16"),
            ("status == 200)", "unexpected `)` (expected `and`, `or` or the end) at column 14"),
            ("code == 200", "expected `status`, `header(\"...\")`, `body`, `not` or `(` at column 1"),
            ("not", "expected `status`, `header(\"...\")`, `body`, `not` or `(` after `not` at the end"),
            ("()", "expected `status`, `header(\"...\")`, `body`, `not` or `(` after `(` at column 2"),
        ];
        for (src, want) in cases {
            assert_eq!(err(src), format!("hcexpr: {want}: {src}"), "{src}");
        }
    }
}
