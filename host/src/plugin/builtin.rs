//! The default plugins, compiled to components by `build.rs` and embedded in the binary.

/// The component bytes of default plugin `name`, if there is one.
pub(crate) fn component(name: &str) -> Option<&'static [u8]> {
    match name {
        "byrequests" => Some(include_bytes!(env!("SWITCHYARD_PLUGIN_BYREQUESTS"))),
        "bytraffic" => Some(include_bytes!(env!("SWITCHYARD_PLUGIN_BYTRAFFIC"))),
        "bybusyness" => Some(include_bytes!(env!("SWITCHYARD_PLUGIN_BYBUSYNESS"))),
        "hcheck" => Some(include_bytes!(env!("SWITCHYARD_PLUGIN_HCHECK"))),
        "proxypassreverse" => Some(include_bytes!(env!("SWITCHYARD_PLUGIN_PROXYPASSREVERSE"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_name_the_config_accepts_is_embedded() {
        let all = crate::config::BUILTIN_LBMETHODS.iter().chain(&crate::config::BUILTIN_HEALTH_CHECKS).chain(&crate::config::BUILTIN_REWRITES);
        for name in all {
            let bytes = super::component(name).unwrap_or_else(|| panic!("{name} is not embedded"));
            assert!(bytes.starts_with(b"\0asm"), "{name} is not a wasm binary");
        }
    }
}
