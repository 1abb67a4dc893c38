//! `export_lbmethod!` and the forwarders it expands to.

use super::{Slot, with};
use crate::completion::Completions;
use crate::lbmethod::{Candidates, LbMethod, MemberInfo, Request};
pub use crate::wit::lbmethod::exports::switchyard::plugin::lbmethod as wit;
pub use wit::Guest;

/// `configure`: builds the plugin value from its JSON config and stores it.
pub fn configure<T: LbMethod>(slot: &'static Slot<T>, json: String) -> Result<(), String> {
    super::store(slot, &json, T::configure)
}

/// `reset`: hands the member list to the plugin.
pub fn reset<T: LbMethod>(slot: &'static Slot<T>, members: Vec<wit::MemberInfo>) {
    let members: Vec<MemberInfo> =
        members.into_iter().map(|m| MemberInfo { url: m.url, route: m.route, lbset: m.lbset }).collect();
    with(slot, |m: &mut T| m.reset(&members));
}

/// `wants`: the method's interest.
pub fn wants<T: LbMethod>(slot: &'static Slot<T>) -> wit::Interest {
    with(slot, |m: &mut T| wit::Interest { completions: m.wants_completions(), plannable: m.plannable() })
}

/// `plan`: several picks at once, for a plannable method.
pub fn plan<T: LbMethod>(slot: &'static Slot<T>, c: wit::Candidates, picks: u32) -> wit::PlannedPicks {
    let view = view(&c);
    let plan = with(slot, |m: &mut T| m.plan(&view, picks as usize));
    wit::PlannedPicks {
        // An index that does not fit is out of range anyway; the host refuses the plan.
        chosen: plan.chosen.into_iter().map(|i| u32::try_from(i).unwrap_or(u32::MAX)).collect(),
        lbstatus_delta: plan.lbstatus_delta,
    }
}

/// `pick`: the hot path, with the completions first when the method asked for them.
pub fn pick<T: LbMethod>(slot: &'static Slot<T>, key: u64, c: wit::Candidates, feedback: Option<wit::Feedback>) -> Option<wit::Decision> {
    let view = view(&c);
    with(slot, |m: &mut T| {
        let now = match &feedback {
            Some(f) => {
                m.complete(&Completions::from_columns(f.count as usize, &f.values, f.missed));
                f.now
            }
            None => 0,
        };
        m.pick(Request { key, now }, &view)
    })
    .map(|d| wit::Decision {
        // An index that does not fit is out of range anyway; the host refuses it.
        chosen: u32::try_from(d.chosen).unwrap_or(u32::MAX),
        lbstatus_delta: d.lbstatus_delta,
    })
}

/// `sticky-hit`: lbstatus bookkeeping for a request a sticky session routed.
pub fn sticky_hit<T: LbMethod>(slot: &'static Slot<T>, usable: wit::Candidates, chosen: u32) -> Vec<i64> {
    let view = view(&usable);
    with(slot, |m: &mut T| m.sticky_hit(&view, chosen as usize))
}

fn view(c: &wit::Candidates) -> Candidates<'_> {
    Candidates::from_columns(c.count as usize, &c.values)
}

/// Exports a type implementing [`LbMethod`] as the plugin's `lbmethod`
/// interface. Use it once, at the top level of the plugin crate. It expands to nothing when
/// the crate is built natively (for `cargo test`).
#[macro_export]
macro_rules! export_lbmethod {
    ($ty:ty) => {
        $crate::__export_world!($ty, lbmethod, lbmethod, __export_lbmethod_world, {
            fn wants() -> glue::wit::Interest {
                glue::wants::<$ty>(&SLOT)
            }
            fn reset(members: ::std::vec::Vec<glue::wit::MemberInfo>) {
                glue::reset::<$ty>(&SLOT, members)
            }
            fn pick(
                key: u64,
                candidates: glue::wit::Candidates,
                feedback: ::core::option::Option<glue::wit::Feedback>,
            ) -> ::core::option::Option<glue::wit::Decision> {
                glue::pick::<$ty>(&SLOT, key, candidates, feedback)
            }
            fn plan(candidates: glue::wit::Candidates, picks: u32) -> glue::wit::PlannedPicks {
                glue::plan::<$ty>(&SLOT, candidates, picks)
            }
            fn sticky_hit(usable: glue::wit::Candidates, chosen: u32) -> ::std::vec::Vec<i64> {
                glue::sticky_hit::<$ty>(&SLOT, usable, chosen)
            }
        });
    };
}
