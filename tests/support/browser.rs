//! A real browser for the balancer manager's page: headless Chromium (Debian's `chromium`)
//! driven over the DevTools protocol. Started with a fresh profile, on loopback only, every
//! wait bounded; the process is killed by PID and the profile removed when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(20);

/// A headless Chromium with one page.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    page: Socket,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The browser's command, when one is installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|c| Command::new(c).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success()))
}

impl Browser {
    /// Starts Chromium, or `None` when it is not installed and `SWITCHYARD_REQUIRE_BROWSER`
    /// is not set (CI sets it: there the test cannot pass without a browser).
    pub async fn start(name: &str) -> Option<Browser> {
        let Some(command) = chromium() else {
            assert!(std::env::var_os("SWITCHYARD_REQUIRE_BROWSER").is_none(), "SWITCHYARD_REQUIRE_BROWSER is set but chromium is not installed");
            crate::note("chromium is not installed: the browser test is skipped (apt-get install chromium; SWITCHYARD_REQUIRE_BROWSER=1, as in CI, makes this a failure)");
            return None;
        };
        let profile = std::env::temp_dir().join(format!("switchyard-browser-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let mut child = Command::new(command)
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions", "--remote-debugging-address=127.0.0.1"])
            .args(["--remote-debugging-port=0", "--window-size=1500,1000", "--hide-scrollbars"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let endpoint = match rx.recv_timeout(STEP) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not open its DevTools endpoint");
            }
        };
        // ws://127.0.0.1:PORT/devtools/browser/ID: the page's own endpoint is listed at /json/list.
        let port = endpoint.split(':').nth(2).and_then(|p| p.split('/').next()).expect("a port").to_string();
        let list = crate::client::TestClient::http1().get(&format!("http://127.0.0.1:{port}/json/list")).await;
        let pages: Value = serde_json::from_slice(&list.body).expect("the page list");
        let page_url = pages.as_array().and_then(|p| p.iter().find(|t| t["type"] == "page")).and_then(|t| t["webSocketDebuggerUrl"].as_str()).expect("a page").to_string();
        let (page, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(page_url)).await.expect("in time").expect("the page's socket");
        Some(Browser { child, profile, page, next_id: 0 })
    }

    /// One DevTools command; its result (events in between are passed over).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params).await {
            Ok(result) => result,
            Err(answer) => panic!("{method}: {answer}"),
        }
    }

    /// One DevTools command; its result, or the whole answer when it is an error.
    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        tokio::time::timeout(STEP, self.page.send(Message::Text(message.into()))).await.expect("in time").expect("sent");
        loop {
            let next = tokio::time::timeout(STEP, self.page.next()).await.unwrap_or_else(|_| panic!("{method}: no answer"));
            let Some(Ok(Message::Text(text))) = next else { continue };
            let answer: Value = serde_json::from_str(&text).expect("json");
            if answer["id"] == id {
                if answer.get("error").is_some() {
                    return Err(answer);
                }
                return Ok(answer["result"].clone());
            }
        }
    }

    /// The value of a JavaScript expression in the page (awaited when it is a promise).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true, "awaitPromise": true })).await;
        assert!(result.get("exceptionDetails").is_none(), "{expression}: {result}");
        result["result"]["value"].clone()
    }

    /// Loads `url` and waits (bounded) until the document is complete.
    pub async fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'").await;
    }

    /// Waits (bounded) until `condition` is true in the page. A page that is navigating (a
    /// form posted, its answer loading) cannot evaluate: DevTools answers such a look with an
    /// error, and the next look is made on the new page.
    pub async fn wait_for(&mut self, condition: &str) {
        for _ in 0..400 {
            let look = self.try_call("Runtime.evaluate", json!({ "expression": condition, "returnByValue": true, "awaitPromise": true })).await;
            match look {
                Ok(result) if result.get("exceptionDetails").is_none() && result["result"]["value"] == Value::Bool(true) => return,
                Ok(result) if result.get("exceptionDetails").is_some() && !result.to_string().contains("context was destroyed") => panic!("{condition}: {result}"),
                Ok(_) => {}
                Err(answer) if navigating(&answer) => {}
                Err(answer) => panic!("Runtime.evaluate: {answer}"),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the page never satisfied {condition}");
    }

    /// A PNG of the whole page.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true })).await;
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().expect("data")).expect("base64")
    }
}

/// Whether a DevTools error says the page went away while it was asked (it is navigating).
fn navigating(answer: &Value) -> bool {
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    message.contains("navigated or closed") || message.contains("context was destroyed")
}
