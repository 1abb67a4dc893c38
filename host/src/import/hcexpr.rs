//! `ProxyHCExpr` (httpd's ap_expr) to Switchyard's `hcexpr`, for the shapes health checks use:
//! tests of `%{REQUEST_STATUS}` (comparisons, `in {…}`, a regex of leading digits such as
//! `/^[234]/`), `hc('body')` matched against a literal regex (`=~ /UP/`, `!~ /Maintenance/`),
//! joined by `&&`, `||`, `!` and parentheses. Anything else is refused with the reason, and
//! the importer reports it.

/// The Switchyard expression for ap_expr `text` (braces around it allowed).
pub(crate) fn translate(text: &str) -> Result<String, String> {
    let inner = text.trim();
    let inner = inner.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(inner);
    let tokens = lex(inner)?;
    let mut p = Parser { tokens, at: 0 };
    let out = p.or()?;
    if p.at != p.tokens.len() {
        return Err(format!("unexpected `{}`", p.tokens[p.at].text()));
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Var(String),
    Body,
    Regex(String),
    Str(String),
    Num(i64),
    Op(String),
    And,
    Or,
    Not,
    Open,
    Close,
    In,
    List(Vec<String>),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Var(v) => format!("%{{{v}}}"),
            Tok::Body => "hc('body')".into(),
            Tok::Regex(r) => format!("/{r}/"),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Num(n) => n.to_string(),
            Tok::Op(o) => o.clone(),
            Tok::And => "&&".into(),
            Tok::Or => "||".into(),
            Tok::Not => "!".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::In => "in".into(),
            Tok::List(_) => "{…}".into(),
        }
    }
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let rest = |i: usize| chars[i..].iter().collect::<String>();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let r = rest(i);
        if let Some(after) = r.strip_prefix("%{") {
            let end = after.find('}').ok_or("an unclosed %{")?;
            out.push(Tok::Var(after[..end].to_ascii_uppercase()));
            i += 2 + after[..end].chars().count() + 1;
        } else if r.starts_with("hc('body')") || r.starts_with("hc(\"body\")") {
            out.push(Tok::Body);
            i += 10;
        } else if c == '/' {
            let mut j = i + 1;
            let mut re = String::new();
            while j < chars.len() && chars[j] != '/' {
                if chars[j] == '\\' && j + 1 < chars.len() {
                    re.push(chars[j]);
                    j += 1;
                }
                re.push(chars[j]);
                j += 1;
            }
            if j >= chars.len() {
                return Err("an unclosed /regex/".into());
            }
            out.push(Tok::Regex(re));
            i = j + 1;
        } else if c == '\'' || c == '"' {
            let end = chars[i + 1..].iter().position(|&x| x == c).ok_or("an unclosed string")?;
            out.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if c == '{' {
            let end = chars[i..].iter().position(|&x| x == '}').ok_or("an unclosed {")?;
            let items = chars[i + 1..i + end].iter().collect::<String>();
            out.push(Tok::List(items.split(',').map(|s| s.trim().trim_matches(|q| q == '\'' || q == '"').to_string()).collect()));
            i += end + 1;
        } else if c.is_ascii_digit() {
            let digits: String = chars[i..].iter().take_while(|d| d.is_ascii_digit()).collect();
            i += digits.len();
            out.push(Tok::Num(digits.parse().map_err(|_| "a number too large")?));
        } else if r.starts_with("&&") {
            out.push(Tok::And);
            i += 2;
        } else if r.starts_with("||") {
            out.push(Tok::Or);
            i += 2;
        } else if let Some(op) = ["=~", "!~", "==", "!=", "<=", ">=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge"].iter().find(|op| r.starts_with(**op)) {
            out.push(Tok::Op(op.to_string()));
            i += op.len();
        } else if c == '!' {
            out.push(Tok::Not);
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if r.starts_with("in ") || r.starts_with("in{") || r == "in" {
            out.push(Tok::In);
            i += 2;
        } else {
            return Err(format!("`{}` is not supported", r.split_whitespace().next().unwrap_or(&r)));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<String, String> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { format!("({})", parts.join(" or ")) })
    }

    fn and(&mut self) -> Result<String, String> {
        let mut parts = vec![self.unary()?];
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { format!("({})", parts.join(" and ")) })
    }

    fn unary(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Tok::Not) => {
                self.at += 1;
                Ok(format!("not {}", self.unary()?))
            }
            Some(Tok::Open) => {
                self.at += 1;
                let inner = self.or()?;
                match self.next() {
                    Some(Tok::Close) => Ok(inner),
                    _ => Err("a `(` is not closed".into()),
                }
            }
            _ => self.test(),
        }
    }

    fn test(&mut self) -> Result<String, String> {
        match (self.next(), self.next(), self.next()) {
            (Some(Tok::Var(v)), Some(op), Some(rhs)) if v == "REQUEST_STATUS" => status(&op, &rhs),
            (Some(Tok::Body), Some(Tok::Op(op)), Some(Tok::Regex(re))) if op == "=~" || op == "!~" => {
                let literal = literal_regex(&re).ok_or_else(|| format!("/{re}/ is a pattern, not literal text: only `contains` tests on the body are supported"))?;
                let test = format!("body contains {}", quoted(&literal));
                Ok(if op == "!~" { format!("not {test}") } else { test })
            }
            (Some(Tok::Body), Some(Tok::Op(op)), Some(Tok::Str(s))) if op == "==" || op == "!=" => Ok(format!("body {op} {}", quoted(&s))),
            (Some(t), _, _) => Err(format!("`{}` tests are not supported (only %{{REQUEST_STATUS}} and hc('body'))", t.text())),
            _ => Err("an incomplete test".into()),
        }
    }
}

