//! `[[route]]`: prefixes and what they lead to.

use super::member::{connection, parse_member_url};
use super::{Problems, index, key};
use crate::config::locate::Seg;
use crate::config::model::{Member, Route, RouteTarget};
use crate::config::raw::RawRoute;

pub(super) fn routes(raw: &[RawRoute], balancer_names: &[&String], p: &mut Problems) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let here = index(&[Seg::Key("route".into())], i);
        if !r.path.starts_with('/') {
            p.push(&key(&here, "path"), format!("`{}` must start with /", r.path));
        }
        let targets = usize::from(r.backend.is_some()) + usize::from(r.balancer.is_some()) + usize::from(r.exclude);
        if targets != 1 {
            p.push(&here, "a route needs exactly one of backend, balancer or exclude = true");
            continue;
        }
        let has_connection_keys =
            r.timeout.is_some() || r.connectiontimeout.is_some() || r.max.is_some() || r.ttl.is_some() || r.acquire.is_some();
        if has_connection_keys && r.backend.is_none() {
            p.push(&here, "timeout, connectiontimeout, max, ttl and acquire apply to a single backend; set them on the balancer's members instead");
        }
        let target = if r.exclude {
            RouteTarget::Exclude
        } else if let Some(name) = &r.balancer {
            match balancer_names.iter().position(|n| *n == name) {
                Some(b) => RouteTarget::Balancer(b),
                None => {
                    p.push(&key(&here, "balancer"), format!("no [balancer.{name}] is defined"));
                    continue;
                }
            }
        } else {
            let url = r.backend.as_deref().unwrap_or_default();
            let connection = connection(
                &here,
                [r.timeout, r.connectiontimeout, r.ttl, r.acquire],
                r.max,
                p,
            );
            match parse_member_url(url) {
                Ok((authority, path)) => RouteTarget::Backend(Box::new(Member::single_backend(url, authority, path, connection))),
                Err(e) => {
                    p.push(&key(&here, "backend"), e);
                    continue;
                }
            }
        };
        out.push(Route { prefix: r.path.clone(), target, preserve_host: r.preserve_host });
    }
    out
}

