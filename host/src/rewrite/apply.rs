//! Choosing the headers a rewriter sees, and checking and applying its edits.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use switchyard_sdk::rules;

use super::{Edit, Header, PhaseInterest};

/// Why an edit was refused: an invalid name, a control character (CR, LF, NUL...) in the
/// value, or a header the proxy owns (framing, hop-by-hop, Host).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EditRefused(pub String);

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

/// Checks `edit` with the contract's rules (the ones the SDK's test harness applies) and
/// applies it to `headers`.
pub fn apply_edit(headers: &mut HeaderMap, edit: &Edit) -> Result<(), EditRefused> {
    let (name, value) = match edit {
        Edit::Set(h) | Edit::Append(h) => (h.name.as_str(), Some(h.value.as_str())),
        Edit::Remove(name) => (name.as_str(), None),
    };
    rules::check_edit(name, value).map_err(EditRefused)?;
    let refused = || EditRefused(format!("{name:?} cannot be used as a header"));
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| refused())?;
    let value = value.map(|v| HeaderValue::from_bytes(v.as_bytes()).map_err(|_| refused())).transpose()?;
    match (edit, value) {
        (Edit::Set(_), Some(value)) => {
            headers.insert(name, value);
        }
        (Edit::Append(_), Some(value)) => {
            headers.append(name, value);
        }
        _ => {
            headers.remove(name);
        }
    }
    Ok(())
}
