//! Planned picks: a plannable method's plan places requests exactly as its own picks would,
//! and gives way to anything that changes the candidates.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::*;

/// byrequests behind the trait, planning or not (what a balancer does without plans), and
/// counting the picks its plans were asked for.
struct Wrapped {
    inner: Arc<dyn LbMethod>,
    plans: bool,
    asked: std::sync::atomic::AtomicUsize,
}

impl Wrapped {
    fn new(plans: bool) -> Arc<Self> {
        Arc::new(Self { inner: byrequests(), plans, asked: std::sync::atomic::AtomicUsize::new(0) })
    }
}

impl LbMethod for Wrapped {
    fn name(&self) -> &str {
        "wrapped"
    }
    fn pick(&self, key: u64, c: &[Candidate], now: Instant) -> Result<Option<Decision>, LbMethodError> {
        self.inner.pick(key, c, now)
    }
    fn sticky_hit(&self, c: &[Candidate], chosen: usize) -> Result<Vec<i64>, LbMethodError> {
        self.inner.sticky_hit(c, chosen)
    }
    fn set_members(&self, members: Arc<[MemberInfo]>) {
        self.inner.set_members(members)
    }
    fn plannable(&self) -> bool {
        self.plans
    }
    fn plan(&self, c: &[Candidate], picks: usize) -> Result<Plan, LbMethodError> {
        self.asked.fetch_add(picks, Ordering::Relaxed);
        self.inner.plan(c, picks)
    }
}

/// A plannable method whose plans are `plan`, and whose picks choose the last candidate.
struct BadPlanner(Plan);

impl LbMethod for BadPlanner {
    fn name(&self) -> &str {
        "bad-planner"
    }
    fn pick(&self, _: u64, c: &[Candidate], _: Instant) -> Result<Option<Decision>, LbMethodError> {
        Ok(Some(Decision { chosen: c.len() - 1, lbstatus_delta: Vec::new() }))
    }
    fn sticky_hit(&self, _: &[Candidate], _: usize) -> Result<Vec<i64>, LbMethodError> {
        Ok(Vec::new())
    }
    fn set_members(&self, _: Arc<[MemberInfo]>) {}
    fn plannable(&self) -> bool {
        true
    }
    fn plan(&self, _: &[Candidate], _: usize) -> Result<Plan, LbMethodError> {
        Ok(self.0.clone())
    }
}

fn lbstatuses(b: &Balancer<()>) -> Vec<i64> {
    b.members().iter().map(|m| m.lbstatus()).collect()
}

/// Twin balancers over the same members, one planning, one not.
fn twins(members: impl Fn() -> Vec<config::Member>) -> (Balancer<()>, Balancer<()>) {
    let sticky = Some(sticky_cfg());
    let planned = balancer_with(members(), byrequests(), no_recovery(), sticky.clone());
    let unplanned = balancer_with(members(), Wrapped::new(false), no_recovery(), sticky);
    (planned, unplanned)
}

#[test]
fn planned_picks_are_the_picks_the_method_makes() {
    let members = || vec![routed("a", "ra", "", ""), routed("b", "rb", "", ""), routed("c", "rc", "", "")];
    let (planned, unplanned) = twins(members);
    for (i, lf) in [100, 200, 300].into_iter().enumerate() {
        planned.members()[i].set_lbfactor(lf);
        unplanned.members()[i].set_lbfactor(lf);
    }
    assert_eq!(sequence(&planned, 200), sequence(&unplanned, 200));
    assert_eq!(lbstatuses(&planned), lbstatuses(&unplanned), "the Load column moves pick by pick");
    assert_eq!(planned.stats().planned_picks.load(Ordering::Relaxed), 200);
    assert_eq!(unplanned.stats().planned_picks.load(Ordering::Relaxed), 0);
    let calls: u64 = planned.stats().picks.snapshot().buckets.iter().sum();
    assert!(calls <= 5, "200 picks in plans growing from 8 (8, 16, 32, 64, 128): {calls} calls");
}

