//! `export_health_check!` and the forwarders it expands to.

use super::{Slot, with};
use crate::header::Header;
use crate::health_check::{HealthCheck, HttpResponse, HttpVersion, Member, Outcome, Probe, Verdict};
pub use crate::wit::health_check::exports::switchyard::plugin::health_check as wit;
pub use wit::Guest;

/// `configure`: builds the plugin value from its JSON config and stores it.
pub fn configure<T: HealthCheck>(slot: &'static Slot<T>, json: String) -> Result<(), String> {
    super::store(slot, &json, T::configure)
}

/// `describe-probe`: the probe to send to a member.
pub fn probe<T: HealthCheck>(slot: &'static Slot<T>, member: wit::Member) -> wit::Probe {
    let member = from_member(member);
    match with(slot, |hc: &mut T| hc.probe(&member)) {
        Probe::Tcp => wit::Probe::Tcp,
        Probe::Http(p) => wit::Probe::Http(wit::HttpProbe {
            method: p.method,
            path: p.path,
            version: match p.version {
                HttpVersion::Http10 => wit::HttpVersion::Http10,
                HttpVersion::Http11 => wit::HttpVersion::Http11,
            },
            headers: p.headers.into_iter().map(|h| wit::Header { name: h.name, value: h.value }).collect(),
            body_limit: p.body_limit,
        }),
    }
}

/// `judge`: the verdict on a probe's outcome.
pub fn judge<T: HealthCheck>(slot: &'static Slot<T>, member: wit::Member, outcome: wit::Outcome) -> wit::Verdict {
    let member = from_member(member);
    let outcome = match outcome {
        wit::Outcome::Connected => Outcome::Connected,
        wit::Outcome::Failed(why) => Outcome::Failed(why),
        wit::Outcome::Response(r) => Outcome::Response(HttpResponse {
            status: r.status,
            headers: r.headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect(),
            body: r.body,
        }),
    };
    let Verdict { healthy, reason } = with(slot, |hc: &mut T| hc.judge(&member, &outcome));
    wit::Verdict { healthy, reason }
}

fn from_member(m: wit::Member) -> Member {
    Member { url: m.url, host: m.host, port: m.port, base_path: m.base_path }
}

/// Exports a type implementing [`HealthCheck`] as the plugin's
/// `health-check` interface. Use it once, at the top level of the plugin crate. It expands to
/// nothing when the crate is built natively (for `cargo test`).
#[macro_export]
macro_rules! export_health_check {
    ($ty:ty) => {
        $crate::__export_world!($ty, health_check, health_check, __export_health_check_world, {
            fn describe_probe(member: glue::wit::Member) -> glue::wit::Probe {
                glue::probe::<$ty>(&SLOT, member)
            }
            fn judge(member: glue::wit::Member, outcome: glue::wit::Outcome) -> glue::wit::Verdict {
                glue::judge::<$ty>(&SLOT, member, outcome)
            }
        });
    };
}
