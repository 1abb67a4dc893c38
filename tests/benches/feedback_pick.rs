//! What completion feedback costs a pick: 16 members, through the Wasm plugin as the proxy
//! calls it (instance pool included).
//!
//! `cargo bench -p switchyard-tests --bench feedback_pick`
//!
//! - `byrequests`: the default method, which asks for no feedback (the baseline: a method
//!   that does not ask pays nothing);
//! - `peak-ewma/idle`: the peak-EWMA example, with the feedback table empty (only the clock);
//! - `peak-ewma/1-per-pick`: one completion recorded before every pick, as under steady
//!   traffic where each request ends before the next is picked;
//! - `peak-ewma/8-per-pick`: eight completions per pick (a burst);
//! - `peak-ewma-js/…`: the same method written in JavaScript (`examples/plugins/peak-ewma-js`),
//!   when its build tool is installed.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard::balancer::{AttemptOutcome, Candidate, Completion, LbMethod as _, MemberInfo};
use switchyard::config::{PluginLimits, PluginSource, PluginSpec};
use switchyard::plugin::PluginRuntime;
use switchyard_tests::GUEST_PEAK_EWMA;

const MEMBERS: usize = 16;

/// `n` idle members with loadfactor 1.
fn table(n: usize) -> Vec<Candidate> {
    (0..n).map(|member| Candidate { member, lbfactor: 100, lbstatus: 0, busy: 0, transferred: 0, read: 0 }).collect()
}

fn completion(member: usize) -> Completion {
    Completion {
        member,
        outcome: AttemptOutcome::Response,
        status: 200,
        head: Some(Duration::from_micros(900 + member as u64)),
        total: Duration::from_micros(1000),
        received: 2,
        finished: Instant::now(),
    }
}

fn picks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let plugins = PluginRuntime::new(PluginLimits::default()).expect("plugin runtime");
    let infos: std::sync::Arc<[MemberInfo]> =
        (0..MEMBERS).map(|i| MemberInfo { url: format!("http://10.0.0.{i}:80"), route: String::new(), lbset: 0 }).collect();
    let load = |source: PluginSource| {
        let spec = PluginSpec { source, config_json: "{}".into(), origin: "bench".into() };
        let method = rt.block_on(plugins.lbmethod(&spec, "bench")).expect("load");
        method.set_members(std::sync::Arc::clone(&infos));
        method
    };
    let byrequests = load(PluginSource::Builtin("byrequests".into()));
    let peak = load(PluginSource::File(GUEST_PEAK_EWMA.into()));
    let t = table(MEMBERS);

    let mut group = c.benchmark_group("feedback_pick");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    group.bench_function("byrequests/16", |b| b.iter(|| byrequests.pick(0, &t, Instant::now())));
    group.bench_function("peak-ewma/16/idle", |b| b.iter(|| peak.pick(0, &t, Instant::now())));
    let mut next = 0;
    group.bench_function("peak-ewma/16/1-per-pick", |b| {
        b.iter(|| {
            next = (next + 1) % MEMBERS;
            peak.complete(&completion(next));
            peak.pick(0, &t, Instant::now())
        })
    });
    group.bench_function("peak-ewma/16/8-per-pick", |b| {
        b.iter(|| {
            for _ in 0..8 {
                next = (next + 1) % MEMBERS;
                peak.complete(&completion(next));
            }
            peak.pick(0, &t, Instant::now())
        })
    });
    if let Some(js) = switchyard_tests::js::peak_ewma_js() {
        let peak_js = load(PluginSource::File(js));
        group.bench_function("peak-ewma-js/16/idle", |b| b.iter(|| peak_js.pick(0, &t, Instant::now())));
        group.bench_function("peak-ewma-js/16/1-per-pick", |b| {
            b.iter(|| {
                next = (next + 1) % MEMBERS;
                peak_js.complete(&completion(next));
                peak_js.pick(0, &t, Instant::now())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
