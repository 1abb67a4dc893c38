//! `rendezvous`: weighted rendezvous hashing with bounded loads — an example lbmethod plugin,
//! and the model for writing one in Rust with `switchyard-sdk`.
//!
//! Requests that carry a key (the balancer's `hashkey`: a header, a cookie, the client address,
//! the path) go to the candidate with the highest weighted score for that key, so one key keeps
//! reaching one member; when a member leaves (error, drain, removal) only its own keys move,
//! spread over the others in proportion to their weights. Good for caches, and for anything
//! that keeps per-user state in a member's memory. None of the default methods does this.
//!
//! Config (the plugin's table in the proxy config; every key optional):
//!
//! ```toml
//! [balancer.cache]
//! hashkey = "header:x-user"
//! lbmethod = { path = "lbmethod_rendezvous.wasm", config = { balance_factor = 125, keyless = "round-robin" } }
//! ```
//!
//! - `balance_factor` (percent, 100..=10000): bounded loads (HAProxy's `hash-balance-factor`).
//!   A member may carry at most `balance_factor`% of its weighted share of the requests in
//!   flight, counting this one, rounded up; a key whose first choice is over that goes to its
//!   next choice. Absent: no bound.
//! - `keyless`: what a request without a key gets: `"round-robin"` (the default, httpd's
//!   byrequests: smooth weighted round robin over lbstatus) or `"refuse"` (503).
//!
//! `examples/plugins/rendezvous-py/rendezvous.py` is the same algorithm in Python, bit for bit;
//! the end-to-end tests check that both send every key to the same member.

use serde::Deserialize;
use switchyard_sdk::{Candidates, Config, Decision, LbMethod, MemberInfo, Request};

/// The plugin's config table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    balance_factor: Option<u32>,
    #[serde(default)]
    keyless: Keyless,
}

/// What a request without a key gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Keyless {
    /// Smooth weighted round robin (httpd's byrequests).
    #[default]
    RoundRobin,
    /// No member: the client gets 503.
    Refuse,
}

/// The rendezvous method. Its only private state is one seed per member, rebuilt on `reset`;
/// the round-robin state for keyless requests is the host's lbstatus.
#[derive(Debug)]
pub struct Rendezvous {
    balance_factor: Option<u32>,
    keyless: Keyless,
    seeds: Vec<u64>,
}

impl LbMethod for Rendezvous {
    fn configure(config: &Config) -> Result<Self, String> {
        let settings: Settings = config.parse().map_err(|e| format!("rendezvous: {e}"))?;
        if settings.balance_factor.is_some_and(|f| !(100..=10_000).contains(&f)) {
            return Err("rendezvous: balance_factor must be an integer percentage from 100 to 10000".into());
        }
        switchyard_sdk::debug!("rendezvous: balance_factor={:?} keyless={:?}", settings.balance_factor, settings.keyless);
        Ok(Self { balance_factor: settings.balance_factor, keyless: settings.keyless, seeds: Vec::new() })
    }

    fn reset(&mut self, members: &[MemberInfo]) {
        self.seeds = members.iter().map(member_seed).collect();
    }

    fn pick(&mut self, request: Request, candidates: &Candidates<'_>) -> Option<Decision> {
        if request.key == 0 {
            return match self.keyless {
                Keyless::RoundRobin => round_robin(candidates),
                Keyless::Refuse => None,
            };
        }
        let members = candidates.column(switchyard_sdk::Field::Member);
        let factors = candidates.lbfactors();
        // A member the host has not described yet (cannot happen after reset) hashes by position.
        let seed = |m: i64| usize::try_from(m).ok().and_then(|m| self.seeds.get(m).copied()).unwrap_or(mix64(m as u64));
        let scores: Vec<f64> = members.iter().zip(factors).map(|(&m, &w)| score(request.key, seed(m), w)).collect();
        let Some(factor) = self.balance_factor else {
            return Some(Decision::to(best(&scores)?));
        };
        // Bounded loads: the key's candidates from best to worst score (ties to the lower
        // index); the first whose in-flight requests, with this one, stay within
        // ceil(factor% of its weighted share of all in-flight requests plus this one).
        // With a factor of at least 100% some candidate always qualifies.
        // Counters and weights are never negative; u128 holds any product of them.
        let unsigned = |v: i64| u128::try_from(v).unwrap_or(0);
        let busy = candidates.busies();
        let total_weight: u128 = factors.iter().map(|&w| unsigned(w)).sum();
        let budget = u128::from(factor) * (busy.iter().map(|&b| unsigned(b)).sum::<u128>() + 1);
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let fits = |i: usize| {
            let cap = (budget * unsigned(factors[i])).div_ceil(100 * total_weight.max(1));
            unsigned(busy[i]) < cap
        };
        Some(Decision::to(order.iter().copied().find(|&i| fits(i)).unwrap_or(0)))
    }

