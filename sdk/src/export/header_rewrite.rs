//! `export_header_rewrite!` and the forwarders it expands to.

use super::{Slot, with};
use crate::header::Header;
use crate::header_rewrite::{Context, Edit, HeaderRewrite, Interest, PhaseInterest};
pub use crate::wit::header_rewrite::exports::switchyard::plugin::header_rewrite as wit;
pub use wit::Guest;

/// `configure`: builds the plugin value from its JSON config and stores it.
pub fn configure<T: HeaderRewrite>(slot: &'static Slot<T>, json: String) -> Result<(), String> {
    super::store(slot, &json, T::configure)
}

/// `wants`: which messages and headers the plugin wants (its interest).
pub fn interest<T: HeaderRewrite>(slot: &'static Slot<T>) -> wit::Interest {
    let Interest { request, response } = with(slot, |p: &mut T| p.interest());
    let phase = |p: PhaseInterest| wit::PhaseInterest { headers: p.headers, always: p.always };
    wit::Interest { request: phase(request), response: phase(response) }
}

/// `on-request`: edits for a request on its way to a member.
pub fn on_request<T: HeaderRewrite>(
    slot: &'static Slot<T>,
    context: wit::Context,
    method: String,
    path: String,
    headers: Vec<wit::Header>,
) -> Vec<wit::Edit> {
    let context = from_context(context);
    let headers = from_headers(headers);
    to_edits(with(slot, |p: &mut T| p.on_request(&context, &method, &path, &headers)))
}

/// `on-response`: edits for a response on its way to the client.
pub fn on_response<T: HeaderRewrite>(
    slot: &'static Slot<T>,
    context: wit::Context,
    status: u16,
    headers: Vec<wit::Header>,
) -> Vec<wit::Edit> {
    let context = from_context(context);
    let headers = from_headers(headers);
    to_edits(with(slot, |p: &mut T| p.on_response(&context, status, &headers)))
}

fn from_context(c: wit::Context) -> Context {
    Context {
        public_prefix: c.public_prefix,
        public_scheme: c.public_scheme,
        public_host: c.public_host,
        targets: c.targets,
        member: c.member,
        position: c.position,
    }
}

fn from_headers(headers: Vec<wit::Header>) -> Vec<Header> {
    headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect()
}

fn to_edits(edits: Vec<Edit>) -> Vec<wit::Edit> {
    let header = |h: Header| wit::Header { name: h.name, value: h.value };
    edits
        .into_iter()
        .map(|e| match e {
            Edit::Set(h) => wit::Edit::Set(header(h)),
            Edit::Append(h) => wit::Edit::Append(header(h)),
            Edit::Remove(name) => wit::Edit::Remove(name),
        })
        .collect()
}

/// Exports a type implementing [`HeaderRewrite`] as the plugin's
/// `header-rewrite` interface. Use it once, at the top level of the plugin crate. It expands
/// to nothing when the crate is built natively (for `cargo test`).
#[macro_export]
macro_rules! export_header_rewrite {
    ($ty:ty) => {
        $crate::__export_world!($ty, header_rewrite, header_rewrite, __export_header_rewrite_world, {
            fn wants() -> glue::wit::Interest {
                glue::interest::<$ty>(&SLOT)
            }
            fn on_request(
                context: glue::wit::Context,
                method: ::std::string::String,
                path: ::std::string::String,
                headers: ::std::vec::Vec<glue::wit::Header>,
            ) -> ::std::vec::Vec<glue::wit::Edit> {
                glue::on_request::<$ty>(&SLOT, context, method, path, headers)
            }
            fn on_response(
                context: glue::wit::Context,
                status: u16,
                headers: ::std::vec::Vec<glue::wit::Header>,
            ) -> ::std::vec::Vec<glue::wit::Edit> {
                glue::on_response::<$ty>(&SLOT, context, status, headers)
            }
        });
    };
}
