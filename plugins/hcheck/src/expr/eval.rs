//! The evaluator: an [`Expr`] on a response gives a verdict and the reason for it.
//!
//! Every reason is a true statement about the response (`status 503 not in 200..399`,
//! `body does not contain "UP"`), so reasons combine with "and" whatever the operators:
//! a failed `and` gives the reason of its first false operand, a passed one all of them; a
//! passed `or` gives the reason of its first true operand, a failed one all of them; `not`
//! keeps its operand's reason.

use std::borrow::Cow;

use super::{Cmp, Expr, HeaderTest, StatusTest, StrOp};
use switchyard_sdk::Header;

/// What an expression is evaluated on.
pub(crate) struct Response<'a> {
    pub(crate) status: u16,
    pub(crate) headers: &'a [Header],
    pub(crate) body: &'a [u8],
}

/// Whether the expression held, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judged {
    pub(crate) ok: bool,
    pub(crate) reason: String,
}

pub(crate) fn eval(expr: &Expr, r: &Response<'_>) -> Judged {
    match expr {
        Expr::And(items) => all_or_first(items, r, false),
        Expr::Or(items) => all_or_first(items, r, true),
        Expr::Not(inner) => {
            let j = eval(inner, r);
            Judged { ok: !j.ok, reason: j.reason }
        }
        Expr::Status(test) => status(test, r.status),
        Expr::Header(name, test) => header(name, test, r.headers),
        Expr::Body(op, lit) => body(*op, lit, r.body),
    }
}

/// `and` (`stop_on` false) and `or` (`stop_on` true): stops at the first operand whose
/// result is `stop_on` and gives its reason; otherwise joins every reason.
fn all_or_first(items: &[Expr], r: &Response<'_>, stop_on: bool) -> Judged {
    let mut reasons = Vec::with_capacity(items.len());
    for item in items {
        let j = eval(item, r);
        if j.ok == stop_on {
            return j;
        }
        reasons.push(j.reason);
    }
    Judged { ok: !stop_on, reason: reasons.join(" and ") }
}

fn status(test: &StatusTest, status: u16) -> Judged {
    match test {
        StatusTest::Cmp(op, code) => {
            let ok = match op {
                Cmp::Eq => status == *code,
                Cmp::Ne => status != *code,
                Cmp::Lt => status < *code,
                Cmp::Le => status <= *code,
                Cmp::Gt => status > *code,
                Cmp::Ge => status >= *code,
            };
            let shown = if ok { *op } else { negate(*op) };
            Judged { ok, reason: format!("status {status} {shown} {code}") }
        }
        StatusTest::In { ranges, .. } => {
            let ok = ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status));
            let reason = if ok { format!("status {status} {test}") } else { format!("status {status} not {test}") };
            Judged { ok, reason }
        }
    }
}

fn negate(op: Cmp) -> Cmp {
    match op {
        Cmp::Eq => Cmp::Ne,
        Cmp::Ne => Cmp::Eq,
        Cmp::Lt => Cmp::Ge,
        Cmp::Le => Cmp::Gt,
        Cmp::Gt => Cmp::Le,
        Cmp::Ge => Cmp::Lt,
    }
}

/// The header's value: its lines joined with ", " (RFC 9110 §5.3), `None` when absent.
fn header_value<'a>(headers: &'a [Header], name: &str) -> Option<Cow<'a, str>> {
    let mut values = headers.iter().filter(|h| h.is(name)).map(|h| h.value.as_str());
    let first = values.next()?;
    match values.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = format!("{first}, {second}");
            values.for_each(|v| {
                joined.push_str(", ");
                joined.push_str(v);
            });
            Some(Cow::Owned(joined))
        }
    }
}

fn header(name: &str, test: &HeaderTest, headers: &[Header]) -> Judged {
    let value = header_value(headers, name);
    let (op, lit) = match test {
        HeaderTest::Exists => {
            let ok = value.is_some();
            let reason = format!("header {name} is {}", if ok { "present" } else { "absent" });
            return Judged { ok, reason };
        }
        HeaderTest::Str(op, lit) => (*op, lit.as_str()),
    };
    let Some(value) = value else {
        return Judged { ok: op == StrOp::Ne, reason: format!("header {name} is absent") };
    };
    let (v, l) = (shown(&value), shown(lit));
    let ok = matches(op, value.as_bytes(), lit.as_bytes());
    let reason = match (op, ok) {
        (StrOp::Eq, true) | (StrOp::Ne, false) => format!("header {name} is {l}"),
        (StrOp::Eq, false) | (StrOp::Ne, true) => format!("header {name} is {v}, not {l}"),
        (StrOp::Contains, true) => format!("header {name} contains {l}"),
        (StrOp::Contains, false) => format!("header {name} {v} does not contain {l}"),
        (StrOp::StartsWith, true) => format!("header {name} starts with {l}"),
        (StrOp::StartsWith, false) => format!("header {name} {v} does not start with {l}"),
        (StrOp::EndsWith, true) => format!("header {name} ends with {l}"),
        (StrOp::EndsWith, false) => format!("header {name} {v} does not end with {l}"),
    };
    Judged { ok, reason }
}

