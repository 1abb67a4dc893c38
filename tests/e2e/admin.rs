//! The balancer manager against real members: the JSON API lists and edits members and the
//! next requests follow the edit; every refusal (no nonce, a foreign Origin, bad input, no
//! token) changes nothing; httpd's `/balancer-manager` form shape; the page; `/metrics`.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use switchyard_tests::client::{Reply, TestClient};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{ManagedProxy, config, temp_dir};

/// A client of the manager's API.
pub(crate) struct Admin {
    pub(crate) base: String,
    pub(crate) client: TestClient,
    pub(crate) token: Option<String>,
}

impl Admin {
    pub(crate) fn request(&self, method: Method, path: &str) -> http::request::Builder {
        let mut b = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.client.send(self.request(Method::GET, path).body(Full::default()).expect("request")).await
    }

    pub(crate) async fn nonce(&self) -> String {
        let list: Value = serde_json::from_slice(&self.get("/api/balancers").await.body).expect("json");
        list["nonce"].as_str().expect("a nonce").to_string()
    }

    async fn patch(&self, member: usize, body: &str, nonce: Option<&str>) -> Reply {
        self.call(Method::PATCH, &format!("/api/balancers/web/members/{member}"), body, nonce).await
    }

    /// A form post to httpd's `/balancer-manager`, as a script sends it (or, with
    /// `from_page`, as the page's form does: the browser asks for HTML back).
    pub(crate) async fn form(&self, body: String, from_page: bool) -> Reply {
        let mut post = self.request(Method::POST, "/balancer-manager").header("content-type", "application/x-www-form-urlencoded");
        if from_page {
            post = post.header("accept", "text/html");
        }
        self.client.send(post.body(Full::new(Bytes::from(body))).expect("request")).await
    }

    /// A state-changing call with a JSON body (or none when empty).
    pub(crate) async fn call(&self, method: Method, path: &str, body: &str, nonce: Option<&str>) -> Reply {
        let mut b = self.request(method, path).header("content-type", "application/json");
        if let Some(n) = nonce {
            b = b.header("x-nonce", n);
        }
        self.client.send(b.body(Full::new(Bytes::from(body.to_string()))).expect("request")).await
    }

    /// The same, with the nonce fetched first, answering 200 (or the test fails).
    pub(crate) async fn ok(&self, method: Method, path: &str, body: &str) -> Value {
        let nonce = self.nonce().await;
        let reply = self.call(method.clone(), path, body, Some(&nonce)).await;
        assert!(reply.status.is_success(), "{method} {path} {body}: {} {}", reply.status, reply.text());
        serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
    }

    pub(crate) async fn balancer(&self) -> Value {
        serde_json::from_slice(&self.get("/api/balancers/web").await.body).expect("json")
    }
}

/// The manager of `proxy`.
pub(crate) async fn manager(proxy: &ManagedProxy, token: Option<&str>) -> (Admin, switchyard::admin::RunningAdmin) {
    let running = proxy.admin(token).await;
    (Admin { base: format!("http://{}", running.addr), client: TestClient::http1(), token: token.map(str::to_string) }, running)
}

/// Balancer `web` over members a (route ra) and b, with `extra` config after it.
fn web_config(a: &Member, b: &Member, extra: &str) -> String {
    config(&format!(
        "[[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\n[[balancer.web.member]]\nurl = \"{}\"\nroute = \"ra\"\n[[balancer.web.member]]\nurl = \"{}\"\n{extra}",
        a.url(),
        b.url()
    ))
}

async fn setup(name: &str, token: Option<&str>) -> (ManagedProxy, Member, Member, Admin, switchyard::admin::RunningAdmin) {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let proxy = ManagedProxy::start_in(&temp_dir(name), &web_config(&a, &b, "")).await.expect("starts");
    let (admin, running) = manager(&proxy, token).await;
    (proxy, a, b, admin, running)
}

