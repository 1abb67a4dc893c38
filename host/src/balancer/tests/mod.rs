//! Balancer tests with the real default algorithms run natively (no Wasm): tiers, flags,
//! exact httpd sequences, and what happens to a broken method's answers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_sdk::{Candidates, Request};

use super::*;
use crate::config::StatusFlags;

mod plan;

/// Runs an SDK lbmethod natively behind the balancer's trait.
pub(super) struct Native<M>(Mutex<M>);

impl<M: switchyard_sdk::LbMethod + Send> LbMethod for Native<M> {
    fn name(&self) -> &str {
        "native"
    }
    fn pick(&self, key: u64, c: &[Candidate], _now: Instant) -> Result<Option<Decision>, LbMethodError> {
        let mut values = Vec::new();
        Candidates::write_columns(c, &mut values);
        let view = Candidates::from_columns(c.len(), &values);
        let answer = self.0.lock().expect("lock").pick(Request { key, now: 0 }, &view);
        Ok(answer.map(|d| Decision { chosen: d.chosen, lbstatus_delta: d.lbstatus_delta }))
    }
    fn sticky_hit(&self, c: &[Candidate], chosen: usize) -> Result<Vec<i64>, LbMethodError> {
        let mut values = Vec::new();
        Candidates::write_columns(c, &mut values);
        let view = Candidates::from_columns(c.len(), &values);
        Ok(self.0.lock().expect("lock").sticky_hit(&view, chosen))
    }
    fn plannable(&self) -> bool {
        self.0.lock().expect("lock").plannable()
    }
    fn plan(&self, c: &[Candidate], picks: usize) -> Result<Plan, LbMethodError> {
        let mut values = Vec::new();
        Candidates::write_columns(c, &mut values);
        let plan = self.0.lock().expect("lock").plan(&Candidates::from_columns(c.len(), &values), picks);
        Ok(Plan { chosen: plan.chosen, lbstatus_delta: plan.lbstatus_delta })
    }
    fn set_members(&self, _members: Arc<[MemberInfo]>) {}
}

/// A method that always answers the same thing.
pub(super) struct Fixed(Result<Option<Decision>, LbMethodError>);

impl LbMethod for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }
    fn pick(&self, _: u64, _: &[Candidate], _: Instant) -> Result<Option<Decision>, LbMethodError> {
        self.0.clone()
    }
    fn sticky_hit(&self, _: &[Candidate], _: usize) -> Result<Vec<i64>, LbMethodError> {
        Ok(Vec::new())
    }
    fn set_members(&self, _members: Arc<[MemberInfo]>) {}
}

pub(super) fn member(name: &str, loadfactor: f64, status: &str, lbset: u32) -> config::Member {
    config::Member {
        url: name.to_string(),
        authority: "h:1".parse().expect("authority"),
        base_path: "/".into(),
        lbfactor: (loadfactor * 100.0) as u32,
        lbset,
        status: if status.is_empty() { StatusFlags::empty() } else { StatusFlags::empty().apply(status).expect("status") },
        retry: Duration::from_secs(60),
        route: String::new(),
        redirect: String::new(),
        ping: None,
        health: None,
        connection: config::ConnectionSettings {
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_connections: 1,
            idle_timeout: Duration::from_secs(1),
            acquire_timeout: Duration::from_secs(1),
        },
        upgrade: config::Upgrades::default(),
        tls: None,
    }
}

pub(super) fn balancer(members: Vec<config::Member>, method: Arc<dyn LbMethod>) -> Balancer<()> {
    balancer_with(members, method, config::Failover::default(), None)
}

pub(super) fn balancer_with(
    members: Vec<config::Member>,
    method: Arc<dyn LbMethod>,
    failover: config::Failover,
    sticky: Option<config::StickySession>,
) -> Balancer<()> {
    let config = config::Balancer {
        name: "b".into(),
        shadow: None,
        record: None,
        lbmethod: config::PluginSpec {
            source: config::PluginSource::Builtin("byrequests".into()),
            config_json: "{}".into(),
            origin: String::new(),
        },
        maxattempts: 1,
        hashkey: config::HashKey::None,
        failover,
        sticky,
        members,
    };
    Balancer::new(&config, method, |_| ())
}

pub(super) fn byrequests() -> Arc<dyn LbMethod> {
    Arc::new(Native(Mutex::new(lbmethod_byrequests::ByRequests)))
}

pub(super) fn sequence(b: &Balancer<()>, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| match b.pick(&PickRequest::default(), Instant::now()) {
            Ok(p) => p.member.config.url.clone(),
            Err(e) => format!("<{e}>"),
        })
        .collect()
}

pub(super) fn down(b: &Balancer<()>, i: usize) {
    b.members()[i].mark_error(Instant::now());
}

