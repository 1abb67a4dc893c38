//! What one `pick` of the example plugin costs in Python against Rust: the same algorithm
//! (weighted rendezvous hashing, `examples/plugins/rendezvous-*`) through the Wasm plugin as
//! the proxy calls it (instance pool included), and natively.
//!
//! `cargo bench -p switchyard-tests --bench example_pick`
//!
//! The Python component is built (or taken from the tests' cache) when componentize-py is
//! installed; without it only the Rust cases run. `keyed` picks hash a request key over every
//! candidate; `keyless` ones run the round-robin fallback.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lbmethod_rendezvous::Rendezvous;
use switchyard::balancer::{Candidate, LbMethod as _};
use switchyard::config::{PluginSpec, PluginLimits, PluginSource};
use switchyard::plugin::PluginRuntime;
use switchyard_sdk::{Candidates, Config, LbMethod as _, MemberInfo, Request};
use switchyard_tests::{GUEST_RENDEZVOUS_RS, python};

const SIZES: [usize; 3] = [4, 16, 64];
const KEY: u64 = 0x9e37_79b9_7f4a_7c15;

/// `n` idle members with loadfactors 1, 2, 3, 1, 2, 3…
fn table(n: usize) -> Vec<Candidate> {
    (0..n).map(|member| Candidate { member, lbfactor: 100 * (1 + (member as u32 % 3)), lbstatus: 0, busy: 0, transferred: 0, read: 0 }).collect()
}

fn spec(path: &str) -> PluginSpec {
    PluginSpec { source: PluginSource::File(path.into()), config_json: "{}".into(), origin: "bench".into() }
}

fn picks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let plugins = PluginRuntime::new(PluginLimits::default()).expect("plugin runtime");
    let mut group = c.benchmark_group("example_pick");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));

    let python = python::rendezvous_py();
    let mut components = vec![("rust", GUEST_RENDEZVOUS_RS.to_string())];
    if let Some(path) = &python {
        components.push(("python", path.display().to_string()));
    }
    for (language, path) in &components {
        let started = std::time::Instant::now();
        let method = rt.block_on(plugins.lbmethod(&spec(path), "bench")).expect("load");
        eprintln!("example_pick: loading the {language} plugin took {:?}", started.elapsed());
        let infos: std::sync::Arc<[switchyard::balancer::MemberInfo]> = (0..64)
            .map(|i| switchyard::balancer::MemberInfo { url: format!("http://10.0.0.{i}:80"), route: String::new(), lbset: 0 })
            .collect();
        method.set_members(infos);
        for n in SIZES {
            let t = table(n);
            group.bench_with_input(BenchmarkId::new(format!("wasm-{language}/keyed"), n), &t, |b, t| {
                b.iter(|| method.pick(KEY, t, Instant::now()));
            });
            group.bench_with_input(BenchmarkId::new(format!("wasm-{language}/keyless"), n), &t, |b, t| {
                b.iter(|| method.pick(0, t, Instant::now()));
            });
        }
    }

    let mut native = Rendezvous::configure(&Config::default()).expect("configure");
    let members: Vec<MemberInfo> =
        (0..64).map(|i| MemberInfo { url: format!("http://10.0.0.{i}:80"), route: String::new(), lbset: 0 }).collect();
    native.reset(&members);
    for n in SIZES {
        let t = table(n);
        group.bench_with_input(BenchmarkId::new("native/keyed", n), &t, |b, t| {
            let packed = columns(t);
            b.iter(|| native.pick(Request { key: KEY, now: 0 }, &Candidates::from_columns(t.len(), &packed)));
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