fn count(seen: &[String], name: &str) -> usize {
    seen.iter().filter(|n| *n == name).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_through_the_api_take_effect_at_once() {
    let (proxy, _a, _b, admin, _running) = setup("admin-edits", None).await;
    let client = TestClient::http1();
    let url = proxy.proxy.url("/x");
    let seen = client.members_of(&url, 8).await;
    assert_eq!((count(&seen, "a"), count(&seen, "b")), (4, 4));

    let listed: Value = serde_json::from_slice(&admin.get("/api/balancers").await.body).expect("json");
    let members = &listed["balancers"][0]["members"];
    assert_eq!(members[0]["route"], "ra");
    assert_eq!(members[0]["elected"].as_u64().unwrap_or(0) + members[1]["elected"].as_u64().unwrap_or(0), 8);

    let nonce = admin.nonce().await;
    let reply = admin.patch(1, r#"{"loadfactor": 3}"#, Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // byrequests from where lbstatus stood (0, 0 after eight 1:1 requests), now 1:3.
    assert_eq!(client.members_of(&url, 8).await, ["b", "a", "b", "b", "b", "a", "b", "b"]);

    let reply = admin.patch(0, r#"{"status": "+D"}"#, Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(count(&client.members_of(&url, 10).await, "a"), 0, "a disabled member gets no traffic");
    assert_eq!(admin.balancer().await["members"][0]["status"], "D");
    admin.patch(0, r#"{"status": "-D"}"#, Some(&nonce)).await;
    assert!(count(&client.members_of(&url, 12).await, "a") > 0, "back in rotation");
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_changes_change_nothing() {
    let (proxy, _a, _b, admin, _running) = setup("admin-refused", None).await;
    let nonce = admin.nonce().await;
    let before = admin.balancer().await["members"].clone();
    for (body, nonce, want) in [
        (r#"{"loadfactor": 3}"#, None, StatusCode::FORBIDDEN),
        (r#"{"loadfactor": 3}"#, Some("not-the-nonce"), StatusCode::FORBIDDEN),
        (r#"{"loadfactor": 0}"#, Some(nonce.as_str()), StatusCode::BAD_REQUEST),
        (r#"{"loadfactor": 101}"#, Some(nonce.as_str()), StatusCode::BAD_REQUEST),
        (r#"{"lbset": 100}"#, Some(nonce.as_str()), StatusCode::BAD_REQUEST),
        (r#"{"status": "+X"}"#, Some(nonce.as_str()), StatusCode::BAD_REQUEST),
        (r#"{"loadfactor": 2, "status": "+Q"}"#, Some(nonce.as_str()), StatusCode::BAD_REQUEST),
        ("not json", Some(nonce.as_str()), StatusCode::BAD_REQUEST),
    ] {
        let reply = admin.patch(0, body, nonce).await;
        assert_eq!(reply.status, want, "{body}: {}", reply.text());
        let error: Value = serde_json::from_slice(&reply.body).expect("errors are JSON");
        assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()), "{error}");
    }
    // A browser on another site: its Origin is refused even with the nonce.
    let foreign = admin
        .request(Method::PATCH, "/api/balancers/web/members/0")
        .header("x-nonce", &nonce)
        .header("origin", "http://evil.example")
        .body(Full::new(Bytes::from(r#"{"loadfactor": 5}"#)))
        .expect("request");
    assert_eq!(admin.client.send(foreign).await.status, StatusCode::FORBIDDEN);
    for (path, body) in [
        ("/api/balancers/web/members", r#"{"url": "not a url"}"#),
        ("/api/balancers/web/members", r#"{"url": "ftp://127.0.0.1:21"}"#),
        ("/api/balancers/web/members", r#"{"url": "http://127.0.0.1:1", "loadfactor": 0}"#),
        ("/api/balancers/web/members", r#"{"url": "http://127.0.0.1:1", "colour": "red"}"#),
        ("/api/balancers/web/members", r#"{"loadfactor": 2}"#),
    ] {
        let reply = admin.call(Method::POST, path, body, Some(&nonce)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.text());
    }
    let duplicate = format!(r#"{{"url": "{}"}}"#, before[1]["url"].as_str().expect("url"));
    let reply = admin.call(Method::POST, "/api/balancers/web/members", &duplicate, Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "a duplicate member: {}", reply.text());
    assert!(reply.text().contains("already a member"), "{}", reply.text());
    let reply = admin.patch(1, r#"{"route": "has spaces"}"#, Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(reply.text().contains("member[1].route"), "the reason names the key: {}", reply.text());
    let reply = admin.patch(1, r#"{"redirect": "nobody"}"#, Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "a redirect to no member's route: {}", reply.text());
    let reply = admin.call(Method::PUT, "/api/balancers/web/lbmethod", r#"{"builtin": "bymagic"}"#, Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let reply = admin.call(Method::POST, "/api/balancers/web/lbmethod/rollback", "", Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "nothing to roll back to: {}", reply.text());
    let reply = admin.call(Method::DELETE, "/api/balancers/web/members/0", "", None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "a removal without the nonce");
    assert_eq!(admin.get("/api/balancers/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(admin.patch(7, r#"{"loadfactor": 2}"#, Some(&nonce)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(admin.balancer().await["members"], before, "nothing changed");
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpd_scripts_and_the_page_use_the_same_edit() {
    let (proxy, a, _b, admin, _running) = setup("admin-httpd", None).await;
    let nonce = admin.nonce().await;
    let reply = admin.form(format!("b=web&w={}&nonce={nonce}&w_lf=4&w_status_N=1", a.url().replace(':', "%3A").replace('/', "%2F")), false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let member = &admin.balancer().await["members"][0];
    assert_eq!((member["loadfactor"].as_f64(), member["status"].as_str()), (Some(4.0), Some("N")));
    assert_eq!(member["changed_from_config"]["loadfactor"], true);

    // Balancer edits and a new member in one httpd-shaped request: all of it applies.
    let c = Member::start("c").await;
    let query = format!("/balancer-manager?b=web&nonce={nonce}&b_max=0&b_tmo=2&b_nwrkr={}&b_wyes=1", c.url());
    let reply = admin.client.send(admin.request(Method::POST, &query).body(Full::default()).expect("request")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let web = admin.balancer().await;
    assert_eq!((web["maxattempts"].as_u64(), web["timeout_ms"].as_u64()), (Some(0), Some(2000)), "{web}");
    assert_eq!(web["members"][2]["changed_from_config"]["added"], true);
    // …or none of it: a bad field refuses the whole request.
    let query = format!("/balancer-manager?b=web&nonce={nonce}&b_max=5&w={}&w_lf=0", c.url());
    let reply = admin.client.send(admin.request(Method::POST, &query).body(Full::default()).expect("request")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_eq!(admin.balancer().await["maxattempts"], 0, "nothing of the refused request applied");

    let page = admin.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains(&a.url()) && html.contains(&format!("value=\"{nonce}\"")), "the page shows the member and carries the nonce");
    assert!(html.contains("Drn"), "httpd's flag names");
    assert_eq!(admin.get("/balancer-manager").await.status, StatusCode::OK, "GET shows the page and changes nothing");
    proxy.proxy.stop().await;
}

/// `/metrics` parsed as Prometheus text.
fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// Summed over the samples of `metric` whose labels include `with`.
fn sum_of(scrape: &prometheus_parse::Scrape, metric: &str, with: &[(&str, &str)]) -> f64 {
    let plain = |v: &prometheus_parse::Value| match v {
        prometheus_parse::Value::Counter(x) | prometheus_parse::Value::Gauge(x) | prometheus_parse::Value::Untyped(x) => *x,
        other => panic!("not a plain value: {other:?}"),
    };
    scrape.samples.iter().filter(|s| s.metric == metric && with.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(|s| plain(&s.value)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_members_served() {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    // Both members checked by the default check, with two configs: two loaded copies.
    let text = web_config(&a, &b, "hcmethod = \"GET\"\nhcuri = \"/health\"\nhcinterval = \"100ms\"\n");
    let text = text.replacen("route = \"ra\"\n", "route = \"ra\"\nhcmethod = \"GET\"\nhcuri = \"/ready\"\nhcinterval = \"100ms\"\n", 1);
    let proxy = ManagedProxy::start_in(&temp_dir("admin-metrics"), &text).await.expect("starts");
    let (admin, _running) = manager(&proxy, None).await;
    let client = TestClient::http1();
    client.members_of(&proxy.proxy.url("/x"), 6).await;
    let reply = admin.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    let scrape = parse_metrics(&text);
    let total = |metric: &str, with: &[(&str, &str)]| sum_of(&scrape, metric, with);
    assert_eq!(total("switchyard_member_elected_total", &[("balancer", "web")]), 6.0, "{text}");
    assert_eq!(total("switchyard_member_response_head_seconds_count", &[("balancer", "web")]), 6.0, "{text}");
    // byrequests is plannable: one call planned all six picks. Its version is its component's.
    let version = admin.balancer().await["lbmethod_version"].as_str().expect("a version").to_string();
    assert!(version.starts_with("sha256:") && version.len() == 19, "{version}");
    assert_eq!(total("switchyard_lbmethod_pick_seconds_count", &[("plugin", "byrequests"), ("version", &version)]), 1.0, "{text}");
    assert_eq!(total("switchyard_lbmethod_planned_picks_total", &[("plugin", "byrequests"), ("version", &version)]), 6.0, "{text}");
    assert_eq!(total("switchyard_requests_total", &[("route", "/"), ("balancer", "web"), ("class", "2xx")]), 6.0, "{text}");
    assert_eq!(total("switchyard_request_head_seconds_count", &[("route", "/")]), 6.0, "{text}");
    assert_eq!(total("switchyard_config_reloads_total", &[("outcome", "applied")]), 0.0, "{text}");
    let head = scrape.samples.iter().find(|s| s.metric == "switchyard_request_head_seconds" && s.labels.get("route") == Some("/")).expect("the request histogram");
    let prometheus_parse::Value::Histogram(buckets) = &head.value else { panic!("a histogram: {head:?}") };
    assert_eq!(buckets.iter().find(|b| b.less_than.is_infinite()).map(|b| b.count), Some(6.0), "{buckets:?}");
    let mut series = std::collections::HashSet::new();
    for s in &scrape.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        assert!(series.insert((s.metric.clone(), labels)), "{} twice", s.metric);
    }
    assert!(text.contains("switchyard_member_flag{") && text.trim_end().ends_with("# EOF"), "{text}");
    assert!(text.contains("# TYPE switchyard_parked_connections gauge\nswitchyard_parked_connections "), "{text}");
    assert!(text.contains("# TYPE switchyard_memory_trims counter\nswitchyard_memory_trims_total "), "{text}");
    // A large answer from a plain member to a plain client moves socket to socket. (The
    // count is the process's: other tests may add to it, never take from it.)
    let spliced = |text: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with("switchyard_spliced_bytes_total ")).unwrap_or_else(|| panic!("{text}"));
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a count")
    };
    let before = spliced(&text);
    assert_eq!(client.get(&proxy.proxy.url("/bytes/300000")).await.body.len(), 300_000);
    let after = spliced(&admin.get("/metrics").await.text());
    assert!(after - before >= 200_000.0, "all but what came with the head: {before} -> {after}");

    // An edit rebuilds the proxy; every counter goes on from where it was, the route's, the
    // lbmethod's and the health check's included (a counter that starts again would read
    // as lost requests to `increase()`).
    let probes = |scrape: &prometheus_parse::Scrape| sum_of(scrape, "switchyard_member_health_probes_total", &[("balancer", "web")]);
    let check_calls = |scrape: &prometheus_parse::Scrape| sum_of(scrape, "switchyard_plugin_call_seconds_count", &[("kind", "healthcheck"), ("plugin", "hcheck")]);
    // Every probe is two calls of the check plugin (describe, judge); a probe under way may
    // have made its first. Counted once each, the two copies' calls added together.
    let mut before = parse_metrics(&admin.get("/metrics").await.text());
    for _ in 0..200 {
        if probes(&before) >= 10.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        before = parse_metrics(&admin.get("/metrics").await.text());
    }
    let (p, c) = (probes(&before), check_calls(&before));
    assert!(p >= 10.0 && c >= 2.0 * p && c <= 2.0 * p + 8.0, "{p} probes, {c} calls");
    admin.ok(Method::PATCH, "/api/balancers/web/members/0", r#"{"loadfactor": 2}"#).await;
    client.members_of(&proxy.proxy.url("/x"), 3).await;
    let text = admin.get("/metrics").await.text();
    let after = parse_metrics(&text);
    assert_eq!(sum_of(&after, "switchyard_requests_total", &[("route", "/"), ("class", "2xx")]), 10.0, "6, the large answer, and 3 more: {text}");
    assert_eq!(sum_of(&after, "switchyard_request_head_seconds_count", &[("route", "/")]), 10.0, "{text}");
    assert_eq!(sum_of(&after, "switchyard_lbmethod_planned_picks_total", &[("plugin", "byrequests"), ("version", &version)]), 10.0, "{text}");
    assert!(probes(&after) > probes(&before) && check_calls(&after) > check_calls(&before), "{text}");
    assert_eq!(sum_of(&after, "switchyard_plugin_traps_total", &[("kind", "healthcheck")]), 0.0, "{text}");
    assert_eq!(sum_of(&after, "switchyard_lbmethod_traps_total", &[("balancer", "web")]), 0.0, "{text}");
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_runtime_changes_and_a_bad_file_is_refused_with_its_line() {
    let (proxy, a, b, admin, _running) = setup("admin-reload", None).await;
    admin.ok(Method::PATCH, "/api/balancers/web/members/1", r#"{"loadfactor": 3}"#).await;
    let file = proxy.dir.join("switchyard.toml");
    // The file changes b's route; the runtime loadfactor stays laid over it.
    std::fs::write(&file, web_config(&a, &b, "route = \"rb\"\n")).expect("write");
    admin.ok(Method::POST, "/api/reload", "").await;
    let member = &admin.balancer().await["members"][1];
    assert_eq!((member["route"].as_str(), member["loadfactor"].as_f64()), (Some("rb"), Some(3.0)), "{member}");
    std::fs::write(&file, web_config(&a, &b, "loadfactor = 300\n")).expect("write");
    let nonce = admin.nonce().await;
    let reply = admin.call(Method::POST, "/api/reload", "", Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(reply.text().contains("switchyard.toml:13: balancer.web.member[1].loadfactor"), "file, line and key: {}", reply.text());
    assert_eq!(TestClient::http1().get(&proxy.proxy.url("/x")).await.status, StatusCode::OK, "the running config stays");
    assert_eq!(admin.balancer().await["members"][1]["route"], "rb");
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_asked_for_on_every_call_when_set() {
    let (proxy, _a, _b, mut admin, _running) = setup("admin-token", Some("s3cret-token")).await;
    assert_eq!(admin.get("/api/balancers").await.status, StatusCode::OK, "with the token");
    let nonce = admin.nonce().await;
    admin.token = Some("s3cret-tokeN".into());
    assert_eq!(admin.get("/api/balancers").await.status, StatusCode::UNAUTHORIZED, "a wrong token");
    assert_eq!(admin.patch(0, r#"{"loadfactor": 2}"#, Some(&nonce)).await.status, StatusCode::UNAUTHORIZED);
    admin.token = None;
    assert_eq!(admin.get("/metrics").await.status, StatusCode::UNAUTHORIZED, "no token");
    admin.token = Some("s3cret-token".into());
    assert_eq!(admin.balancer().await["members"][1]["loadfactor"], 1.0, "nothing changed");
    proxy.proxy.stop().await;
}