#[test]
fn byrequests_70_30() {
    let b = balancer(vec![member("a", 70.0, "", 0), member("b", 30.0, "", 0)], byrequests());
    assert_eq!(sequence(&b, 10), ["a", "b", "a", "a", "a", "b", "a", "a", "b", "a"]);
    assert_eq!(b.members()[0].snapshot().elected, 7);
}

#[test]
fn spares_substitute_one_for_one_and_standbys_come_last() {
    let members = vec![member("b1", 1.0, "", 0), member("b2", 1.0, "", 0), member("b3", 1.0, "+R", 0), member("b4", 1.0, "+H", 0)];
    let b = balancer_with(members, byrequests(), no_recovery(), None);
    assert_eq!(sequence(&b, 4), ["b1", "b2", "b1", "b2"]);
    down(&b, 0);
    assert_eq!(sequence(&b, 4), ["b2", "b3", "b2", "b3"]);
    down(&b, 1);
    assert_eq!(sequence(&b, 3), ["b3", "b3", "b3"]);
    down(&b, 2);
    assert_eq!(sequence(&b, 2), ["b4", "b4"]);
    down(&b, 3);
    assert_eq!(sequence(&b, 1), ["<no usable member>"]);
}

#[test]
fn lbsets_in_order_and_standby_of_lower_set_first() {
    let members = vec![member("a0", 1.0, "", 0), member("s0", 1.0, "+H", 0), member("a1", 1.0, "", 1)];
    let b = balancer(members, byrequests());
    assert_eq!(sequence(&b, 2), ["a0", "a0"]);
    down(&b, 0);
    assert_eq!(sequence(&b, 2), ["s0", "s0"]);
    down(&b, 1);
    assert_eq!(sequence(&b, 2), ["a1", "a1"]);
}

#[test]
fn draining_counts_as_unusable_for_spares() {
    let members = vec![member("a", 1.0, "+N", 0), member("b", 1.0, "", 0), member("s", 1.0, "+R", 0)];
    let b = balancer(members, byrequests());
    assert_eq!(sequence(&b, 4), ["b", "s", "b", "s"]);
}

#[test]
fn disabled_stopped_and_health_failed_are_skipped_ignore_errors_is_not() {
    let members = vec![
        member("d", 1.0, "D", 0),
        member("s", 1.0, "S", 0),
        member("c", 1.0, "C", 0),
        member("i", 1.0, "I", 0),
    ];
    let b = balancer(members, byrequests());
    assert_eq!(sequence(&b, 2), ["i", "i"]);
    assert!(!b.members()[3].mark_error(Instant::now()), "I never goes into error");
    assert_eq!(sequence(&b, 1), ["i"]);
}

#[test]
fn error_clears_after_retry() {
    let mut m = member("a", 1.0, "", 0);
    m.retry = Duration::from_millis(50);
    let b = balancer(vec![m, member("b", 1.0, "", 0)], byrequests());
    let t0 = Instant::now();
    b.members()[0].mark_error(t0);
    assert!(!b.members()[0].usable(t0 + Duration::from_millis(49)));
    assert!(b.members()[0].usable(t0 + Duration::from_millis(50)));
    assert_eq!(b.members()[0].status(), StatusFlags::empty());
}

#[test]
fn tried_members_are_skipped_and_count_for_spares() {
    let members = vec![member("a", 1.0, "", 0), member("b", 1.0, "", 0), member("s", 1.0, "+R", 0)];
    let b = balancer(members, byrequests());
    let picked = b.pick(&PickRequest { tried: &[0], ..Default::default() }, Instant::now()).expect("a member");
    assert!(picked.index == 1 || picked.index == 2);
    assert!(matches!(b.pick(&PickRequest { tried: &[0, 1, 2], ..Default::default() }, Instant::now()), Err(NoMember::NoneUsable)));
}

#[test]
fn bad_answers_fall_back_to_byrequests_over_the_tier_and_are_counted() {
    let members = || vec![member("a", 1.0, "D", 0), member("b", 1.0, "", 0), member("c", 2.0, "", 0)];
    let out_of_range = balancer(members(), Arc::new(Fixed(Ok(Some(Decision { chosen: 9, lbstatus_delta: vec![] })))));
    assert_eq!(sequence(&out_of_range, 3), ["c", "b", "c"], "byrequests over b and c (1:2), never the disabled a");
    assert_eq!(out_of_range.stats().refused_answers.load(Ordering::Relaxed), 3);
    assert_eq!(out_of_range.stats().fallbacks.load(Ordering::Relaxed), 3);
    assert_eq!(out_of_range.stats().fallbacks_to_previous.load(Ordering::Relaxed), 0);

    let bad_deltas = balancer(members(), Arc::new(Fixed(Ok(Some(Decision { chosen: 0, lbstatus_delta: vec![1] })))));
    assert_eq!(sequence(&bad_deltas, 1), ["c"]);
    assert_eq!(
        (bad_deltas.members()[1].lbstatus(), bad_deltas.members()[2].lbstatus()),
        (100, -100),
        "the refused deltas are not applied, byrequests' are"
    );

    let trapped = Fixed(Err(LbMethodError("plugin x trapped: unreachable".into())));
    let trapped = balancer(members(), Arc::new(trapped));
    assert_eq!(sequence(&trapped, 3), ["c", "b", "c"]);
    assert_eq!(trapped.stats().method_failures.load(Ordering::Relaxed), 3);

    let refuses = balancer(members(), Arc::new(Fixed(Ok(None))));
    assert_eq!(sequence(&refuses, 1), ["<the lbmethod refused every candidate>"]);
}

