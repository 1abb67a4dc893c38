//! What one `pick` costs: through the Wasm plugin (as the proxy calls it, instance pool
//! included), the same algorithm compiled natively, and a whole `Balancer::pick` (tiers,
//! packing the member table, the plugin call, applying the deltas) — byrequests, which is
//! plannable (a plan call places up to 64 requests), and bybusyness, which is not (a call per
//! request) — with and without a shadow method.
//!
//! The clock is read once, outside the measured loop: the proxy reads it once per attempt and
//! hands that reading to the pick, the member pool and the member's deadline, so it is no
//! part of a pick's cost. (The plugin-call latency a balancer records around each call to
//! the method still reads it twice, and is measured.)
//!
//! `cargo bench -p switchyard --bench pick`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchyard::balancer::{Balancer, Candidate, LbMethod, PickRequest};
use switchyard::config::{self, PluginSpec, PluginLimits, PluginSource, StatusFlags};
use switchyard::plugin::PluginRuntime;
use switchyard_sdk::{Candidates, LbMethod as _, Request};

const SIZES: [usize; 3] = [4, 16, 64];

fn table(n: usize) -> Vec<Candidate> {
    (0..n).map(|member| Candidate { member, lbfactor: 100 * (1 + (member as u32 % 3)), lbstatus: 0, busy: 0, transferred: 0, read: 0 }).collect()
}

fn member(i: usize) -> config::Member {
    let settings = config::ConnectionSettings {
        timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        max_connections: 1,
        idle_timeout: Duration::from_secs(1),
        acquire_timeout: Duration::from_secs(1),
    };
    config::Member {
        url: format!("http://10.0.0.{i}:80"),
        authority: format!("10.0.0.{i}:80").parse().expect("authority"),
        base_path: "/".into(),
        lbfactor: 100,
        lbset: 0,
        status: StatusFlags::empty(),
        retry: Duration::from_secs(60),
        route: String::new(),
        redirect: String::new(),
        ping: None,
        health: None,
        connection: settings,
        upgrade: config::Upgrades::default(),
        tls: None,
    }
}

fn spec(name: &str) -> PluginSpec {
    PluginSpec { source: PluginSource::Builtin(name.into()), config_json: "{}".into(), origin: "bench".into() }
}

fn picks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let plugins = PluginRuntime::new(PluginLimits::default()).expect("plugin runtime");
    let mut group = c.benchmark_group("pick");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));

    for name in ["byrequests", "bybusyness", "bytraffic"] {
        let method = rt.block_on(plugins.lbmethod(&spec(name), "bench")).expect("load");
        for n in SIZES {
            let t = table(n);
            group.bench_with_input(BenchmarkId::new(format!("wasm/{name}"), n), &t, |b, t| {
                let now = Instant::now();
                b.iter(|| method.pick(0, t, now));
            });
        }
    }

    for n in SIZES {
        let t = table(n);
        let mut native = lbmethod_byrequests::ByRequests;
        group.bench_with_input(BenchmarkId::new("native/byrequests", n), &t, |b, t| {
            let packed = columns(t);
            b.iter(|| native.pick(Request { key: 0, now: 0 }, &Candidates::from_columns(t.len(), &packed)));
        });
    }

    let method: Arc<dyn LbMethod> = rt.block_on(plugins.lbmethod(&spec("byrequests"), "bench")).expect("load");
    for n in SIZES {
        let config = config::Balancer {
            name: "bench".into(),
            shadow: None,
            record: None,
            lbmethod: spec("byrequests"),
            maxattempts: 1,
            hashkey: config::HashKey::None,
            failover: config::Failover::default(),
            sticky: None,
            members: (0..n).map(member).collect(),
        };
        let balancer = Balancer::new(&config, Arc::clone(&method), |_| ());
        group.bench_with_input(BenchmarkId::new("balancer/byrequests", n), &balancer, |b, balancer| {
            let now = Instant::now();
            b.iter(|| balancer.pick(&PickRequest::default(), now).map(|p| p.index));
        });
        // The same through a method that is not plannable: one Wasm call per request.
        let busy: Arc<dyn LbMethod> = rt.block_on(plugins.lbmethod(&spec("bybusyness"), "bench/busy")).expect("load");
        let unplanned = Balancer::new(&config, busy, |_| ());
        group.bench_with_input(BenchmarkId::new("balancer/bybusyness", n), &unplanned, |b, balancer| {
            let now = Instant::now();
            b.iter(|| balancer.pick(&PickRequest::default(), now).map(|p| p.index));
        });
        // What a shadow adds on the request's thread: handing the table over (its own thread
        // does the second pick; when it falls behind, picks are dropped, not waited for).
        let shadow: Arc<dyn LbMethod> = rt.block_on(plugins.lbmethod(&spec("bybusyness"), "bench/shadow")).expect("load");
        let shadowed = Balancer::new(&config, Arc::clone(&method), |_| ()).with_shadow(shadow).expect("shadow thread");
        group.bench_with_input(BenchmarkId::new("balancer/byrequests+shadow", n), &shadowed, |b, balancer| {
            let now = Instant::now();
            b.iter(|| balancer.pick(&PickRequest::default(), now).map(|p| p.index));
        });
    }
    group.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);

/// `candidates` as the host packs them for a guest.
fn columns(candidates: &[Candidate]) -> Vec<i64> {
    let mut values = Vec::new();
    Candidates::write_columns(candidates, &mut values);
    values
}
