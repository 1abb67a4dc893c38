//! Balancer tests with the real default algorithms run natively (no Wasm): tiers, flags,
//! exact httpd sequences, and what happens to a broken method's answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_sdk::{Candidates, Request};

use super::*;
use crate::config::StatusFlags;

/// Runs an SDK lbmethod natively behind the balancer's trait.
struct Native<M>(Mutex<M>);

impl<M: switchyard_sdk::LbMethod + Send> LbMethod for Native<M> {
    fn name(&self) -> &str {
        "native"
    }
    fn pick(&self, key: u64, c: &CandidateTable) -> Result<Option<Decision>, LbMethodError> {
        let view = Candidates::from_columns(c.count, &c.values);
        let answer = self.0.lock().expect("lock").pick(Request { key }, &view);
        Ok(answer.map(|d| Decision { chosen: d.chosen, lbstatus_delta: d.lbstatus_delta }))
    }
    fn sticky_hit(&self, c: &CandidateTable, chosen: usize) -> Result<Vec<i64>, LbMethodError> {
        let view = Candidates::from_columns(c.count, &c.values);
        Ok(self.0.lock().expect("lock").sticky_hit(&view, chosen))
    }
    fn set_members(&self, _members: Arc<[MemberInfo]>) {}
}

/// A method that always answers the same thing.
struct Fixed(Result<Option<Decision>, LbMethodError>);

impl LbMethod for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }
    fn pick(&self, _: u64, _: &CandidateTable) -> Result<Option<Decision>, LbMethodError> {
        self.0.clone()
    }
    fn sticky_hit(&self, _: &CandidateTable, _: usize) -> Result<Vec<i64>, LbMethodError> {
        Ok(Vec::new())
    }
    fn set_members(&self, _members: Arc<[MemberInfo]>) {}
}

fn member(name: &str, loadfactor: f64, status: &str, lbset: u32) -> config::Member {
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
        connection: config::ConnectionSettings {
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_connections: 1,
            idle_timeout: Duration::from_secs(1),
            acquire_timeout: Duration::from_secs(1),
        },
        upgrade: config::Upgrades::default(),
    }
}

fn balancer(members: Vec<config::Member>, method: Arc<dyn LbMethod>) -> Balancer<()> {
    let config = config::Balancer {
        name: "b".into(),
        lbmethod: config::LbMethodSpec {
            source: config::PluginSource::Builtin("byrequests".into()),
            config_json: "{}".into(),
            origin: String::new(),
        },
        maxattempts: 1,
        hashkey: config::HashKey::None,
        members,
    };
    Balancer::new(&config, method, |_| ())
}

fn byrequests() -> Arc<dyn LbMethod> {
    Arc::new(Native(Mutex::new(lbmethod_byrequests::ByRequests)))
}

fn sequence(b: &Balancer<()>, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| match b.pick(0, &[], Instant::now()) {
            Ok(p) => p.member.config.url.clone(),
            Err(e) => format!("<{e}>"),
        })
        .collect()
}

fn down(b: &Balancer<()>, i: usize) {
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
    let b = balancer(members, byrequests());
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
    let picked = b.pick(0, &[0], Instant::now()).expect("a member");
    assert!(picked.index == 1 || picked.index == 2);
    assert!(matches!(b.pick(0, &[0, 1, 2], Instant::now()), Err(NoMember::NoneUsable)));
}

#[test]
fn bad_answers_fall_back_to_the_first_candidate_and_are_counted() {
    let members = || vec![member("a", 1.0, "D", 0), member("b", 1.0, "", 0), member("c", 1.0, "", 0)];
    let out_of_range = balancer(members(), Arc::new(Fixed(Ok(Some(Decision { chosen: 9, lbstatus_delta: vec![] })))));
    assert_eq!(sequence(&out_of_range, 1), ["b"]);
    assert_eq!(out_of_range.stats().refused_answers.load(Ordering::Relaxed), 1);
    assert_eq!(out_of_range.stats().fallbacks.load(Ordering::Relaxed), 1);

    let bad_deltas = balancer(members(), Arc::new(Fixed(Ok(Some(Decision { chosen: 1, lbstatus_delta: vec![1] })))));
    assert_eq!(sequence(&bad_deltas, 1), ["b"]);
    assert_eq!(bad_deltas.members()[1].lbstatus(), 0, "refused deltas are not applied");

    let trapped = Fixed(Err(LbMethodError::Trapped { plugin: "x".into(), reason: "unreachable".into() }));
    let trapped = balancer(members(), Arc::new(trapped));
    assert_eq!(sequence(&trapped, 2), ["b", "b"]);
    assert_eq!(trapped.stats().method_failures.load(Ordering::Relaxed), 2);

    let refuses = balancer(members(), Arc::new(Fixed(Ok(None))));
    assert_eq!(sequence(&refuses, 1), ["<the lbmethod refused every candidate>"]);
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
