//! The balancer manager's page in a real browser (headless Chromium): a load factor changed
//! through the page's own form shows in the JSON API, and a hostile value is shown as text.
//! The first test also renders the README's screenshot (`UPDATE_SCREENSHOT=1` writes it to
//! `docs/balancer-manager.png`).

use http::Method;
use switchyard_tests::browser::Browser;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{ManagedProxy, config, temp_dir};

use crate::admin::manager;

fn two_members(a: &Member, b: &Member) -> String {
    config(&format!(
        "[[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\nstickysession = \"ROUTEID\"\n\
         [[balancer.web.member]]\nurl = \"{}\"\nroute = \"a\"\n[[balancer.web.member]]\nurl = \"{}\"\nroute = \"b\"\nloadfactor = 2\nhcmethod = \"GET\"\nhcuri = \"/health\"\nhcinterval = \"200ms\"\n",
        a.url(),
        b.url()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_form_changes_a_load_factor() {
    let Some(mut browser) = Browser::start("form").await else { return };
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let proxy = ManagedProxy::start_in(&temp_dir("browser-form"), &two_members(&a, &b)).await.expect("starts");
    let (admin, running) = manager(&proxy, None).await;
    TestClient::http1().members_of(&proxy.proxy.url("/x"), 9).await;
    admin.ok(Method::PATCH, "/api/balancers/web/members/1", r#"{"status": "+N"}"#).await;

    browser.open(&format!("http://{}/", running.addr)).await;
    let edited = browser
        .eval("(() => { const lf = document.querySelector('input[name=w_lf]'); window.beforeSubmit = true; lf.value = '7'; lf.form.requestSubmit(); return true; })()")
        .await;
    assert_eq!(edited, true);
    // The form posts, the manager answers 303, the browser shows the page again.
    browser.wait_for("window.beforeSubmit === undefined && document.readyState === 'complete' && document.querySelector('input[name=w_lf]')?.value === '7'").await;
    let web = admin.balancer().await;
    assert_eq!(web["members"][0]["loadfactor"], 7.0, "{web}");
    assert_eq!(web["members"][0]["changed_from_config"]["loadfactor"], true);
    assert_eq!(browser.eval("document.querySelectorAll('td.changed').length >= 2").await, true, "the page marks what differs from the file");

    // The lbmethod form goes through the page's script and the JSON API.
    browser.eval("window.beforeSubmit = true; document.querySelector('[name=lbm]').value = 'builtin:bytraffic'; document.querySelector('form[data-lbmethod]').requestSubmit(); true").await;
    browser.wait_for("window.beforeSubmit === undefined && document.readyState === 'complete'").await;
    assert_eq!(admin.balancer().await["lbmethod"], "bytraffic");
    assert_eq!(browser.eval("document.body.innerText.includes('Roll back the lbmethod')").await, true);

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        std::fs::create_dir_all(&docs).expect("docs/");
        std::fs::write(docs.join("balancer-manager.png"), &png).expect("screenshot written");
    }
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_show_as_text() {
    let Some(mut browser) = Browser::start("escape").await else { return };
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let proxy = ManagedProxy::start_in(&temp_dir("browser-escape"), &two_members(&a, &b)).await.expect("starts");
    let (admin, running) = manager(&proxy, None).await;
    // A route travels in a cookie's value, where `<script>…</script>` may go: it is a valid
    // route, and the page must show it as text. (A space cannot travel there: refused.)
    let nonce = admin.nonce().await;
    let script = "<script>window.injected=1</script>";
    admin.ok(Method::PATCH, "/api/balancers/web/members/0", &serde_json::json!({ "route": script }).to_string()).await;
    let reply = admin.call(Method::PATCH, "/api/balancers/web/members/1", r#"{"route": "r 1"}"#, Some(&nonce)).await;
    assert_eq!(reply.status, http::StatusCode::BAD_REQUEST, "{}", reply.text());
    // A member URL's path may hold quotes: one that would open an attribute of its own.
    let hostile = r#"http://127.0.0.1:1/x"/onfocus="window.injected=1"/autofocus/x=""#;
    admin.ok(Method::POST, "/api/balancers/web/members", &serde_json::json!({ "url": hostile }).to_string()).await;

    browser.open(&format!("http://{}/", running.addr)).await;
    assert_eq!(browser.eval("document.querySelector('[onfocus]') === null && document.querySelector('[autofocus]') === null").await, true);
    assert_eq!(browser.eval("window.injected === undefined && document.scripts.length === 1").await, true, "only the page's own script");
    let shown = browser.eval("document.body.innerText").await;
    assert!(shown.as_str().is_some_and(|t| t.contains(script)), "the route is shown as text: {shown}");
    assert!(shown.as_str().is_some_and(|t| t.contains(hostile)), "the URL is shown as text: {shown}");
    let routes = browser.eval("[...document.querySelectorAll('input[name=w_wr]')].map(i => i.value)").await;
    assert_eq!(routes[0], script, "the route is carried intact in the form: {routes}");
    let values = browser.eval("[...document.querySelectorAll('input[name=w]')].map(i => i.value)").await;
    assert!(values.as_array().is_some_and(|v| v.iter().any(|v| v == hostile)), "and the URL too: {values}");
    proxy.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_browser_asks_for_it_and_the_page_works() {
    let Some(mut browser) = Browser::start("token").await else { return };
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let proxy = ManagedProxy::start_in(&temp_dir("browser-token"), &two_members(&a, &b)).await.expect("starts");
    let token = "page-token-0123456789";
    let (admin, running) = manager(&proxy, Some(token)).await;
    // What an operator types into the browser's login prompt (any user name, the token as
    // the password); the browser then sends it with every request of the page, its script's
    // calls and its forms included.
    browser.open(&format!("http://operator:{token}@{}/", running.addr)).await;
    assert_eq!(browser.eval("document.querySelectorAll('input[name=w_lf]').length").await, 2, "the page, not a refusal");
    browser.eval("window.beforeSubmit = true; document.querySelector('[name=lbm]').value = 'builtin:bybusyness'; document.querySelector('form[data-lbmethod]').requestSubmit(); true").await;
    browser.wait_for("window.beforeSubmit === undefined && document.readyState === 'complete'").await;
    assert_eq!(admin.balancer().await["lbmethod"], "bybusyness", "the script's call carried the token");
    let edited = browser.eval("(() => { const lf = document.querySelectorAll('input[name=w_lf]')[1]; window.beforeSubmit = true; lf.value = '3'; lf.form.requestSubmit(); return true; })()").await;
    assert_eq!(edited, true);
    browser.wait_for("window.beforeSubmit === undefined && document.readyState === 'complete' && document.querySelectorAll('input[name=w_lf]')[1]?.value === '3'").await;
    assert_eq!(admin.balancer().await["members"][1]["loadfactor"], 3.0, "the form's post carried the token");
    proxy.proxy.stop().await;
}

