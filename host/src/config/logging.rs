//! `[access_log]` and `[log]`: raw form, checked form and the checks, kept together.
//!
//! The access-log format is httpd's `LogFormat` vocabulary, parsed here into
//! [`LogItem`]s so a typo is a config error naming the directive; `observe` renders them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::locate::Seg;
use super::problems::{Problems, key};
use super::units::DurationValue;

/// httpd's `common` log format.
pub const COMMON: &str = r#"%h %l %u %t "%r" %>s %b"#;
/// httpd's `combined` log format, the default.
pub const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;

/// `access_log.flush` when not set: a busy proxy's lines go out about ten times a second, in
/// large writes, and a quiet one's within a tenth of a second of their requests.
const DEFAULT_FLUSH: Duration = Duration::from_millis(100);
/// The longest `access_log.flush`: lines held longer would be lost in bulk by a crash.
const MAX_FLUSH: Duration = Duration::from_secs(10);

/// `[access_log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccessLog {
    pub path: Option<String>,
    pub format: Option<String>,
    pub buffer: Option<u32>,
    pub flush: Option<DurationValue>,
    pub request_id: Option<bool>,
}

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub format: Option<String>,
}

/// `[access_log]`: one line per answered request, written off the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    /// Where lines go.
    pub target: LogTarget,
    /// How a line looks.
    pub format: AccessFormat,
    /// Lines queued for the writer before new ones are dropped (and counted).
    pub buffer: usize,
    /// Longest a line waits before the writer writes it out while lines keep coming (zero:
    /// written as soon as it is queued).
    pub flush: Duration,
    /// Forward and log an `X-Request-Id`: a trusted peer's is kept, else one is made.
    pub request_id: bool,
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error.
    Stderr,
    /// A file, appended to; reopened on SIGUSR1 (after logrotate moved it).
    File(PathBuf),
}

/// The shape of an access-log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessFormat {
    /// An httpd `LogFormat` string (`combined` and `common` are names for two of them).
    Text(Vec<LogItem>),
    /// One JSON object per line with every field the proxy knows.
    Json,
}

/// One piece of an httpd-style log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogItem {
    /// Text as written (`%%` is one `%`).
    Literal(String),
    /// `%h`, `%a`: the client's address.
    ClientIp,
    /// `%l`, `%u`: always `-` (no identd, no authentication).
    Dash,
    /// `%t`: the time the request arrived, `[06/Dec/2026:10:00:00 +0000]`.
    Time,
    /// `%r`: the request line as the client sent it.
    RequestLine,
    /// `%m`
    Method,
    /// `%U`: the path as sent, without the query.
    Path,
    /// `%q`: `?` and the query, or nothing.
    Query,
    /// `%H`: the protocol (`HTTP/1.1`, `HTTP/2.0`).
    Protocol,
    /// `%s`, `%>s`: the status sent to the client.
    Status,
    /// `%b`: body bytes sent, `-` for none.
    BytesClf,
    /// `%B`, `%O`: body bytes sent.
    BytesOut,
    /// `%I`: request body bytes received.
    BytesIn,
    /// `%D`: microseconds from the request's arrival to the end of its answer.
    Micros,
    /// `%T`: the same in whole seconds.
    Seconds,
    /// `%L`: the request id.
    RequestId,
    /// `%{Name}i`: a request header.
    RequestHeader(HeaderName),
    /// `%{Name}o`: a response header.
    ResponseHeader(HeaderName),
}

/// `[log]`: how the proxy's own log lines look (`RUST_LOG` still picks what is logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

pub(crate) fn access_log(raw: Option<&RawAccessLog>, base_dir: &Path, p: &mut Problems) -> Option<AccessLog> {
    let raw = raw?;
    let here = [Seg::Key("access_log".into())];
    let target = match raw.path.as_deref() {
        None | Some("") => {
            p.push(&key(&here, "path"), "give a file, or \"stderr\"");
            return None;
        }
        Some("stderr") => LogTarget::Stderr,
        Some(path) => LogTarget::File(base_dir.join(path)),
    };
    let format = match raw.format.as_deref().unwrap_or("combined") {
        "json" => AccessFormat::Json,
        "combined" => AccessFormat::Text(parse_format(COMBINED).unwrap_or_default()),
        "common" => AccessFormat::Text(parse_format(COMMON).unwrap_or_default()),
        text => match parse_format(text) {
            Ok(items) => AccessFormat::Text(items),
            Err(e) => {
                p.push(&key(&here, "format"), e);
                return None;
            }
        },
    };
    let buffer = raw.buffer.unwrap_or(8192);
    if buffer == 0 {
        p.push(&key(&here, "buffer"), "must be at least 1");
    }
    let flush = raw.flush.map_or(DEFAULT_FLUSH, |d| d.0);
    if flush > MAX_FLUSH {
        p.push(&key(&here, "flush"), "must be at most 10s");
    }
    Some(AccessLog { target, format, buffer: buffer as usize, flush, request_id: raw.request_id.unwrap_or(true) })
}

