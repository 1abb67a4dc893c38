//! The real proxy, started in-process from a config string.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard::config;
use switchyard::control::{Boot, Control};
use switchyard::server::{self, Running};

/// A running proxy; shut down on [`TestProxy::stop`] or when the test's runtime ends.
pub struct TestProxy {
    /// Where the first listener is bound.
    pub addr: SocketAddr,
    /// The running server (balancers and counters via `running.proxy`).
    pub running: Running,
}

impl TestProxy {
    /// Starts the proxy from `toml`; use `127.0.0.1:0` as the listen address.
    pub async fn start(toml: &str) -> TestProxy {
        Self::try_start(toml).await.unwrap_or_else(|e| panic!("proxy did not start: {e}"))
    }

    /// Like [`TestProxy::start`], but returns the error instead of panicking.
    pub async fn try_start(toml: &str) -> Result<TestProxy, String> {
        init_tracing();
        let config = config::parse(toml, Path::new("test.toml")).map_err(|e| e.to_string())?;
        let running = server::start(&config).await.map_err(|e| e.to_string())?;
        let addr = running.addrs[0];
        Ok(TestProxy { addr, running })
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Reloads the proxy with config `toml` (as `server::Running::reload`).
    pub async fn reload(&self, toml: &str) -> Result<switchyard::server::ReloadReport, String> {
        let config = config::parse(toml, Path::new("test.toml")).map_err(|e| e.to_string())?;
        self.running.reload(config).await.map_err(|e| e.to_string())
    }

    /// Drains and stops the proxy.
    pub async fn stop(self) {
        self.running.shutdown().await;
    }
}

/// The proxy started as the `switchyard` command starts it: from a config file written to a
/// fresh directory, with the runtime changes its `[admin] persist` directory keeps laid over
/// it, and changed only through its [`Control`] (the balancer manager's way).
pub struct ManagedProxy {
    /// The proxy.
    pub proxy: TestProxy,
    /// Its control.
    pub control: Arc<Control>,
    /// The directory the config file (`switchyard.toml`) is in.
    pub dir: PathBuf,
}

impl ManagedProxy {
    /// Writes `toml` to `dir/switchyard.toml` and starts the proxy from it.
    pub async fn start_in(dir: &Path, toml: &str) -> Result<ManagedProxy, String> {
        init_tracing();
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let file = dir.join("switchyard.toml");
        std::fs::write(&file, toml).map_err(|e| e.to_string())?;
        let mut boot = Boot::open(&file).map_err(|e| e.to_string())?;
        let config = boot.config().map_err(|e| e.to_string())?;
        let running = server::start(&config).await.map_err(|e| e.to_string())?;
        let control = boot.into_control(running.reloader());
        let addr = running.addrs[0];
        Ok(ManagedProxy { proxy: TestProxy { addr, running }, control, dir: dir.to_path_buf() })
    }

    /// Starts the balancer manager on a free loopback port, asking for `token` when given
    /// (read from a file, as `[admin] token = "file:…"` does).
    pub async fn admin(&self, token: Option<&str>) -> switchyard::admin::RunningAdmin {
        let token = token.map(|t| {
            let file = self.dir.join("admin.token");
            std::fs::write(&file, format!("{t}\n")).expect("token file");
            config::TokenSource::File(file)
        });
        let settings = config::Admin { addr: "127.0.0.1:0".parse().expect("addr"), token, persist: None, plugins: None };
        switchyard::admin::start(&settings, Arc::clone(&self.control)).await.expect("admin starts")
    }
}

/// A fresh directory for one test, under the system's temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A config with one listener on a free port, plus `rest`.
pub fn config(rest: &str) -> String {
    format!("[[listen]]\naddr = \"127.0.0.1:0\"\n\n{rest}")
}

/// Sends the proxy's log to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=debug`).
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