    // sticky_hit: the SDK's default (httpd's bookkeeping) is what we want.
}

switchyard_sdk::export_lbmethod!(Rendezvous);

/// The index of the highest score, ties to the first.
fn best(scores: &[f64]) -> Option<usize> {
    let mut best = None;
    for (i, &s) in scores.iter().enumerate() {
        if best.is_none_or(|b: usize| s > scores[b]) {
            best = Some(i);
        }
    }
    best
}

/// httpd's byrequests: every candidate's lbstatus grows by its lbfactor, the highest wins (ties
/// to the first), and the winner gives back the total.
fn round_robin(candidates: &Candidates<'_>) -> Option<Decision> {
    let factors = candidates.lbfactors();
    let statuses = candidates.lbstatuses();
    let after: Vec<i64> = factors.iter().zip(statuses).map(|(&f, &s)| s.wrapping_add(f)).collect();
    let mut chosen = None;
    for (i, &s) in after.iter().enumerate() {
        if chosen.is_none_or(|c: usize| s > after[c]) {
            chosen = Some(i);
        }
    }
    let chosen = chosen?;
    let mut deltas = factors.to_vec();
    deltas[chosen] -= factors.iter().sum::<i64>();
    Some(Decision::to(chosen).with_lbstatus_delta(deltas))
}