pub(crate) fn log(raw: &RawLog, p: &mut Problems) -> LogFormat {
    match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            p.push(&[Seg::Key("log".into()), Seg::Key("format".into())], format!("`{other}`: give \"text\" or \"json\""));
            LogFormat::Text
        }
    }
}

/// Parses an httpd `LogFormat` string.
pub fn parse_format(text: &str) -> Result<Vec<LogItem>, String> {
    let mut items = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        // httpd's conditions (`%400,501{…}i`) and `<`/`>` modifiers: only `%>s` is taken.
        let mut arg: Option<String> = None;
        if chars.peek() == Some(&'>') {
            chars.next();
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(ch) => name.push(ch),
                    None => return Err(format!("`%{{{name}` is not closed by `}}`")),
                }
            }
            arg = Some(name);
        }
        let Some(directive) = chars.next() else { return Err("the format ends with a lone `%`".into()) };
        let item = match (directive, arg) {
            ('%', None) => {
                literal.push('%');
                continue;
            }
            ('h' | 'a', None) => LogItem::ClientIp,
            ('l' | 'u', None) => LogItem::Dash,
            ('t', None) => LogItem::Time,
            ('r', None) => LogItem::RequestLine,
            ('m', None) => LogItem::Method,
            ('U', None) => LogItem::Path,
            ('q', None) => LogItem::Query,
            ('H', None) => LogItem::Protocol,
            ('s', None) => LogItem::Status,
            ('b', None) => LogItem::BytesClf,
            ('B' | 'O', None) => LogItem::BytesOut,
            ('I', None) => LogItem::BytesIn,
            ('D', None) => LogItem::Micros,
            ('T', None) => LogItem::Seconds,
            ('L', None) => LogItem::RequestId,
            (d @ ('i' | 'o'), Some(name)) => {
                let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`%{{{name}}}{d}`: `{name}` is not a header name"))?;
                if d == 'i' { LogItem::RequestHeader(header) } else { LogItem::ResponseHeader(header) }
            }
            (d, Some(name)) => return Err(format!("`%{{{name}}}{d}` is not supported (supported with a name: %{{Header}}i, %{{Header}}o)")),
            (d, None) => {
                return Err(format!("`%{d}` is not supported (supported: %h %a %l %u %t %r %m %U %q %H %s %>s %b %B %O %I %D %T %L %{{Header}}i %{{Header}}o %%)"));
            }
        };
        if !literal.is_empty() {
            items.push(LogItem::Literal(std::mem::take(&mut literal)));
        }
        items.push(item);
    }
    if !literal.is_empty() {
        items.push(LogItem::Literal(literal));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_parses_into_its_directives() {
        let items = parse_format(COMBINED).expect("combined");
        assert_eq!(items[0], LogItem::ClientIp);
        assert!(items.contains(&LogItem::RequestHeader(HeaderName::from_static("user-agent"))));
        assert_eq!(items.iter().filter(|i| matches!(i, LogItem::Literal(_))).count(), 9);
        assert_eq!(parse_format("100%% %D").expect("ok"), [LogItem::Literal("100% ".into()), LogItem::Micros]);
    }

    #[test]
    fn unknown_directives_are_named() {
        assert!(parse_format("%Z").expect_err("unknown").contains("`%Z` is not supported"));
        assert!(parse_format("%{x}e").expect_err("env").contains("`%{x}e` is not supported"));
        assert!(parse_format("%{bad name}i").expect_err("name").contains("not a header name"));
        assert!(parse_format("%{open").expect_err("open").contains("not closed"));
        assert!(parse_format("x %").expect_err("lone").contains("lone"));
    }
}
