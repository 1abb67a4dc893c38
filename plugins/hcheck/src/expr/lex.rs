//! The lexer: expression text to tokens, each with its byte offset for error messages.

use super::ExprError;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// A word: a keyword (`status`, `and`, `contains`, …) or a misspelling of one.
    Word(&'a str),
    /// A run of digits, validated by the parser.
    Int(&'a str),
    /// A double-quoted string, escapes resolved.
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    DotDot,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `!`
    Bang,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
}

/// A token and where it is in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    pub(crate) tok: Tok<'a>,
    /// Byte offset of its first character.
    pub(crate) at: usize,
    /// The source text it came from.
    pub(crate) text: &'a str,
}

/// Splits `src` into tokens, up to the first error if there is one. The parser reports that
/// error only when it gets that far, so a mistake it can explain in context (`header(X-Ready)`:
/// a name without quotes) is reported as such.
pub(crate) fn lex(src: &str) -> (Vec<Token<'_>>, Option<ExprError>) {
    let mut tokens = Vec::new();
    let error = lex_into(src, &mut tokens).err();
    (tokens, error)
}

fn lex_into<'a>(src: &'a str, tokens: &mut Vec<Token<'a>>) -> Result<(), ExprError> {
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let tok = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => one(&mut i, Tok::LParen),
            b')' => one(&mut i, Tok::RParen),
            b'[' => one(&mut i, Tok::LBracket),
            b']' => one(&mut i, Tok::RBracket),
            b',' => one(&mut i, Tok::Comma),
            b'.' if bytes.get(i + 1) == Some(&b'.') => two(&mut i, Tok::DotDot),
            b'=' if bytes.get(i + 1) == Some(&b'=') => two(&mut i, Tok::Eq),
            b'!' if bytes.get(i + 1) == Some(&b'=') => two(&mut i, Tok::Ne),
            b'<' if bytes.get(i + 1) == Some(&b'=') => two(&mut i, Tok::Le),
            b'>' if bytes.get(i + 1) == Some(&b'=') => two(&mut i, Tok::Ge),
            b'&' if bytes.get(i + 1) == Some(&b'&') => two(&mut i, Tok::AndAnd),
            b'|' if bytes.get(i + 1) == Some(&b'|') => two(&mut i, Tok::OrOr),
            b'!' => one(&mut i, Tok::Bang),
            b'<' => one(&mut i, Tok::Lt),
            b'>' => one(&mut i, Tok::Gt),
            b'=' => return Err(ExprError::at(start, "unexpected `=` (did you mean `==`?)")),
            b'&' => return Err(ExprError::at(start, "unexpected `&` (did you mean `&&`?)")),
            b'|' => return Err(ExprError::at(start, "unexpected `|` (did you mean `||`?)")),
            b'.' => return Err(ExprError::at(start, "unexpected `.` (did you mean `..`?)")),
            b'"' => {
                let (s, end) = string(src, start)?;
                i = end;
                Tok::Str(s)
            }
            b'0'..=b'9' => {
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if i < bytes.len() && is_word_byte(bytes[i]) {
                    return Err(ExprError::at(start, format!("`{}` is not a number", word_at(src, start))));
                }
                Tok::Int(&src[start..i])
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                Tok::Word(&src[start..i])
            }
            _ => {
                let c = src[start..].chars().next().unwrap_or('?');
                return Err(ExprError::at(start, format!("unexpected character `{c}`")));
            }
        };
        tokens.push(Token { tok, at: start, text: &src[start..i] });
    }
    Ok(())
}

fn one<'a>(i: &mut usize, tok: Tok<'a>) -> Tok<'a> {
    *i += 1;
    tok
}

fn two<'a>(i: &mut usize, tok: Tok<'a>) -> Tok<'a> {
    *i += 2;
    tok
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The word (letters, digits, `_`) starting at `start`, for messages.
fn word_at(src: &str, start: usize) -> &str {
    let end = src[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(src.len(), |n| start + n);
    &src[start..end]
}

/// A string starting at the `"` at `start`: its value and the offset just past its closing
/// quote. Only `\"` and `\\` are escapes.
fn string(src: &str, start: usize) -> Result<(String, usize), ExprError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((n, c)) = chars.next() {
        match c {
            '"' => return Ok((out, start + 1 + n + 1)),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                Some((_, e)) => {
                    return Err(ExprError::at(
                        start + 1 + n,
                        format!("unknown escape `\\{e}` in a string (only `\\\"` and `\\\\` are escapes)"),
                    ));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(ExprError::at(start, "unterminated string (a `\"` without its closing `\"`)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok<'_>> {
        let (tokens, error) = lex(src);
        assert_eq!(error, None);
        tokens.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens_before_an_error_are_kept() {
        let (tokens, error) = lex("header(X-Ready)");
        assert_eq!(tokens.len(), 3);
        assert_eq!(error, Some(ExprError::at(8, "unexpected character `-`")));
    }

    #[test]
    fn every_token() {
        use Tok::*;
        assert_eq!(
            toks(r#"( ) [ ] , .. == != < <= > >= ! && || status 200 "a\"b\\c" starts_with"#),
            [
                LParen, RParen, LBracket, RBracket, Comma, DotDot, Eq, Ne, Lt, Le, Gt, Ge, Bang, AndAnd, OrOr,
                Word("status"), Int("200"), Str(r#"a"b\c"#.into()), Word("starts_with"),
            ]
        );
    }

    #[test]
    fn tight_spacing() {
        use Tok::*;
        assert_eq!(toks("status in 200..399"), [Word("status"), Word("in"), Int("200"), DotDot, Int("399")]);
        assert_eq!(toks("!(status>=500)"), [Bang, LParen, Word("status"), Ge, Int("500"), RParen]);
        assert_eq!(toks("[200,204]"), [LBracket, Int("200"), Comma, Int("204"), RBracket]);
    }

    #[test]
    fn offsets_are_bytes_and_text_is_the_source() {
        let (t, _) = lex(r#"body == "é" and"#);
        assert_eq!(t[2].at, 8);
        assert_eq!(t[2].text, "\"é\"");
        assert_eq!(t[3].at, 13);
    }

    #[test]
    fn errors() {
        let err = |src| lex(src).1.expect(src);
        assert_eq!(err("status = 200"), ExprError::at(7, "unexpected `=` (did you mean `==`?)"));
        assert_eq!(err("a & b").message, "unexpected `&` (did you mean `&&`?)");
        assert_eq!(err("a | b").message, "unexpected `|` (did you mean `||`?)");
        assert_eq!(err("200.399").message, "unexpected `.` (did you mean `..`?)");
        assert_eq!(err("body == \"abc"), ExprError::at(8, "unterminated string (a `\"` without its closing `\"`)"));
        assert_eq!(err(r#"body == "a\nb""#), ExprError::at(10, r#"unknown escape `\n` in a string (only `\"` and `\\` are escapes)"#));
        assert_eq!(err("body == \"a\\"), ExprError::at(8, "unterminated string (a `\"` without its closing `\"`)"));
        assert_eq!(err("status == 2xx"), ExprError::at(10, "`2xx` is not a number"));
        assert_eq!(err("status ~ 2"), ExprError::at(7, "unexpected character `~`"));
        assert_eq!(err("é"), ExprError::at(0, "unexpected character `é`"));
    }
}
