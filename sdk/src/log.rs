//! Lines from a plugin to the proxy's log.
//!
//! Inside the proxy these go through the `log` import that every plugin world has, tagged with
//! the plugin's name and level. Under native `cargo test` they go to stderr, so test output shows them.

/// How severe a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal events.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Whether the proxy would write a line at `level` (skip expensive formatting when not).
pub fn enabled(level: Level) -> bool {
    imp::enabled(level)
}

/// Writes one line at `level`.
pub fn write(level: Level, message: &str) {
    imp::write(level, message)
}

/// Writes a formatted line at `info`, formatting only when the level is enabled.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::__log_at!($crate::log::Level::Info, $($arg)*) };
}

/// Writes a formatted line at `warn`, formatting only when the level is enabled.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::__log_at!($crate::log::Level::Warn, $($arg)*) };
}

/// Writes a formatted line at `error`, formatting only when the level is enabled.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::__log_at!($crate::log::Level::Error, $($arg)*) };
}

/// Writes a formatted line at `trace`, formatting only when the level is enabled.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::__log_at!($crate::log::Level::Trace, $($arg)*) };
}

/// Writes a formatted line at `debug`, formatting only when the level is enabled.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::__log_at!($crate::log::Level::Debug, $($arg)*) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_at {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::write($level, &::std::format!($($arg)*));
        }
    };
}

#[cfg(target_family = "wasm")]
mod imp {
    use super::Level;
    // Every world imports the same `log` interface, so one world's bindings serve all kinds:
    // the component gets the import whichever export macro the plugin invokes.
    use crate::wit::lbmethod::switchyard::plugin::{log, types::LogLevel};

    fn wit_level(level: Level) -> LogLevel {
        match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        }
    }

    pub(super) fn enabled(level: Level) -> bool {
        log::enabled(wit_level(level))
    }

    pub(super) fn write(level: Level, message: &str) {
        log::write(wit_level(level), message)
    }
}

#[cfg(not(target_family = "wasm"))]
mod imp {
    use super::Level;

    pub(super) fn enabled(level: Level) -> bool {
        level >= Level::Debug
    }

    pub(super) fn write(level: Level, message: &str) {
        eprintln!("[plugin {level:?}] {message}");
    }
}
