//! `key=value` parameters of `BalancerMember`, `ProxyPass` and `ProxySet`: which Switchyard
//! key each becomes, in which unit.

use super::Severity;
use super::model::Value;

/// Where a parameter goes.
pub(crate) enum Param {
    /// A member's (or a single backend's) key.
    Member(&'static str, Value),
    /// A balancer's key.
    Balancer(&'static str, Value),
    /// `hcexpr=NAME`: a `ProxyHCExpr` to look up.
    HcExpr(String),
    /// Not carried over as is.
    Note(Severity, String),
}

/// httpd seconds (or `NNNms`) as a Switchyard duration.
pub(crate) fn seconds(v: &str) -> Option<Value> {
    if let Some(ms) = v.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(|ms| Value::Str(format!("{ms}ms")));
    }
    v.parse::<u64>().ok().map(|s| Value::Int(s as i64))
}

/// httpd milliseconds (`acquire`) as a Switchyard duration.
fn millis(v: &str) -> Option<Value> {
    v.parse::<u64>().ok().map(|ms| Value::Str(format!("{ms}ms")))
}

fn on_off(v: &str) -> Option<Value> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Some(Value::Bool(true)),
        "off" | "false" | "0" => Some(Value::Bool(false)),
        _ => None,
    }
}

/// One `key=value` parameter.
pub(crate) fn param(key: &str, value: &str) -> Param {
    let bad = || Param::Note(Severity::Untranslated, format!("`{key}={value}`: not a value this parameter takes"));
    let lower = key.to_ascii_lowercase();
    let member = |name: &'static str, v: Option<Value>| v.map_or_else(bad, |v| Param::Member(name, v));
    let balancer = |name: &'static str, v: Option<Value>| v.map_or_else(bad, |v| Param::Balancer(name, v));
    match lower.as_str() {
        "loadfactor" => member("loadfactor", value.parse::<f64>().ok().map(|f| if f.fract() == 0.0 { Value::Int(f as i64) } else { Value::Float(f) })),
        "lbset" => member("lbset", value.parse::<i64>().ok().map(Value::Int)),
        "route" => Param::Member("route", Value::Str(value.to_string())),
        "redirect" => Param::Member("redirect", Value::Str(value.to_string())),
        "status" => Param::Member("status", Value::Str(value.to_ascii_uppercase())),
        "retry" => member("retry", seconds(value)),
        "timeout" => member("timeout", seconds(value)),
        "connectiontimeout" => member("connectiontimeout", seconds(value)),
        "ttl" => member("ttl", seconds(value)),
        "acquire" => member("acquire", millis(value)),
        "ping" => member("ping", seconds(value)),
        "max" => member("max", value.parse::<i64>().ok().map(Value::Int)),
        "upgrade" if value.eq_ignore_ascii_case("websocket") => Param::Member("upgrade", Value::Raw("[\"websocket\"]".into())),
        "upgrade" => Param::Note(Severity::Untranslated, format!("upgrade={value}: only websocket upgrades are supported")),
        "hcmethod" => Param::Member("hcmethod", Value::Str(value.to_string())),
        "hcuri" => Param::Member("hcuri", Value::Str(value.to_string())),
        "hcinterval" => member("hcinterval", seconds(value)),
        "hcpasses" => member("hcpasses", value.parse::<i64>().ok().map(Value::Int)),
        "hcfails" => member("hcfails", value.parse::<i64>().ok().map(Value::Int)),
        "hctemplate" => Param::Member("hctemplate", Value::Str(value.to_string())),
        "hcexpr" => Param::HcExpr(value.to_string()),
        "min" | "smax" => Param::Note(Severity::Different, format!("{key}: connections are opened on demand and closed after `ttl`; there is no minimum pool")),
        "keepalive" | "disablereuse" | "enablereuse" => Param::Note(Severity::Different, format!("{key}: member connections are always pooled and reused")),
        "flushpackets" | "flushwait" | "iobuffersize" | "receivebuffersize" | "responsefieldsize" => {
            Param::Note(Severity::Different, format!("{key}: bodies stream as they arrive; no buffer setting to carry over"))
        }
        "lbmethod" => match value.to_ascii_lowercase().as_str() {
            m @ ("byrequests" | "bytraffic" | "bybusyness") => Param::Balancer("lbmethod", Value::Str(m.to_string())),
            _ => Param::Note(Severity::Untranslated, format!("lbmethod={value}: the built-in methods are byrequests, bytraffic, bybusyness (or a plugin)")),
        },
        "maxattempts" => balancer("maxattempts", value.parse::<i64>().ok().map(Value::Int)),
        "nofailover" => balancer("nofailover", on_off(value)),
        "failontimeout" => balancer("failontimeout", on_off(value)),
        "forcerecovery" => balancer("forcerecovery", on_off(value)),
        "scolonpathdelim" => balancer("scolonpathdelim", on_off(value)),
        "stickysession" => Param::Balancer("stickysession", Value::Str(value.to_string())),
        "stickysessionsep" => Param::Balancer("stickysessionsep", Value::Str(value.to_string())),
        "failonstatus" => {
            let codes: Option<Vec<i64>> = value.split(',').map(|c| c.trim().parse::<i64>().ok()).collect();
            codes.map_or_else(bad, |c| Param::Balancer("failonstatus", Value::Raw(format!("[{}]", c.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")))))
        }
        "growth" => Param::Note(Severity::Different, "growth: members are added from the config (a reload), not into reserved slots".into()),
        "lbpername" | "stickysessionexpiry" | "secret" | "mapping" => Param::Note(Severity::Untranslated, format!("{key}: no Switchyard equivalent")),
        _ => Param::Note(Severity::Untranslated, format!("{key}: unknown parameter")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert!(matches!(param("timeout", "1"), Param::Member("timeout", Value::Int(1))));
        assert!(matches!(param("connectiontimeout", "500ms"), Param::Member("connectiontimeout", Value::Str(s)) if s == "500ms"));
        assert!(matches!(param("acquire", "300"), Param::Member("acquire", Value::Str(s)) if s == "300ms"));
        assert!(matches!(param("loadfactor", "3"), Param::Member("loadfactor", Value::Int(3))));
        assert!(matches!(param("loadfactor", "2.5"), Param::Member("loadfactor", Value::Float(_))));
        assert!(matches!(param("status", "+h"), Param::Member("status", Value::Str(s)) if s == "+H"));
        assert!(matches!(param("nofailover", "On"), Param::Balancer("nofailover", Value::Bool(true))));
        assert!(matches!(param("failonstatus", "502,503"), Param::Balancer("failonstatus", Value::Raw(s)) if s == "[502, 503]"));
        assert!(matches!(param("timeout", "soon"), Param::Note(Severity::Untranslated, _)));
        assert!(matches!(param("lbmethod", "heartbeat"), Param::Note(Severity::Untranslated, _)));
    }
}