#[test]
fn a_failing_method_falls_back_to_the_previous_one() {
    let members = vec![member("a", 1.0, "", 0), member("b", 1.0, "", 0)];
    let trapped = Arc::new(Fixed(Err(LbMethodError("plugin x is circuit-broken".into()))));
    let previous = Arc::new(Fixed(Ok(Some(Decision { chosen: 1, lbstatus_delta: vec![] }))));
    let spec = config::PluginSpec { source: config::PluginSource::Builtin("byrequests".into()), config_json: "{}".into(), origin: "test".into() };
    let b = balancer(members, trapped).with_previous_method(spec, previous);
    assert_eq!(sequence(&b, 3), ["b", "b", "b"], "the previous method places them");
    assert_eq!(b.stats().fallbacks_to_previous.load(Ordering::Relaxed), 3);
}

#[test]
fn valid_deltas_are_applied() {
    let b = balancer(
        vec![member("a", 1.0, "", 0), member("b", 1.0, "", 0)],
        Arc::new(Fixed(Ok(Some(Decision { chosen: 1, lbstatus_delta: vec![5, -5] })))),
    );
    assert_eq!(sequence(&b, 2), ["b", "b"]);
    assert_eq!((b.members()[0].lbstatus(), b.members()[1].lbstatus()), (10, -10));
}

pub(super) fn no_recovery() -> config::Failover {
    config::Failover { forcerecovery: false, ..Default::default() }
}

pub(super) fn routed(name: &str, route: &str, redirect: &str, status: &str) -> config::Member {
    let mut m = member(name, 1.0, status, 0);
    m.route = route.into();
    m.redirect = redirect.into();
    m
}

pub(super) fn sticky_cfg() -> config::StickySession {
    config::StickySession {
        cookie: "JSESSIONID".into(),
        param: "jsessionid".into(),
        separator: Some('.'),
        scolon_path_delim: false,
        insert: None,
    }
}

pub(super) fn pick_route(b: &Balancer<()>, route: &str) -> Result<(String, bool), NoMember> {
    b.pick(&PickRequest { route: Some(route), ..Default::default() }, Instant::now())
        .map(|p| (p.member.config.url.clone(), p.sticky))
}

#[test]
fn all_members_in_error_are_recovered_by_default() {
    let b = balancer(vec![member("a", 1.0, "", 0), member("b", 1.0, "", 0)], byrequests());
    down(&b, 0);
    assert_eq!(sequence(&b, 2), ["b", "b"], "one member in error: no recovery");
    down(&b, 1);
    assert_eq!(sequence(&b, 2), ["a", "b"], "all in error: all put back");
    assert_eq!(b.stats().forced_recoveries.load(Ordering::Relaxed), 1);
    assert_eq!(b.members()[1].snapshot().retries, 1);

    let off = balancer_with(vec![member("a", 1.0, "", 0), member("b", 1.0, "", 0)], byrequests(), no_recovery(), None);
    down(&off, 0);
    down(&off, 1);
    assert_eq!(sequence(&off, 1), ["<no usable member>"]);
}

#[test]
fn a_disabled_member_is_not_in_error_and_prevents_recovery() {
    let b = balancer(vec![member("a", 1.0, "", 0), member("d", 1.0, "D", 0)], byrequests());
    down(&b, 0);
    assert_eq!(sequence(&b, 1), ["<no usable member>"], "as httpd: only members in error count");
    assert_eq!(b.stats().forced_recoveries.load(Ordering::Relaxed), 0);
}

