//! httpd's balancer-manager request shape at `/balancer-manager`, so scripts written for
//! httpd work unchanged: a thin translation onto the same [`Change`]s the JSON API makes,
//! behind the same protection.
//!
//! | httpd field | what |
//! | --- | --- |
//! | `b` | the balancer (required) |
//! | `w` | the member's URL: the `w_*` fields edit it |
//! | `w_lf`, `w_ls`, `w_wr`, `w_rr` | loadfactor, lbset, route, redirect |
//! | `w_status_X` (`0`/`1`) | clear or set flag X (D S I R H E N C) |
//! | `w_hm`, `w_hu`, `w_he`, `w_hi`, `w_hp`, `w_hf` | the health check's method, URI, expression, interval, passes, fails |
//! | `b_lbm` | the lbmethod (a default one's name) |
//! | `b_tmo`, `b_max`, `b_sforce`, `b_ss` | the balancer's timeout (seconds), maxattempts, nofailover, stickysession |
//! | `b_nwrkr` (with `b_wyes=1`) | add a member with this URL |
//!
//! Everything one request asks for is made as one change: all of it, or none.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::control::{Change, ControlError, LbMethodChoice, MemberChange, MemberRef};

/// The change the fields of one request ask for, and the balancer it is about.
pub(super) fn change(query: Option<&str>, body: &[u8]) -> Result<(String, Change), ControlError> {
    let mut fields = query.map(form).unwrap_or_default();
    if let Ok(text) = std::str::from_utf8(body) {
        fields.extend(form(text));
    }
    let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let balancer = get("b").ok_or_else(|| ControlError::Invalid("b (the balancer's name) is required".into()))?;
    let mut member = MemberChange::default();
    let mut settings = BTreeMap::new();
    let mut changes = Vec::new();
    let mut status = String::new();
    for (key, value) in &fields {
        match key.as_str() {
            "b" | "w" | "nonce" | "b_wyes" => {}
            "w_lf" => drop(member.keys.insert("loadfactor".into(), number(key, value)?)),
            "w_ls" => drop(member.keys.insert("lbset".into(), number(key, value)?)),
            "w_wr" => drop(member.keys.insert("route".into(), Value::String(value.clone()))),
            "w_rr" => drop(member.keys.insert("redirect".into(), Value::String(value.clone()))),
            k if k.starts_with("w_status_") => {
                let letter = &k["w_status_".len()..];
                match value.as_str() {
                    "1" => status.push_str(&format!("+{letter}")),
                    "0" => status.push_str(&format!("-{letter}")),
                    other => return Err(ControlError::Invalid(format!("{k} must be 0 or 1, got `{other}`"))),
                }
            }
            "b_lbm" => changes.push(Change::LbMethod { balancer: balancer.clone(), choice: LbMethodChoice::Builtin { name: value.clone(), config: json!({}) } }),
            "b_tmo" => drop(settings.insert("timeout".into(), Value::String(format!("{}s", number(key, value)?)))),
            "b_max" => drop(settings.insert("maxattempts".into(), number(key, value)?)),
            "b_sforce" => drop(settings.insert("nofailover".into(), Value::Bool(flag(key, value)?))),
            "b_ss" => drop(settings.insert("stickysession".into(), if value.is_empty() { Value::Null } else { Value::String(value.clone()) })),
            "b_nwrkr" if !value.is_empty() => {
                if get("b_wyes").as_deref() != Some("1") {
                    return Err(ControlError::Invalid("b_nwrkr adds a member only with b_wyes=1".into()));
                }
                let new = BTreeMap::from([("url".to_string(), Value::String(value.clone()))]);
                changes.push(Change::AddMember { balancer: balancer.clone(), member: new });
            }
            "b_nwrkr" => {}
            // An empty number is one the form left blank (a member not checked yet).
            "w_hi" | "w_hp" | "w_hf" if value.trim().is_empty() => {}
            "w_hm" => drop(member.keys.insert("hcmethod".into(), Value::String(value.clone()))),
            "w_hu" => drop(member.keys.insert("hcuri".into(), Value::String(value.clone()))),
            "w_he" => drop(member.keys.insert("hcexpr".into(), Value::String(value.clone()))),
            // httpd's interval is in seconds unless a unit is given; ours reads the same.
            "w_hi" => drop(member.keys.insert("hcinterval".into(), if value.trim().parse::<f64>().is_ok() { number(key, value)? } else { Value::String(value.clone()) })),
            "w_hp" => drop(member.keys.insert("hcpasses".into(), number(key, value)?)),
            "w_hf" => drop(member.keys.insert("hcfails".into(), number(key, value)?)),
            other => return Err(ControlError::Invalid(format!("unknown field `{other}`"))),
        }
    }
    if !status.is_empty() {
        member.status = Some(status);
    }
    let member_fields = !member.keys.is_empty() || member.status.is_some();
    match get("w") {
        Some(url) if member_fields => changes.push(Change::Member { balancer: balancer.clone(), member: MemberRef::Url(url), change: member }),
        None if member_fields => return Err(ControlError::Invalid("w (the member's URL) is required with w_* fields".into())),
        _ => {}
    }
    if !settings.is_empty() {
        changes.push(Change::Balancer { balancer: balancer.clone(), settings });
    }
    if changes.is_empty() {
        return Err(ControlError::Invalid("nothing to change".into()));
    }
    Ok((balancer, Change::Batch(changes)))
}

