//! Member status flags in httpd's letters: D S I R H E N C.
//!
//! Parsed from `status = "+H"`, `"-E+N"`, `"D"` (a flag with no sign is set), and shown in the
//! same letters. The meaning of each flag is the balancer's business; this is the vocabulary.

use std::fmt;

/// A set of status flags, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusFlags(u32);

impl StatusFlags {
    /// D: disabled, takes no new traffic; retried automatically.
    pub const DISABLED: Self = Self(1 << 0);
    /// S: stopped by the operator, takes nothing, not retried.
    pub const STOPPED: Self = Self(1 << 1);
    /// I: ignore errors, never put in error, always considered available.
    pub const IGNORE_ERRORS: Self = Self(1 << 2);
    /// R: hot spare, replaces an unusable regular member of its lbset one for one.
    pub const HOT_SPARE: Self = Self(1 << 3);
    /// H: hot standby, used only when its lbset has no usable member or spare.
    pub const HOT_STANDBY: Self = Self(1 << 4);
    /// E: in error, not used until its retry time has passed.
    pub const IN_ERROR: Self = Self(1 << 5);
    /// N: draining, takes only sticky sessions routed to it.
    pub const DRAINING: Self = Self(1 << 6);
    /// C: failed its health check.
    pub const HEALTH_FAILED: Self = Self(1 << 7);

    /// The flags that are live state, set by traffic and health checks (E, C), rather than
    /// configuration.
    pub const RUNTIME: Self = Self(Self::IN_ERROR.0 | Self::HEALTH_FAILED.0);

    /// The flags an operator configures (D S I R H N).
    pub const CONFIGURED: Self = Self(0xff & !Self::RUNTIME.0);

    /// Every flag with its letter and httpd's short name, in display order.
    pub const ALL: [(Self, char, &'static str); 8] = [
        (Self::DISABLED, 'D', "Dis"),
        (Self::STOPPED, 'S', "Stop"),
        (Self::IGNORE_ERRORS, 'I', "Ign"),
        (Self::HOT_SPARE, 'R', "Spar"),
        (Self::HOT_STANDBY, 'H', "Stby"),
        (Self::IN_ERROR, 'E', "Err"),
        (Self::DRAINING, 'N', "Drn"),
        (Self::HEALTH_FAILED, 'C', "HcFl"),
    ];

    /// No flags.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The raw bits, for atomic storage.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from raw bits; unknown bits are dropped.
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits & 0xff)
    }

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag in `other` is set.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The union of two sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The flags in both sets.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// This set without the flags in `other`.
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Applies an httpd status string such as `"+H"`, `"-E+N"` or `"D"` to this set.
    pub fn apply(self, spec: &str) -> Result<Self, String> {
        let (set, clear) = Self::changes(spec)?;
        Ok(self.union(set).without(clear))
    }

    /// The flags an httpd status string sets and clears (a later letter wins over an earlier
    /// one for the same flag), for applying to a live member's atomic flags.
    pub fn changes(spec: &str) -> Result<(Self, Self), String> {
        let (mut set, mut clear) = (Self::empty(), Self::empty());
        let mut on = true;
        if spec.trim().is_empty() {
            return Err("empty status: use letters such as \"+H\", \"-E\", \"D\"".to_string());
        }
        for c in spec.trim().chars() {
            match c {
                '+' => on = true,
                '-' => on = false,
                _ => {
                    let upper = c.to_ascii_uppercase();
                    let Some((flag, _, _)) = Self::ALL.iter().find(|(_, l, _)| *l == upper) else {
                        return Err(format!(
                            "unknown status flag `{c}` in \"{spec}\" (flags are D S I R H E N C, with + or -)"
                        ));
                    };
                    if on {
                        set = set.union(*flag);
                        clear = clear.without(*flag);
                    } else {
                        clear = clear.union(*flag);
                        set = set.without(*flag);
                    }
                }
            }
        }
        Ok((set, clear))
    }

    /// The letters of the set flags (`"HE"`), empty when none is set.
    pub fn letters(self) -> String {
        Self::ALL.iter().filter(|(f, _, _)| self.contains(*f)).map(|(_, c, _)| *c).collect()
    }

    /// httpd's short names joined, or "Ok" when no flag is set.
    pub fn names(self) -> String {
        let names: Vec<&str> = Self::ALL.iter().filter(|(f, _, _)| self.contains(*f)).map(|(_, _, n)| *n).collect();
        if names.is_empty() { "Ok".to_string() } else { names.join(" ") }
    }
}

impl fmt::Display for StatusFlags {
    /// The letters of the set flags (`"HE"`), or `"Ok"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 { f.write_str("Ok") } else { f.write_str(&self.letters()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_httpd_status_strings() {
        let f = StatusFlags::empty().apply("+H").expect("valid");
        assert_eq!(f, StatusFlags::HOT_STANDBY);
        let f = StatusFlags::IN_ERROR.apply("-E+N").expect("valid");
        assert_eq!(f, StatusFlags::DRAINING);
        let f = StatusFlags::empty().apply("D").expect("valid");
        assert_eq!(f, StatusFlags::DISABLED);
        let f = StatusFlags::empty().apply("+r+i").expect("valid");
        assert_eq!(f.to_string(), "IR");
        assert_eq!(f.names(), "Ign Spar");
        assert!(StatusFlags::empty().apply("+X").unwrap_err().contains("unknown status flag `X`"));
        assert_eq!(StatusFlags::empty().to_string(), "Ok");
    }
}
