//! The plugin sandbox under a real proxy: a custom lbmethod that panics, loops, hogs memory,
//! sleeps, prints or answers nonsense never takes the proxy down; a plugin that cannot load is
//! refused with its reason.

use std::sync::atomic::Ordering;

use http::{Request, StatusCode};
use http_body_util::Full;
use switchyard_tests::GUEST_MISBEHAVE;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

/// Two members behind the misbehaving guest in `mode`; it acts up on requests carrying
/// `x-misbehave`. `extra` goes into the config (e.g. `[plugins]` limits).
async fn setup(mode: &str, extra: &str) -> (TestProxy, Member, Member) {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let toml = format!(
        "{extra}\n[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\nhashkey = \"header:x-misbehave\"\n\
         lbmethod = {{ path = \"{GUEST_MISBEHAVE}\", config = {{ mode = \"{mode}\", every = 2 }} }}\n\
         [[balancer.b.member]]\nurl = \"{}\"\n[[balancer.b.member]]\nurl = \"{}\"\n",
        a.url(),
        b.url()
    );
    (TestProxy::start(&config(&toml)).await, a, b)
}

async fn misbehaving_get(proxy: &TestProxy) -> switchyard_tests::client::Reply {
    let request = Request::get(proxy.url("/")).header("x-misbehave", "1").body(Full::default()).expect("request");
    TestClient::http1().send(request).await
}

fn plugin_stats(proxy: &TestProxy) -> (u64, u64, u64) {
    let b = &proxy.running.proxy.balancers()[0];
    let s = b.stats();
    (s.method_failures.load(Ordering::Relaxed), s.refused_answers.load(Ordering::Relaxed), s.fallbacks.load(Ordering::Relaxed))
}

