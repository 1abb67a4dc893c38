//! The glue between the generated component exports and a plugin's value, one module per
//! plugin kind.
//!
//! Each `export_*!` macro expands, through [`__export_world!`](crate::__export_world), to a
//! thread-local slot holding the plugin value and an implementation of the generated `Guest`
//! trait that forwards to the functions here, which convert the generated types to the SDK's
//! own and back. A Wasm instance is single-threaded, so the slot is only ever touched by one
//! call at a time.

use std::cell::RefCell;
use std::thread::LocalKey;

pub mod header_rewrite;
pub mod health_check;
pub mod lbmethod;

/// Where an exported plugin keeps its value between calls.
pub(crate) type Slot<T> = LocalKey<RefCell<Option<T>>>;

/// Builds the plugin value with `configure` and stores it in the slot.
pub(crate) fn store<T>(slot: &'static Slot<T>, json: &str, configure: impl FnOnce(&crate::Config) -> Result<T, String>) -> Result<(), String> {
    let config = crate::Config::from_json(json)?;
    let value = configure(&config)?;
    slot.with(|s| *s.borrow_mut() = Some(value));
    Ok(())
}

/// Runs `f` on the stored plugin value.
pub(crate) fn with<T, R>(slot: &'static Slot<T>, f: impl FnOnce(&mut T) -> R) -> R {
    slot.with(|s| {
        let mut s = s.borrow_mut();
        // The host always calls `configure` first; reaching this is a host bug, and a trap is
        // the right answer to it.
        #[allow(clippy::expect_used)]
        let value = s.as_mut().expect("switchyard: plugin called before configure");
        f(value)
    })
}

/// What every `export_*!` macro shares: nothing on a native build; on Wasm, the plugin value
/// `$ty` in a thread-local `SLOT`, an `Export` type implementing the world's generated
/// `Guest` trait with `configure` and the world's own `$calls` (which reach the glue module
/// as `glue` and the value as `SLOT`), and wit-bindgen's export of the world.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_world {
    ($ty:ty, $glue:ident, $world:ident, $export:ident, { $($calls:tt)* }) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            use $crate::__private::$glue as glue;
            ::std::thread_local! {
                static SLOT: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            struct Export;
            impl glue::Guest for Export {
                fn configure(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                    glue::configure::<$ty>(&SLOT, config)
                }
                $($calls)*
            }
            $crate::wit::$world::$export!(Export with_types_in $crate::wit::$world);
        };
    };
}