/// FNV-1a, 64 bits, of a member's identity: its route when it has one (so a member that moves
/// to a new address keeps its keys), else its URL.
pub fn member_seed(member: &MemberInfo) -> u64 {
    let identity = if member.route.is_empty() { &member.url } else { &member.route };
    identity.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The splitmix64 finaliser: spreads `key ^ seed` over all 64 bits.
pub fn mix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Weighted rendezvous score of a member for a key: `weight / -ln(u)` with `u` uniform in
/// (0, 1) from the hash. 52 bits of the hash plus one half keep `u` strictly inside (0, 1)
/// with no rounding, so the logarithm is never 0 and Rust and Python compute the same double.
pub fn score(key: u64, seed: u64, weight: i64) -> f64 {
    let u = ((mix64(key ^ seed) >> 12) as f64 + 0.5) / (1u64 << 52) as f64;
    weight as f64 / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::Harness;

    /// Members named a, b, c… with loadfactors, all usable.
    fn harness(config: &str, loadfactors: &[f64]) -> Harness<Rendezvous> {
        loadfactors.iter().enumerate().fold(Harness::new(config).expect("configure"), |h, (i, &lf)| {
            h.member(&((b'a' + i as u8) as char).to_string(), lf)
        })
    }

    /// The member URL `key` goes to among `members` (indices).
    fn owner(h: &mut Harness<Rendezvous>, members: &[usize], key: u64) -> String {
        let i = h.pick_among(members, key).expect("a member");
        h.members()[i].url.clone()
    }

    const KEYS: std::ops::Range<u64> = 1..2001;

    #[test]
    fn hash_functions_are_pinned() {
        // Pinned so the Rust and Python versions (and any port) can be checked against them.
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
        let m = MemberInfo { url: "http://127.0.0.1:8080".into(), route: String::new(), lbset: 0 };
        assert_eq!(member_seed(&m), 0x7532_7da3_b04b_cbf2);
        let a = MemberInfo { url: "a".into(), ..m.clone() };
        assert_eq!(score(42, member_seed(&a), 100), 57.22329758672297, "same double as rendezvous.py");
        let routed = MemberInfo { route: "r1".into(), ..m.clone() };
        let moved = MemberInfo { url: "http://10.0.0.9:80".into(), ..routed.clone() };
        assert_eq!(member_seed(&routed), member_seed(&moved), "the route is the identity");
        assert_ne!(member_seed(&routed), member_seed(&m));
    }

    #[test]
    fn a_key_always_reaches_the_same_member() {
        let mut h = harness("{}", &[1.0, 1.0, 1.0]);
        for key in KEYS.take(200) {
            let first = owner(&mut h, &[0, 1, 2], key);
            assert_eq!(owner(&mut h, &[0, 1, 2], key), first, "key {key}");
        }
        assert!(h.members().iter().all(|m| m.lbstatus == 0), "keyed picks leave lbstatus alone");
    }

    #[test]
    fn keys_spread_by_weight() {
        let mut h = harness("{}", &[1.0, 1.0, 2.0]);
        let mut counts = [0usize; 3];
        for key in KEYS {
            counts[h.pick_among(&[0, 1, 2], key).expect("a member")] += 1;
        }
        // Expected 500 / 500 / 1000 of 2000; the bounds are ±5 standard deviations.
        assert!((390..=610).contains(&counts[0]) && (390..=610).contains(&counts[1]), "{counts:?}");
        assert!((880..=1120).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn only_a_leaving_members_keys_move() {
        let mut h = harness("{}", &[1.0, 2.0, 1.0, 3.0]);
        let all = [0, 1, 2, 3];
        let without_c = [0, 1, 3];
        let mut moved = 0;
        for key in KEYS {
            let before = owner(&mut h, &all, key);
            let after = owner(&mut h, &without_c, key);
            if before == "c" {
                moved += 1;
                assert_ne!(after, "c");
            } else {
                assert_eq!(after, before, "key {key} moved although its member stayed");
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn identity_survives_reordering_and_removal_from_the_list() {
        // Members are hashed by URL, not position: a member removed from the middle of the
        // list shifts the others' positions, and they must keep their keys.
        let mut h4 = harness("{}", &[1.0, 1.0, 1.0, 1.0]);
        let mut h3 = Harness::<Rendezvous>::new("{}").expect("configure").member("a", 1.0).member("c", 1.0).member("d", 1.0);
        for key in KEYS.take(500) {
            let before = owner(&mut h4, &[0, 1, 2, 3], key);
            let after = owner(&mut h3, &[0, 1, 2], key);
            if before != "b" {
                assert_eq!(after, before, "key {key}");
            }
        }
    }

    #[test]
    fn bounded_loads_send_a_key_to_its_next_choice() {
        let mut h = harness(r#"{"balance_factor": 150}"#, &[1.0, 1.0, 1.0]);
        let key = 42;
        let all = [0, 1, 2];
        let first = h.pick_among(&all, key).expect("a member");
        let second = {
            let rest: Vec<usize> = all.iter().copied().filter(|&i| i != first).collect();
            h.pick_among(&rest, key).expect("a member")
        };
        // Idle: the first choice. cap = ceil(150% × (0+1) × 1/3) = 1, busy+1 = 1 fits.
        assert_eq!(h.pick_among(&all, key), Some(first));
        // First choice has 1 in flight: cap = ceil(1.5 × 2 / 3) = 1 < 2 → next choice.
        h.member_mut(first).busy = 1;
        assert_eq!(h.pick_among(&all, key), Some(second));
        // With 3 in flight elsewhere the bound grows: cap = ceil(1.5 × 5 / 3) = 3 ≥ 2.
        let third = 3 - first - second;
        h.member_mut(third).busy = 3;
        assert_eq!(h.pick_among(&all, key), Some(first));
    }

    #[test]
    fn without_a_bound_busy_members_keep_their_keys() {
        let mut h = harness("{}", &[1.0, 1.0]);
        let first = h.pick_among(&[0, 1], 7).expect("a member");
        h.member_mut(first).busy = 1000;
        assert_eq!(h.pick_among(&[0, 1], 7), Some(first));
    }

    #[test]
    fn keyless_requests_round_robin_by_weight() {
        let mut h = harness("{}", &[1.0, 2.0, 3.0]);
        assert_eq!(h.sequence(6), ["c", "b", "a", "c", "b", "c"], "httpd byrequests' sequence");
        assert!(h.members().iter().all(|m| m.lbstatus == 0));
    }

    #[test]
    fn keyless_requests_can_be_refused() {
        let mut h = harness(r#"{"keyless": "refuse"}"#, &[1.0, 1.0]);
        assert_eq!(h.pick(), None);
        assert!(h.pick_among(&[0, 1], 5).is_some(), "keyed requests still work");
    }

    #[test]
    fn bad_config_is_refused_with_a_clear_message() {
        let err = |json: &str| Harness::<Rendezvous>::new(json).expect_err("refused");
        assert!(err(r#"{"balance_factor": 99}"#).contains("from 100 to 10000"));
        assert!(err(r#"{"balance_factor": 1.5}"#).contains("rendezvous: invalid type"));
        assert!(err(r#"{"keyless": "random"}"#).contains("unknown variant `random`"));
        assert!(err(r#"{"balance": 1}"#).contains("unknown field `balance`"));
    }
}
