//! The glue between the generated component exports and a plugin's [`LbMethod`] value.
//!
//! `export_lbmethod!` expands to a thread-local slot holding the plugin value and an
//! implementation of the generated `Guest` trait that forwards to the functions here. A Wasm
//! instance is single-threaded, so the slot is only ever touched by one call at a time.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::config::Config;
use crate::lbmethod::{Candidates, LbMethod, MemberInfo, Request};
use crate::wit::exports::switchyard::plugin::lbmethod as wit;

/// Where an exported plugin keeps its value between calls.
pub(crate) type Slot<T> = LocalKey<RefCell<Option<T>>>;


/// Forwarders from the generated exports to [`LbMethod`].
pub mod lbmethod {
    use super::*;
    pub use super::wit::Guest;

    /// `configure`: builds the plugin value from its JSON config and stores it.
    pub fn configure<T: LbMethod>(slot: &'static Slot<T>, json: String) -> Result<(), String> {
        let config = Config::from_json(&json)?;
        let method = T::configure(&config)?;
        slot.with(|s| *s.borrow_mut() = Some(method));
        Ok(())
    }

    /// `reset`: hands the member list to the plugin.
    pub fn reset<T: LbMethod>(slot: &'static Slot<T>, members: Vec<wit::MemberInfo>) {
        let members: Vec<MemberInfo> = members
            .into_iter()
            .map(|m| MemberInfo { url: m.url, route: m.route, lbset: m.lbset })
            .collect();
        with_method(slot, |m| m.reset(&members));
    }

    /// `pick`: the hot path.
    pub fn pick<T: LbMethod>(slot: &'static Slot<T>, key: u64, c: wit::Candidates) -> Option<wit::Decision> {
        let view = view(&c);
        with_method(slot, |m| m.pick(Request { key }, &view)).map(|d| wit::Decision {
            // An index that does not fit is out of range anyway; the host refuses it.
            chosen: u32::try_from(d.chosen).unwrap_or(u32::MAX),
            lbstatus_delta: d.lbstatus_delta,
        })
    }

    /// `sticky-hit`: lbstatus bookkeeping for a request a sticky session routed.
    pub fn sticky_hit<T: LbMethod>(slot: &'static Slot<T>, usable: wit::Candidates, chosen: u32) -> Vec<i64> {
        let view = view(&usable);
        with_method(slot, |m| m.sticky_hit(&view, chosen as usize))
    }

    fn view(c: &wit::Candidates) -> Candidates<'_> {
        Candidates::from_columns(c.count as usize, &c.values)
    }

    fn with_method<T: LbMethod, R>(slot: &'static Slot<T>, f: impl FnOnce(&mut T) -> R) -> R {
        slot.with(|s| {
            let mut s = s.borrow_mut();
            // The host always calls `configure` first; reaching this is a host bug, and a
            // trap is the right answer to it.
            #[allow(clippy::expect_used)]
            let method = s.as_mut().expect("switchyard: lbmethod called before configure");
            f(method)
        })
    }
}

/// Exports a type implementing [`LbMethod`](crate::LbMethod) as the plugin's `lbmethod`
/// interface. Use it once, at the top level of the plugin crate. It expands to nothing when
/// the crate is built natively (for `cargo test`).
#[macro_export]
macro_rules! export_lbmethod {
    ($ty:ty) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            ::std::thread_local! {
                static SLOT: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            struct Export;
            impl $crate::__private::lbmethod::Guest for Export {
                fn configure(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::lbmethod::configure::<$ty>(&SLOT, config)
                }
                fn reset(members: ::std::vec::Vec<$crate::wit::exports::switchyard::plugin::lbmethod::MemberInfo>) {
                    $crate::__private::lbmethod::reset::<$ty>(&SLOT, members)
                }
                fn pick(
                    key: u64,
                    candidates: $crate::wit::exports::switchyard::plugin::lbmethod::Candidates,
                ) -> ::core::option::Option<$crate::wit::exports::switchyard::plugin::lbmethod::Decision> {
                    $crate::__private::lbmethod::pick::<$ty>(&SLOT, key, candidates)
                }
                fn sticky_hit(
                    usable: $crate::wit::exports::switchyard::plugin::lbmethod::Candidates,
                    chosen: u32,
                ) -> ::std::vec::Vec<i64> {
                    $crate::__private::lbmethod::sticky_hit::<$ty>(&SLOT, usable, chosen)
                }
            }
            $crate::wit::__export_lbmethod_world!(Export with_types_in $crate::wit);
        };
    };
}