#[test]
fn sticky_sessions_go_to_their_member_and_update_lbstatus_like_httpd() {
    let members = vec![routed("a", "ra", "", ""), routed("b", "rb", "", ""), routed("c", "rc", "", "")];
    let b = balancer_with(members, byrequests(), config::Failover::default(), Some(sticky_cfg()));
    for _ in 0..3 {
        assert_eq!(pick_route(&b, "rc"), Ok(("c".into(), true)));
    }
    // httpd's update: every usable member gains its lbfactor, the chosen one loses the total.
    let lbstatus: Vec<i64> = b.members().iter().map(|m| m.lbstatus()).collect();
    assert_eq!(lbstatus, [300, 300, -600]);
    assert_eq!(b.members()[2].snapshot().elected, 3);
    assert_eq!(b.stats().sticky_hits.load(Ordering::Relaxed), 3);
    // Unknown routes are ordinary requests; byrequests then favours the members c starved.
    assert_eq!(pick_route(&b, "nobody").map(|p| p.1), Ok(false));
    assert_eq!(sequence(&b, 2), ["b", "a"]);
}

#[test]
fn draining_members_keep_their_sticky_sessions_only() {
    let members = vec![routed("a", "ra", "", "N"), routed("b", "rb", "", "")];
    let b = balancer_with(members, byrequests(), config::Failover::default(), Some(sticky_cfg()));
    assert_eq!(pick_route(&b, "ra"), Ok(("a".into(), true)));
    assert_eq!(sequence(&b, 3), ["b", "b", "b"], "no new sessions on a draining member");
}

#[test]
fn unusable_sticky_member_uses_its_redirect_then_the_method() {
    let members = vec![routed("a", "ra", "rc", ""), routed("b", "rb", "", ""), routed("c", "rc", "", "")];
    let b = balancer_with(members, byrequests(), config::Failover::default(), Some(sticky_cfg()));
    b.members()[0].set_status(StatusFlags::DISABLED, true);
    assert_eq!(pick_route(&b, "ra"), Ok(("c".into(), true)), "redirect");
    b.members()[2].set_status(StatusFlags::STOPPED, true);
    assert_eq!(pick_route(&b, "ra"), Ok(("b".into(), false)), "redirect unusable too: the method decides");
    // A member already tried by this request counts as unusable.
    let retried = b.pick(&PickRequest { route: Some("rb"), tried: &[1], ..Default::default() }, Instant::now());
    assert!(matches!(retried, Err(NoMember::NoneUsable)));
}

#[test]
fn nofailover_answers_503_instead_of_breaking_the_session() {
    let members = vec![routed("a", "ra", "", "E"), routed("b", "rb", "", "")];
    let failover = config::Failover { nofailover: true, ..no_recovery() };
    let b = balancer_with(members, byrequests(), failover, Some(sticky_cfg()));
    b.members()[0].mark_error(Instant::now());
    assert!(matches!(pick_route(&b, "ra"), Err(NoMember::StickyUnavailable)));
    assert!(matches!(pick_route(&b, "zz"), Err(NoMember::StickyUnavailable)), "as httpd: an unknown route too");
    assert_eq!(pick_route(&b, "rb"), Ok(("b".into(), true)));
    assert_eq!(sequence(&b, 1), ["b"], "requests without a session are balanced as usual");
}

#[test]
fn next_retry_is_the_earliest_error_expiry() {
    let mut slow = member("slow", 1.0, "", 0);
    slow.retry = Duration::from_secs(30);
    let mut quick = member("quick", 1.0, "", 0);
    quick.retry = Duration::from_secs(5);
    let b = balancer(vec![slow, quick], byrequests());
    assert_eq!(b.next_retry_at(), None);
    let t = Instant::now();
    b.members()[0].mark_error(t);
    b.members()[1].mark_error(t);
    let next = b.next_retry_at().expect("members in error");
    assert!(next >= t + Duration::from_secs(5) && next < t + Duration::from_secs(6));
}

#[test]
fn a_shadow_picks_with_its_own_lbstatus_and_changes_nothing() {
    let members = vec![member("a", 70.0, "", 0), member("b", 30.0, "", 0)];
    let b = balancer(members, Arc::new(Fixed(Ok(Some(Decision { chosen: 1, lbstatus_delta: vec![] })))))
        .with_shadow(byrequests())
        .expect("shadow thread");
    assert_eq!(sequence(&b, 10), ["b"; 10], "the active method decides");
    let stats = b.shadow().expect("shadow").stats();
    let compared = || stats.agreed.load(Ordering::Relaxed) + stats.disagreed.load(Ordering::Relaxed);
    for _ in 0..500 {
        if compared() == 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // byrequests over its own lbstatus: a b a a a b a a b a, so it agreed on the 3 b's.
    assert_eq!((stats.agreed.load(Ordering::Relaxed), stats.disagreed.load(Ordering::Relaxed)), (3, 7));
    assert_eq!((stats.would_pick[0].load(Ordering::Relaxed), stats.would_pick[1].load(Ordering::Relaxed)), (7, 3));
    assert_eq!((b.members()[0].lbstatus(), b.members()[1].lbstatus()), (0, 0), "the real lbstatus is untouched");
}