/// Waits (bounded) until a plain request is placed by the plugin without a failure.
async fn served_by_the_plugin(proxy: &TestProxy) {
    for _ in 0..100 {
        let before = plugin_stats(proxy).0;
        assert_eq!(TestClient::http1().get(&proxy.url("/")).await.status, StatusCode::OK);
        if plugin_stats(proxy).0 == before {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the plugin never served a request again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_plugin_that_prints_first_does_not_take_the_proxy_down() {
    // The guest writes to stdout and stderr and then panics (whose message is another write):
    // the case that panics a host using wasmtime-wasi's synchronous bindings inside tokio.
    let (proxy, _a, _b) = setup("panic", "").await;
    let mut served = Vec::new();
    for _ in 0..3 {
        let reply = misbehaving_get(&proxy).await;
        assert_eq!(reply.status, StatusCode::OK, "served by the fallback: {}", reply.text());
        served.push(reply.header("x-member"));
    }
    assert_eq!(served, ["a", "b", "a"], "the fallback is byrequests over the tier, not always the first candidate");
    assert_eq!(plugin_stats(&proxy).0, 3, "every trap is counted");
    // A request that does not trigger the panic is served by the plugin itself, on a fresh
    // instance, once the pool has made one (off the request path: until then requests fall
    // back, counted).
    served_by_the_plugin(&proxy).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_keeps_trapping_is_circuit_broken() {
    let (proxy, _a, _b) = setup("panic", "[plugins]\ntrap_limit = 2\ntrap_cooldown = \"1h\"\n").await;
    for _ in 0..5 {
        assert_eq!(misbehaving_get(&proxy).await.status, StatusCode::OK);
    }
    let (failures, _, fallbacks) = plugin_stats(&proxy);
    assert_eq!((failures, fallbacks), (5, 5), "all five fell back");
    // While open, even well-behaved requests skip the plugin: they also count as failures.
    assert_eq!(TestClient::http1().get(&proxy.url("/")).await.status, StatusCode::OK);
    assert_eq!(plugin_stats(&proxy).0, 6, "the circuit is open");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_hits_the_cpu_deadline() {
    let (proxy, _a, _b) = setup("loop", "[plugins]\ndeadline = \"20ms\"\n").await;
    let reply = misbehaving_get(&proxy).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(plugin_stats(&proxy).0, 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_hits_the_memory_cap() {
    let (proxy, _a, _b) = setup("oom", "[plugins]\nmemory_limit = \"16MiB\"\n").await;
    let reply = misbehaving_get(&proxy).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(plugin_stats(&proxy).0, 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_tries_to_sleep_traps_at_once() {
    // WASI never blocks for a plugin: the sleep's poll cannot complete, so the call traps.
    let (proxy, _a, _b) = setup("sleep", "").await;
    let started = std::time::Instant::now();
    let reply = misbehaving_get(&proxy).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the 30 s sleep never happened");
    assert_eq!(plugin_stats(&proxy).0, 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printing_plugin_works_and_is_not_a_failure() {
    let (proxy, _a, _b) = setup("print", "").await;
    for _ in 0..3 {
        assert_eq!(misbehaving_get(&proxy).await.status, StatusCode::OK);
    }
    assert_eq!(plugin_stats(&proxy), (0, 0, 0));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_answers_are_refused_and_counted() {
    let (proxy, _a, _b) = setup("bad-index", "").await;
    assert_eq!(misbehaving_get(&proxy).await.header("x-member"), "a");
    assert_eq!(plugin_stats(&proxy), (0, 1, 1));
    proxy.stop().await;

    let (proxy, _a, _b) = setup("bad-deltas", "").await;
    assert_eq!(misbehaving_get(&proxy).await.status, StatusCode::OK);
    assert_eq!(plugin_stats(&proxy), (0, 1, 1));
    let members = proxy.running.proxy.balancers()[0].members();
    assert_eq!(
        (members[0].lbstatus(), members[1].lbstatus()),
        (-100, 100),
        "the refused deltas ([1]) are not applied; the fallback's byrequests ones are"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_refusing_every_candidate_gets_503() {
    let (proxy, a, b) = setup("refuse", "").await;
    assert_eq!(misbehaving_get(&proxy).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.requests() + b.requests(), 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_that_cannot_load_are_refused_with_their_reason() {
    let member = Member::start("m").await;
    let with = |lbmethod: String| {
        config(&format!("[balancer.b]\nlbmethod = {lbmethod}\n[[balancer.b.member]]\nurl = \"{}\"\n", member.url()))
    };
    // The misbehaving guest with `settings` as its config, and what a start with it says.
    let misbehave = |settings: &str| with(format!("{{ path = \"{GUEST_MISBEHAVE}\", config = {{ {settings} }} }}"));
    let refusal = |toml: String| async move { TestProxy::try_start(&toml).await.err().expect("refused") };

    let refused = refusal(misbehave(r#"mode = "refuse-config""#)).await;
    assert!(refused.starts_with("test.toml:5: balancer.b.lbmethod: "), "{refused}");
    assert!(refused.contains("refused its config: misbehave: this config is refused on purpose"), "{refused}");

    let unknown_key = refusal(misbehave(r#"mood = "x""#)).await;
    assert!(unknown_key.contains("unknown field `mood`"), "{unknown_key}");

    let traps = refusal(misbehave(r#"mode = "panic", at = "configure""#)).await;
    assert!(traps.contains("failed its self-test") && traps.contains("configure trapped"), "{traps}");

    // Loading runs under the setup deadline (the per-call deadline plus a second, so a busy
    // machine does not refuse a reload): a plugin that runs away there is still stopped.
    let runaway = refusal(misbehave(r#"mode = "loop", at = "configure""#)).await;
    assert!(runaway.contains("failed its self-test") && runaway.contains("configure trapped"), "{runaway}");

    let dir = std::env::temp_dir().join(format!("switchyard-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm definitely not a component").expect("write");
    let bad = refusal(with(format!("{{ path = \"{}\" }}", garbage.display()))).await;
    assert!(bad.contains("does not compile"), "{bad}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_check_and_compile_tell_an_author_what_a_proxy_will_do() {
    use switchyard::plugin::tools;
    let good = tools::check(std::path::Path::new(switchyard_tests::GUEST_RENDEZVOUS_RS), "{}").await.expect("checked");
    assert!(good.passed(), "{:?}", good.load);
    assert_eq!(good.world, Some(("lbmethod", "0.2.0".to_string())));
    assert!(good.imports.iter().any(|i| i.starts_with("switchyard:plugin/types@")), "{:?}", good.imports);
    let old = format!("{}/healthcheck_hcheck.wasm", switchyard_tests::FIXTURES_WIT_0_1_0);
    let old = tools::check(std::path::Path::new(&old), r#"{"method": "GET", "uri": "/health"}"#).await.expect("checked");
    assert!(old.passed(), "a component of the previous contract still loads: {:?}", old.load);
    assert_eq!(old.world, Some(("health-check", "0.1.0".to_string())));

    let refused = tools::check(std::path::Path::new(switchyard_tests::GUEST_MISBEHAVE), r#"{"mode": "refuse-config"}"#).await.expect("checked");
    assert!(!refused.passed());
    assert!(refused.load.as_ref().unwrap_err().to_string().contains("refused its config"), "{:?}", refused.load);

    let dir = switchyard_tests::proxy::temp_dir("plugin-tools");
    std::fs::create_dir_all(&dir).expect("dir");
    let not_wasm = dir.join("notes.wasm");
    std::fs::write(&not_wasm, "these are notes").expect("write");
    let e = tools::check(&not_wasm, "{}").await.expect_err("not a component");
    assert!(e.to_string().contains("not a WebAssembly component (bad magic number)"), "{e}");

    let cache = dir.join("compiled");
    let (sha, compiled) = tools::compile(std::path::Path::new(switchyard_tests::GUEST_RENDEZVOUS_RS), &cache).await.expect("compiles");
    assert!(compiled);
    assert_eq!(sha, good.sha256);
    assert_eq!(tools::compile(std::path::Path::new(switchyard_tests::GUEST_RENDEZVOUS_RS), &cache).await.expect("cached"), (sha, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_new_writes_a_project_that_builds_outside_the_repository() {
    let dir = switchyard_tests::proxy::temp_dir("plugin-new");
    std::fs::create_dir_all(&dir).expect("dir");
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sdk = std::fs::canonicalize(workspace.join("sdk")).expect("the SDK");
    let root = switchyard::scaffold::new_project(&dir, "least-busy", switchyard::scaffold::Kind::LbMethod, switchyard::scaffold::Lang::Rust, Some(&sdk))
        .expect("written");
    // Its own target directory (kept between runs), so the outer build's lock is not in the way.
    let target = std::path::Path::new(env!("SWITCHYARD_TARGET_DIR")).join("plugin-new");
    let build = || {
        let mut cmd = std::process::Command::new("cargo");
        cmd.current_dir(&root).env("CARGO_TARGET_DIR", &target).env_remove("RUSTFLAGS");
        cmd
    };
    let deadline = std::time::Duration::from_secs(600);
    let tested = switchyard_tests::python::run_bounded(build().args(["test", "--quiet"]), deadline).unwrap_or_else(|e| panic!("{e}"));
    assert!(tested.contains("1 passed"), "{tested}");
    switchyard_tests::python::run_bounded(build().args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"]), deadline).unwrap_or_else(|e| panic!("{e}"));
    let component = target.join("wasm32-wasip2/release/least_busy.wasm");
    let report = switchyard::plugin::tools::check(&component, "{}").await.expect("checked");
    assert!(report.passed(), "{:?}", report.load);
    assert_eq!(report.world.map(|(kind, _)| kind), Some("lbmethod"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_new_writes_python_and_javascript_projects_a_proxy_loads() {
    use switchyard::scaffold::{Kind, Lang, new_project};
    let dir = switchyard_tests::proxy::temp_dir("plugin-new-scripts");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let deadline = std::time::Duration::from_secs(300);
    let run = |cmd: &mut std::process::Command| switchyard_tests::python::run_bounded(cmd, deadline).unwrap_or_else(|e| panic!("{e}"));

    // Python, when componentize-py is installed (as for the Python example).
    if switchyard_tests::python::rendezvous_py().is_some() {
        let root = new_project(&dir, "py-least-busy", Kind::LbMethod, Lang::Python, None).expect("written");
        let bindings = root.join("bindings");
        run(std::process::Command::new("componentize-py").current_dir(&root).args(["-d", "wit", "-w", "lbmethod-plugin", "bindings"]).arg(&bindings));
        let tested = run(std::process::Command::new("python3").current_dir(&root).args(["-m", "unittest", "-v", "test_app"]).env("PYTHONPATH", &bindings).env("PYTHONDONTWRITEBYTECODE", "1"));
        assert!(tested.contains("OK"), "{tested}");
        run(std::process::Command::new("bash").arg(root.join("build.sh")));
        let report = switchyard::plugin::tools::check(&root.join("py_least_busy.wasm"), "{}").await.expect("checked");
        assert!(report.passed(), "{:?}", report.load);
    }

    // JavaScript, with the example's installed componentize-js (no network in tests).
    if switchyard_tests::js::peak_ewma_js().is_some() {
        let root = new_project(&dir, "js-least-busy", Kind::LbMethod, Lang::Js, None).expect("written");
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins/peak-ewma-js/node_modules");
        std::os::unix::fs::symlink(std::fs::canonicalize(example).expect("node_modules"), root.join("node_modules")).expect("link");
        assert!(run(std::process::Command::new("node").current_dir(&root).arg("test.mjs")).contains("ok"));
        run(std::process::Command::new("bash").arg(root.join("build.sh")));
        let report = switchyard::plugin::tools::check(&root.join("js_least_busy.wasm"), "{}").await.expect("checked");
        assert!(report.passed(), "{:?}", report.load);
    }

    let refused = new_project(&dir, "py-check", Kind::HealthCheck, Lang::Python, None).expect_err("lbmethods only");
    assert!(refused.to_string().contains("write a health check in Rust"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}