/// Whether a query asks for httpd's XML (`xml`, with any value, as httpd reads it).
pub(super) fn wants_xml(query: Option<&str>) -> bool {
    query.map(form).unwrap_or_default().iter().any(|(k, _)| k == "xml")
}

/// The first field of a query that asks for a change (anything but `b`, `w`, `nonce` and
/// httpd's `xml`), if any.
pub(super) fn edit_field(query: Option<&str>) -> Option<String> {
    query.map(form).unwrap_or_default().into_iter().map(|(k, _)| k).find(|k| !["b", "w", "nonce", "xml"].contains(&k.as_str()))
}

fn number(key: &str, value: &str) -> Result<Value, ControlError> {
    let n: f64 = value.trim().parse().ok().filter(|n: &f64| n.is_finite()).ok_or_else(|| ControlError::Invalid(format!("{key} `{value}` is not a number")))?;
    Ok(if n.fract() == 0.0 && n >= 0.0 { json!(n as u64) } else { json!(n) })
}

fn flag(key: &str, value: &str) -> Result<bool, ControlError> {
    match value {
        "1" | "On" | "on" => Ok(true),
        "0" | "Off" | "off" => Ok(false),
        other => Err(ControlError::Invalid(format!("{key} must be 0 or 1, got `{other}`"))),
    }
}

/// `application/x-www-form-urlencoded` pairs (also a query string), decoded.
pub(super) fn form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A percent-encoded (and `+` for space) string, decoded.
pub(super) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], crate::canon::escaped_byte(bytes, i)) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        assert_eq!(form("b=my+set&w=http%3A%2F%2Fn1%3A8080&x"), [("b".into(), "my set".into()), ("w".into(), "http://n1:8080".into()), ("x".into(), String::new())]);
        assert_eq!(form("a=%zz&b=%4"), [("a".into(), "%zz".into()), ("b".into(), "%4".into())]);
    }

    #[test]
    fn httpd_fields_become_one_batch() {
        let (b, change) = change(Some("b=web&w=http://n1:1&w_lf=2&w_status_D=1&w_status_S=0&b_max=3&nonce=x"), b"").expect("valid");
        assert_eq!(b, "web");
        let Change::Batch(changes) = change else { panic!("a batch") };
        assert_eq!(changes.len(), 2);
        let Change::Member { change, .. } = &changes[0] else { panic!("member first") };
        assert_eq!(change.status.as_deref(), Some("+D-S"));
        assert_eq!(change.keys["loadfactor"], json!(2));
        assert!(change_of("b=web&w_lf=2").unwrap_err().to_string().contains("w (the member's URL)"));
        assert!(change_of("b=web&w=u&w_status_D=2").unwrap_err().to_string().contains("0 or 1"));
        assert!(change_of("b=web&b_nwrkr=http://n:1").unwrap_err().to_string().contains("b_wyes"));
        assert!(change_of("w=u&w_lf=1").unwrap_err().to_string().contains("b (the balancer"));
        assert!(change_of("b=web&colour=1").unwrap_err().to_string().contains("unknown field"));
    }

    #[test]
    fn a_query_asking_for_a_change_is_told_from_one_that_looks() {
        assert_eq!(edit_field(Some("b=web&w=http://n1:1&nonce=x&w_lf=2")).as_deref(), Some("w_lf"));
        assert_eq!(edit_field(Some("b=web&w=http://n1:1&nonce=x")), None);
        assert_eq!(edit_field(None), None);
    }

    fn change_of(q: &str) -> Result<(String, Change), ControlError> {
        change(Some(q), b"")
    }
}
