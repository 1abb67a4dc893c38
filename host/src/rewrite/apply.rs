//! Choosing the headers a rewriter sees, and checking and applying its edits.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{Edit, Header, PhaseInterest};

/// Headers no rewriter may touch: they frame the message or describe one connection (the
/// proxy owns them), or route it (Host).
const PROTECTED: [HeaderName; 9] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::HOST,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Why an edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditRefused {
    /// The name is not a valid header name.
    #[error("`{0}` is not a valid header name")]
    BadName(String),
    /// The value holds CR, LF, NUL or another control character.
    #[error("the value of `{0}` holds a control character (CR, LF, NUL...)")]
    BadValue(String),
    /// The header frames the message, describes the connection, or is Host.
    #[error("`{0}` is owned by the proxy (framing, hop-by-hop or Host)")]
    Protected(String),
}

/// The headers of `headers` that `interest` selects, or `None` when the rewriter is not to be
/// called at all.
pub fn selected_headers(interest: &PhaseInterest, headers: &HeaderMap) -> Option<Vec<Header>> {
    if interest.never() {
        return None;
    }
    let all = interest.all();
    let wanted = |name: &HeaderName| all || interest.headers.iter().any(|h| h.eq_ignore_ascii_case(name.as_str()));
    let seen: Vec<Header> = headers
        .iter()
        .filter(|(name, _)| wanted(name))
        .map(|(name, value)| Header { name: name.as_str().to_string(), value: String::from_utf8_lossy(value.as_bytes()).into_owned() })
        .collect();
    (interest.always || !seen.is_empty()).then_some(seen)
}

/// Checks `edit` and applies it to `headers`.
pub fn apply_edit(headers: &mut HeaderMap, edit: &Edit) -> Result<(), EditRefused> {
    match edit {
        Edit::Set(h) => {
            let (name, value) = checked(h)?;
            headers.insert(name, value);
        }
        Edit::Append(h) => {
            let (name, value) = checked(h)?;
            headers.append(name, value);
        }
        Edit::Remove(name) => {
            headers.remove(checked_name(name)?);
        }
    }
    Ok(())
}

fn checked(h: &Header) -> Result<(HeaderName, HeaderValue), EditRefused> {
    let name = checked_name(&h.name)?;
    // from_bytes refuses every control character but HTAB, so CR, LF and NUL among them.
    let value = HeaderValue::from_bytes(h.value.as_bytes()).map_err(|_| EditRefused::BadValue(name.to_string()))?;
    Ok((name, value))
}

fn checked_name(name: &str) -> Result<HeaderName, EditRefused> {
    let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| EditRefused::BadName(name.escape_debug().to_string()))?;
    if PROTECTED.contains(&parsed) {
        return Err(EditRefused::Protected(parsed.to_string()));
    }
    Ok(parsed)
}