fn status(op: &Tok, rhs: &Tok) -> Result<String, String> {
    let cmp = |o: &str| match o {
        "==" | "-eq" => Some("=="),
        "!=" | "-ne" => Some("!="),
        "<" | "-lt" => Some("<"),
        "<=" | "-le" => Some("<="),
        ">" | "-gt" => Some(">"),
        ">=" | "-ge" => Some(">="),
        _ => None,
    };
    match (op, rhs) {
        (Tok::Op(o), Tok::Num(n)) => cmp(o).map(|c| format!("status {c} {n}")).ok_or_else(|| format!("`{o}` with a number")),
        (Tok::Op(o), Tok::Str(s)) => {
            let n: i64 = s.parse().map_err(|_| format!("'{s}' is not a status"))?;
            cmp(o).map(|c| format!("status {c} {n}")).ok_or_else(|| format!("`{o}` with a number"))
        }
        (Tok::In, Tok::List(items)) => {
            let codes: Result<Vec<i64>, _> = items.iter().map(|i| i.parse::<i64>()).collect();
            let codes = codes.map_err(|_| "a status list holds something else than codes".to_string())?;
            Ok(format!("status in [{}]", codes.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")))
        }
        (Tok::Op(o), Tok::Regex(re)) if o == "=~" || o == "!~" => {
            let test = status_regex(re).ok_or_else(|| format!("/{re}/: only patterns of leading status digits (/^[23]/, /^2/, /^200$/) are supported"))?;
            Ok(if o == "!~" { format!("not {test}") } else { test })
        }
        (o, r) => Err(format!("`%{{REQUEST_STATUS}} {} {}` is not supported", o.text(), r.text())),
    }
}

/// `^[234]`, `^2`, `^(2|3)`, `^5\d\d$`, `^200$` as a status test.
fn status_regex(re: &str) -> Option<String> {
    let body = re.strip_prefix('^')?;
    let anchored = body.ends_with('$');
    let body = body.trim_end_matches('$');
    if let Ok(code) = body.parse::<i64>()
        && (100..=999).contains(&code)
    {
        return Some(format!("status == {code}"));
    }
    let (first, tail) = if let Some(set) = body.strip_prefix('[') {
        let end = set.find(']')?;
        (set[..end].chars().collect::<Vec<char>>(), &set[end + 1..])
    } else if let Some(alt) = body.strip_prefix('(') {
        let end = alt.find(')')?;
        (alt[..end].split('|').map(|d| d.chars().next()).collect::<Option<Vec<char>>>()?, &alt[end + 1..])
    } else {
        let c = body.chars().next()?;
        (vec![c], &body[c.len_utf8()..])
    };
    // What may follow the first digit: nothing (unanchored), or two more digits.
    if !(tail.is_empty() && !anchored || matches!(tail, "\\d\\d" | "[0-9][0-9]" | "..")) {
        return None;
    }
    let mut digits = Vec::new();
    let mut chars = first.iter().peekable();
    while let Some(&c) = chars.next() {
        if chars.peek() == Some(&&'-') {
            chars.next();
            let &end = chars.next()?;
            for d in c..=end {
                digits.push(d.to_digit(10)?);
            }
        } else {
            digits.push(c.to_digit(10)?);
        }
    }
    digits.sort_unstable();
    digits.dedup();
    if digits.is_empty() || digits.contains(&0) {
        return None;
    }
    // Consecutive digits make one range.
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for d in digits {
        match ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == d => *hi = d,
            _ => ranges.push((d, d)),
        }
    }
    let items: Vec<String> = ranges.iter().map(|(lo, hi)| format!("{}..{}", lo * 100, hi * 100 + 99)).collect();
    Some(if items.len() == 1 { format!("status in {}", items[0]) } else { format!("status in [{}]", items.join(", ")) })
}

/// The text a regex matches when it is a plain literal (escapes of punctuation allowed).
fn literal_regex(re: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let e = chars.next()?;
                if e.is_ascii_alphanumeric() {
                    return None; // \d, \w…: a class, not a character
                }
                out.push(e);
            }
            '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => return None,
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shapes_health_checks_use() {
        let table = [
            ("{%{REQUEST_STATUS} =~ /^[234]/}", "status in 200..499"),
            ("{%{REQUEST_STATUS} =~ /^[5]/}", "status in 500..599"),
            ("%{REQUEST_STATUS} =~ /^2/", "status in 200..299"),
            ("%{REQUEST_STATUS} =~ /^[23]\\d\\d$/", "status in 200..399"),
            ("%{REQUEST_STATUS} =~ /^(2|4)/", "status in [200..299, 400..499]"),
            ("%{REQUEST_STATUS} =~ /^200$/", "status == 200"),
            ("%{REQUEST_STATUS} -eq 204", "status == 204"),
            ("%{REQUEST_STATUS} in {'200','204'}", "status in [200, 204]"),
            ("{hc('body') !~ /Under maintenance/}", "not body contains \"Under maintenance\""),
            ("hc('body') =~ /UP/ && %{REQUEST_STATUS} == 200", "(body contains \"UP\" and status == 200)"),
            ("!(%{REQUEST_STATUS} >= 500 || hc('body') =~ /down/)", "not (status >= 500 or body contains \"down\")"),
        ];
        for (ap, ours) in table {
            assert_eq!(translate(ap).as_deref(), Ok(ours), "{ap}");
        }
    }

    #[test]
    fn what_is_not_supported_says_why() {
        assert!(translate("%{REQUEST_URI} =~ /x/").unwrap_err().contains("REQUEST_URI"));
        assert!(translate("hc('body') =~ /U.P/").unwrap_err().contains("pattern"));
        assert!(translate("%{REQUEST_STATUS} =~ /^2[0-4]/").is_err());
        assert!(translate("file('/x') == 'y'").is_err());
    }
}