fn body(op: StrOp, lit: &str, body: &[u8]) -> Judged {
    let ok = matches(op, body, lit.as_bytes());
    let l = shown(lit);
    let reason = match (op, ok) {
        (StrOp::Eq, true) | (StrOp::Ne, false) => format!("body is {l}"),
        (StrOp::Eq, false) | (StrOp::Ne, true) => format!("body is not {l}"),
        (StrOp::Contains, true) => format!("body contains {l}"),
        (StrOp::Contains, false) => format!("body does not contain {l}"),
        (StrOp::StartsWith, true) => format!("body starts with {l}"),
        (StrOp::StartsWith, false) => format!("body does not start with {l}"),
        (StrOp::EndsWith, true) => format!("body ends with {l}"),
        (StrOp::EndsWith, false) => format!("body does not end with {l}"),
    };
    Judged { ok, reason }
}

fn matches(op: StrOp, hay: &[u8], needle: &[u8]) -> bool {
    match op {
        StrOp::Eq => hay == needle,
        StrOp::Ne => hay != needle,
        StrOp::Contains => needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle),
        StrOp::StartsWith => hay.starts_with(needle),
        StrOp::EndsWith => hay.ends_with(needle),
    }
}

/// A value quoted for a reason, cut to 64 characters.
fn shown(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Expr;
    use super::*;

    fn judge(src: &str, status: u16, headers: &[(&str, &str)], body: &str) -> (bool, String) {
        let headers: Vec<Header> = headers.iter().map(|&(n, v)| Header::new(n, v)).collect();
        let j = Expr::parse(src).unwrap_or_else(|e| panic!("{e}")).judge(status, &headers, body.as_bytes());
        (j.ok, j.reason)
    }

    fn pass(src: &str, status: u16, headers: &[(&str, &str)], body: &str) -> String {
        let (ok, reason) = judge(src, status, headers, body);
        assert!(ok, "{src} should pass: {reason}");
        reason
    }

    fn fail(src: &str, status: u16, headers: &[(&str, &str)], body: &str) -> String {
        let (ok, reason) = judge(src, status, headers, body);
        assert!(!ok, "{src} should fail: {reason}");
        reason
    }

    #[test]
    fn status_comparisons() {
        assert_eq!(pass("status == 200", 200, &[], ""), "status 200 == 200");
        assert_eq!(fail("status == 200", 503, &[], ""), "status 503 != 200");
        assert_eq!(pass("status != 500", 200, &[], ""), "status 200 != 500");
        assert_eq!(fail("status != 500", 500, &[], ""), "status 500 == 500");
        assert_eq!(pass("status < 400", 399, &[], ""), "status 399 < 400");
        assert_eq!(fail("status < 400", 400, &[], ""), "status 400 >= 400");
        assert_eq!(pass("status <= 400", 400, &[], ""), "status 400 <= 400");
        assert_eq!(fail("status <= 400", 401, &[], ""), "status 401 > 400");
        assert_eq!(pass("status > 199", 200, &[], ""), "status 200 > 199");
        assert_eq!(fail("status > 199", 199, &[], ""), "status 199 <= 199");
        assert_eq!(pass("status >= 200", 200, &[], ""), "status 200 >= 200");
        assert_eq!(fail("status >= 200", 101, &[], ""), "status 101 < 200");
    }

    #[test]
    fn status_ranges_and_lists_are_inclusive() {
        assert_eq!(pass("status in 200..399", 200, &[], ""), "status 200 in 200..399");
        assert_eq!(pass("status in 200..399", 399, &[], ""), "status 399 in 200..399");
        assert_eq!(fail("status in 200..399", 503, &[], ""), "status 503 not in 200..399");
        assert_eq!(fail("status in 200..399", 199, &[], ""), "status 199 not in 200..399");
        assert_eq!(pass("status in [200, 204]", 204, &[], ""), "status 204 in [200, 204]");
        assert_eq!(fail("status in [200, 204]", 201, &[], ""), "status 201 not in [200, 204]");
        assert_eq!(pass("status in [200, 300..399]", 302, &[], ""), "status 302 in [200, 300..399]");
    }

    #[test]
    fn headers_ignore_name_case_and_join_repeated_lines() {
        let h = [("X-Status", "UP"), ("x-multi", "a"), ("X-MULTI", "b")];
        assert_eq!(pass(r#"header("x-status") exists"#, 200, &h, ""), "header x-status is present");
        assert_eq!(fail(r#"header("X-Gone") exists"#, 200, &h, ""), "header X-Gone is absent");
        assert_eq!(pass(r#"header("X-Status") == "UP""#, 200, &h, ""), r#"header X-Status is "UP""#);
        assert_eq!(fail(r#"header("X-Status") == "up""#, 200, &h, ""), r#"header X-Status is "UP", not "up""#);
        assert_eq!(pass(r#"header("X-Status") != "DOWN""#, 200, &h, ""), r#"header X-Status is "UP", not "DOWN""#);
        assert_eq!(fail(r#"header("X-Status") != "UP""#, 200, &h, ""), r#"header X-Status is "UP""#);
        assert_eq!(pass(r#"header("x-multi") == "a, b""#, 200, &h, ""), r#"header x-multi is "a, b""#);
        assert_eq!(pass(r#"header("x-multi") contains "b""#, 200, &h, ""), r#"header x-multi contains "b""#);
        assert_eq!(pass(r#"header("x-multi") starts_with "a,""#, 200, &h, ""), r#"header x-multi starts with "a,""#);
        assert_eq!(fail(r#"header("x-multi") ends_with "a""#, 200, &h, ""), r#"header x-multi "a, b" does not end with "a""#);
        assert_eq!(fail(r#"header("x-status") contains "DOWN""#, 200, &h, ""), r#"header x-status "UP" does not contain "DOWN""#);
        assert_eq!(fail(r#"header("x-status") starts_with "D""#, 200, &h, ""), r#"header x-status "UP" does not start with "D""#);
        assert_eq!(pass(r#"header("x-status") ends_with "P""#, 200, &h, ""), r#"header x-status ends with "P""#);
    }

    #[test]
    fn an_absent_header_is_unequal_to_everything_and_contains_nothing() {
        for op in ["==", "contains", "starts_with", "ends_with"] {
            assert_eq!(fail(&format!(r#"header("x") {op} """#), 200, &[], ""), "header x is absent");
        }
        assert_eq!(pass(r#"header("x") != "v""#, 200, &[], ""), "header x is absent");
    }

    #[test]
    fn body_operators() {
        let body = r#"{"status":"UP"}"#;
        assert_eq!(pass(r#"body contains "UP""#, 200, &[], body), r#"body contains "UP""#);
        assert_eq!(fail(r#"body contains "DOWN""#, 200, &[], body), r#"body does not contain "DOWN""#);
        assert_eq!(pass(r#"body == "{\"status\":\"UP\"}""#, 200, &[], body), r#"body is "{\"status\":\"UP\"}""#);
        assert_eq!(fail(r#"body == "UP""#, 200, &[], body), r#"body is not "UP""#);
        assert_eq!(pass(r#"body != "UP""#, 200, &[], body), r#"body is not "UP""#);
        assert_eq!(fail(r#"body != """#, 200, &[], ""), r#"body is """#);
        assert_eq!(pass(r#"body starts_with "{""#, 200, &[], body), r#"body starts with "{""#);
        assert_eq!(fail(r#"body starts_with "[""#, 200, &[], body), r#"body does not start with "[""#);
        assert_eq!(pass(r#"body ends_with "}""#, 200, &[], body), r#"body ends with "}""#);
        assert_eq!(fail(r#"body ends_with "]""#, 200, &[], body), r#"body does not end with "]""#);
        assert_eq!(pass(r#"body contains """#, 200, &[], ""), r#"body contains """#);
    }

    #[test]
    fn reasons_say_which_part_decided() {
        let e = r#"status in 200..399 and body contains "UP""#;
        assert_eq!(fail(e, 503, &[], "UP"), "status 503 not in 200..399");
        assert_eq!(fail(e, 200, &[], "DOWN"), r#"body does not contain "UP""#);
        assert_eq!(pass(e, 200, &[], "UP"), r#"status 200 in 200..399 and body contains "UP""#);
        let e = r#"status == 200 or header("x-ok") exists"#;
        assert_eq!(pass(e, 500, &[("x-ok", "")], ""), "header x-ok is present");
        assert_eq!(fail(e, 500, &[], ""), "status 500 != 200 and header x-ok is absent");
        let e = r#"status < 500 and not body contains "maintenance""#;
        assert_eq!(fail(e, 200, &[], "in maintenance"), r#"body contains "maintenance""#);
        assert_eq!(pass(e, 200, &[], "ok"), r#"status 200 < 500 and body does not contain "maintenance""#);
    }

    #[test]
    fn long_values_are_cut_in_reasons() {
        let long = "x".repeat(100);
        let reason = fail(r#"header("a") == "y""#, 200, &[("a", &long)], "");
        assert_eq!(reason, format!("header a is \"{}\"…, not \"y\"", "x".repeat(64)));
    }
}