#[test]
fn a_plan_gives_way_to_whatever_changes_the_candidates() {
    let members = || vec![routed("a", "ra", "", ""), routed("b", "rb", "", ""), routed("c", "rc", "", ""), routed("d", "rd", "", "")];
    let (planned, unplanned) = twins(members);
    let both = |f: &dyn Fn(&Balancer<()>)| {
        f(&planned);
        f(&unplanned);
    };
    let same = |n: usize, what: &str| {
        assert_eq!(sequence(&planned, n), sequence(&unplanned, n), "after {what}");
        assert_eq!(lbstatuses(&planned), lbstatuses(&unplanned), "after {what}");
    };
    same(5, "the first picks");
    // A sticky hit's bookkeeping changes every lbstatus behind the plan's back.
    both(&|b| assert_eq!(pick_route(b, "rb").map(|p| p.1), Ok(true)));
    same(5, "a sticky hit");
    // An edit of a loadfactor.
    both(&|b| b.members()[3].set_lbfactor(400));
    same(7, "a loadfactor edit");
    // A member in error: another set of candidates.
    both(&|b| down(b, 0));
    same(6, "a member in error");
    // A request that already tried a member.
    let tried = PickRequest { tried: &[1], ..PickRequest::default() };
    let pick = |b: &Balancer<()>| b.pick(&tried, Instant::now()).map(|p| p.index);
    assert_eq!(pick(&planned), pick(&unplanned));
    same(9, "a retry that skipped a member");
}

#[test]
fn a_bad_plan_is_refused_and_the_request_placed_by_pick() {
    let three = || vec![member("a", 1.0, "", 0), member("b", 1.0, "", 0), member("c", 1.0, "", 0)];
    for bad in [
        Plan { chosen: vec![3], lbstatus_delta: Vec::new() },
        Plan { chosen: vec![0, 1], lbstatus_delta: vec![1, 2, 3] },
        Plan { chosen: vec![0; 1000], lbstatus_delta: Vec::new() },
    ] {
        let b = balancer(three(), Arc::new(BadPlanner(bad.clone())));
        assert_eq!(sequence(&b, 2), ["c", "c"], "{bad:?}: the method's own pick placed them");
        assert_eq!(b.stats().refused_answers.load(Ordering::Relaxed), 2, "{bad:?}");
        assert_eq!(b.stats().planned_picks.load(Ordering::Relaxed), 0);
    }
    let refusing = balancer(three(), Arc::new(BadPlanner(Plan::default())));
    assert_eq!(sequence(&refusing, 1), ["<the lbmethod refused every candidate>"], "an empty plan refuses, as `none` does");
}

#[test]
fn plans_grow_while_used_up_and_shrink_when_dropped() {
    let members = || vec![routed("a", "ra", "", ""), routed("b", "rb", "", "")];
    let counting = Wrapped::new(true);
    let b = balancer_with(members(), Arc::clone(&counting) as Arc<dyn LbMethod>, no_recovery(), Some(sticky_cfg()));
    // Every other request a sticky hit: each ends the plan the request before made.
    for _ in 0..100 {
        assert_eq!(pick_route(&b, "ra").map(|p| p.1), Ok(true));
        sequence(&b, 1);
    }
    let asked = counting.asked.swap(0, Ordering::Relaxed);
    // (Plans of one or two picks: at most two asked per request, a fixed plan would waste 63.)
    assert!(asked <= 200, "100 planned requests between sticky hits asked for {asked} picks");
    // Then plain traffic: plans grow again, to few calls.
    let calls_before: u64 = b.stats().picks.snapshot().buckets.iter().sum();
    sequence(&b, 2000);
    let calls: u64 = b.stats().picks.snapshot().buckets.iter().sum::<u64>() - calls_before;
    assert!(calls <= 20, "2000 plain requests took {calls} plan calls");
}
