//! The balancer manager against real members: the JSON API lists and edits members and the
//! next requests follow the edit; every refusal (no nonce, a foreign Origin, bad input, no
//! token) changes nothing; httpd's `/balancer-manager` form shape; the page; `/metrics`.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use switchyard_tests::client::{Reply, TestClient};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

struct Admin {
    base: String,
    client: TestClient,
    token: Option<String>,
}

impl Admin {
    fn request(&self, method: Method, path: &str) -> http::request::Builder {
        let mut b = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b
    }

    async fn get(&self, path: &str) -> Reply {
        self.client.send(self.request(Method::GET, path).body(Full::default()).expect("request")).await
    }

    async fn nonce(&self) -> String {
        let list: Value = serde_json::from_slice(&self.get("/api/balancers").await.body).expect("json");
        list["nonce"].as_str().expect("a nonce").to_string()
    }

    async fn patch(&self, member: usize, body: &str, nonce: Option<&str>) -> Reply {
        self.patch_path(&format!("/api/balancers/web/members/{member}"), body, nonce).await
    }

    async fn patch_path(&self, path: &str, body: &str, nonce: Option<&str>) -> Reply {
        let mut b = self.request(Method::PATCH, path).header("content-type", "application/json");
        if let Some(n) = nonce {
            b = b.header("x-nonce", n);
        }
        self.client.send(b.body(Full::new(Bytes::from(body.to_string()))).expect("request")).await
    }

    async fn balancer(&self) -> Value {
        serde_json::from_slice(&self.get("/api/balancers/web").await.body).expect("json")
    }
}

async fn setup(token: Option<&str>) -> (TestProxy, Member, Member, Admin, switchyard::admin::RunningAdmin) {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let toml = format!(
        "[[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\n[[balancer.web.member]]\nurl = \"{}\"\nroute = \"ra\"\n[[balancer.web.member]]\nurl = \"{}\"\n",
        a.url(),
        b.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let running = proxy.admin(token).await;
    let admin = Admin { base: format!("http://{}", running.addr), client: TestClient::http1(), token: token.map(str::to_string) };
    (proxy, a, b, admin, running)
}

fn count(seen: &[String], name: &str) -> usize {
    seen.iter().filter(|n| *n == name).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_through_the_api_take_effect_at_once() {
    let (proxy, _a, _b, admin, _running) = setup(None).await;
    let client = TestClient::http1();
    let url = proxy.url("/x");
    let seen = client.members_of(&url, 8).await;
    assert_eq!((count(&seen, "a"), count(&seen, "b")), (4, 4));

    let listed: Value = serde_json::from_slice(&admin.get("/api/balancers").await.body).expect("json");
    let members = &listed["balancers"][0]["members"];
    assert_eq!(members[0]["route"], "ra");
    assert_eq!(members[0]["elected"].as_u64().unwrap_or(0) + members[1]["elected"].as_u64().unwrap_or(0), 8);

    let nonce = admin.nonce().await;
    let reply = admin.patch(1, r#"{"loadfactor": 3}"#, Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = client.members_of(&url, 40).await;
    assert!((9..=11).contains(&count(&seen, "a")), "1:3 after the edit: {seen:?}");

    let reply = admin.patch(0, r#"{"status": "+D"}"#, Some(&nonce)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(count(&client.members_of(&url, 10).await, "a"), 0, "a disabled member gets no traffic");
    assert_eq!(admin.balancer().await["members"][0]["status"], "D");
    admin.patch(0, r#"{"status": "-D"}"#, Some(&nonce)).await;
    assert!(count(&client.members_of(&url, 12).await, "a") > 0, "back in rotation");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_changes_change_nothing() {
    let (proxy, _a, _b, admin, _running) = setup(None).await;
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
    assert_eq!(admin.get("/api/balancers/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(admin.patch(7, r#"{"loadfactor": 2}"#, Some(&nonce)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(admin.balancer().await["members"], before, "nothing changed");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpd_scripts_and_the_page_use_the_same_edit() {
    let (proxy, a, _b, admin, _running) = setup(None).await;
    let nonce = admin.nonce().await;
    let form = format!("b=web&w={}&nonce={nonce}&w_lf=4&w_status_N=1", a.url().replace(':', "%3A").replace('/', "%2F"));
    let post = admin
        .request(Method::POST, "/balancer-manager")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .expect("request");
    let reply = admin.client.send(post).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let member = &admin.balancer().await["members"][0];
    assert_eq!((member["loadfactor"].as_f64(), member["status"].as_str()), (Some(4.0), Some("N")));
    assert_eq!(member["changed_from_config"]["loadfactor"], true);

    let page = admin.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains(&a.url()) && html.contains(&format!("value=\"{nonce}\"")), "the page shows the member and carries the nonce");
    assert!(html.contains("Drn"), "httpd's flag names");
    assert_eq!(admin.get("/balancer-manager").await.status, StatusCode::OK, "GET shows the page and changes nothing");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_members_served() {
    let (proxy, _a, _b, admin, _running) = setup(None).await;
    let client = TestClient::http1();
    client.members_of(&proxy.url("/x"), 6).await;
    let reply = admin.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    let mut elected = 0;
    let mut series_seen = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("`series value` lines");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number in {line}"));
        assert!(series_seen.insert(series.to_string(), value).is_none(), "{series} twice");
        if series.starts_with("switchyard_member_elected_total{") {
            assert!(series.contains("balancer=\"web\""), "{series}");
            elected += value as u64;
        }
    }
    assert_eq!(elected, 6, "{text}");
    assert_eq!(series_seen.get("switchyard_requests_total{route=\"/\",class=\"2xx\"}"), Some(&6.0), "{text}");
    assert_eq!(series_seen.get("switchyard_request_head_seconds_count{route=\"/\"}"), Some(&6.0), "{text}");
    assert_eq!(series_seen.get("switchyard_request_head_seconds_bucket{le=\"+Inf\",route=\"/\"}"), Some(&6.0), "{text}");
    assert!(text.contains("switchyard_member_flag{") && text.trim_end().ends_with("# EOF"), "{text}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_fails_is_refused_with_its_reason() {
    let (proxy, _a, _b, admin, _running) = setup(None).await;
    let nonce = admin.nonce().await;
    let post = admin.request(Method::POST, "/api/reload").header("x-nonce", &nonce).body(Full::default()).expect("request");
    let reply = admin.client.send(post).await;
    // The test proxy was started from a string: its file does not exist to be read again.
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(reply.text().contains("cannot read"), "{}", reply.text());
    assert_eq!(TestClient::http1().get(&proxy.url("/x")).await.status, StatusCode::OK, "the running config stays");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_asked_for_on_every_call_when_set() {
    let (proxy, _a, _b, mut admin, _running) = setup(Some("s3cret-token")).await;
    assert_eq!(admin.get("/api/balancers").await.status, StatusCode::OK, "with the token");
    let nonce = admin.nonce().await;
    admin.token = Some("s3cret-tokeN".into());
    assert_eq!(admin.get("/api/balancers").await.status, StatusCode::UNAUTHORIZED, "a wrong token");
    assert_eq!(admin.patch(0, r#"{"loadfactor": 2}"#, Some(&nonce)).await.status, StatusCode::UNAUTHORIZED);
    admin.token = None;
    assert_eq!(admin.get("/metrics").await.status, StatusCode::UNAUTHORIZED, "no token");
    admin.token = Some("s3cret-token".into());
    assert_eq!(admin.balancer().await["members"][1]["loadfactor"], 1.0, "nothing changed");
    proxy.stop().await;
}
