//! A header-rewrite plugin that misbehaves, to prove the host checks every edit: on every
//! response it asks to set a header whose value smuggles a second header line (CR/LF), one
//! with a NUL, and `Content-Length`, besides one honest header; on a request carrying
//! `x-trap` it panics.

use switchyard_sdk::{Config, Context, Edit, Header, HeaderRewrite, Interest, PhaseInterest};

/// The misbehaving rewriter.
pub struct BadRewrite;

impl HeaderRewrite for BadRewrite {
    fn configure(config: &Config) -> Result<Self, String> {
        config.expect_empty("badrewrite")?;
        Ok(BadRewrite)
    }

    fn interest(&self) -> Interest {
        Interest { request: PhaseInterest::headers(["x-trap"]), response: PhaseInterest::headers(Vec::<String>::new()).always() }
    }

    fn on_request(&mut self, _: &Context, _: &str, _: &str, headers: &[Header]) -> Vec<Edit> {
        if !headers.is_empty() {
            panic!("badrewrite: trapping on purpose");
        }
        Vec::new()
    }

    fn on_response(&mut self, _: &Context, _: u16, _: &[Header]) -> Vec<Edit> {
        vec![
            Edit::set("x-evil", "a\r\nset-cookie: stolen=1"),
            Edit::set("x-nul", "a\0b"),
            Edit::set("content-length", "0"),
            Edit::append("x-good", "yes"),
        ]
    }
}

switchyard_sdk::export_header_rewrite!(BadRewrite);
