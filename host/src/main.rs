//! The `switchyard` command: load a config, then serve until SIGTERM or ctrl-c; SIGHUP
//! re-reads the config and reloads it (a bad one is logged and the old one keeps serving);
//! SIGUSR1 reopens the access log file.
//!
//! `switchyard --config FILE` runs; `switchyard --config FILE --check` loads the config and
//! every plugin it names, reports problems, and exits 0 (valid) or 1 (not).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use std::sync::Arc;

use switchyard::{config, control, server};
use tracing_subscriber::EnvFilter;

/// A programmable reverse proxy and load balancer with Wasm plugins.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    /// The TOML config file.
    #[arg(long, short, required = true)]
    config: Option<PathBuf>,
    /// Check the config (and load its plugins), then exit: 0 when valid, 1 otherwise.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Convert an httpd reverse-proxy configuration (ProxyPass, <Proxy balancer://>,
    /// BalancerMember, ProxySet, health checks, limits, TLS…) into a Switchyard TOML file.
    /// What cannot be carried over exactly is listed on stderr and at the end of the file.
    /// Exit status: 0 complete, 2 written but incomplete, 1 nothing written.
    ImportHttpd {
        /// The httpd configuration file (its Include files are followed).
        file: PathBuf,
        /// Where to write the result (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Tools for plugin authors.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
enum PluginCommand {
    /// Write a plugin project (Rust) that builds anywhere: Cargo.toml, a working plugin of
    /// the kind with a native test, a README.
    New {
        /// The project's (and crate's) name, e.g. `my-method`.
        name: String,
        /// lbmethod, health-check or header-rewrite.
        #[arg(long, default_value = "lbmethod")]
        kind: switchyard::scaffold::Kind,
        /// rust, python or js (python and js: lbmethods).
        #[arg(long, default_value = "rust")]
        lang: switchyard::scaffold::Lang,
        /// The `switchyard-sdk` directory to depend on (default: the one this binary was
        /// built with, when it is still there).
        #[arg(long)]
        sdk: Option<PathBuf>,
        /// Where to create the project's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Load a component as the proxy would — which plugin kind and contract version, its
    /// imports, its `configure` with CONFIG, the self-test over synthetic members — and say
    /// whether a proxy will take it. Exit status: 0 yes, 1 no.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The plugin's config, as JSON.
        #[arg(long, default_value = "{}")]
        config: String,
    },
    /// Replay a trace a proxy recorded (`record = "FILE"` on a balancer) through an lbmethod,
    /// offline, with the proxy's balancer and tier code: per member what it would have
    /// chosen (beside what the live proxy chose), overall and over time.
    Replay {
        /// The method: a component (`.wasm`) or a default method's name (`byrequests`…).
        method: PathBuf,
        /// The trace file.
        #[arg(long)]
        trace: PathBuf,
        /// The method's config, as JSON.
        #[arg(long, default_value = "{}")]
        config: String,
        /// table, csv or json.
        #[arg(long, value_enum, default_value = "table")]
        format: switchyard::trace::report::Format,
        /// The width of the time windows, e.g. `1s`, `250ms`.
        #[arg(long, default_value = "1s")]
        interval: String,
    },
    /// Compile a component into a compiled-plugin cache, so no proxy using that cache
    /// compiles it again at start, reload or hot swap.
    Compile {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The cache directory (`[plugins] cache`).
        #[arg(long, conflicts_with = "proxy_config", required_unless_present = "proxy_config")]
        cache: Option<PathBuf>,
        /// A proxy config: use its cache (`[plugins] cache`, else `[admin] plugins`/compiled).
        #[arg(long)]
        proxy_config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match &args.command {
        Some(Command::ImportHttpd { file, output }) => return import_httpd(file, output.as_deref()),
        Some(Command::Plugin { command }) => return plugin_tool(command),
        None => {}
    }
    let Some(config_file) = args.config.clone() else { return ExitCode::FAILURE };
    // The file, the manager's directories and the runtime changes kept there.
    let boot = match control::Boot::open(&config_file) {
        Ok(boot) => boot,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // `[log] format` is read at start only: a reload keeps the format the process began with.
    let log = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr);
    match boot.file().log {
        config::LogFormat::Json => log.json().with_current_span(true).with_span_list(true).init(),
        config::LogFormat::Text => log.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    match run(args, boot) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, mut boot: control::Boot) -> anyhow::Result<()> {
    let config = boot.config()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = config.server.workers {
        runtime.worker_threads(workers);
    }
    let runtime = runtime.enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        if args.check {
            server::build(&config).await?;
            println!(
                "{}: ok ({} listeners, {} routes, {} balancers)",
                config.file.display(),
                config.listeners.len(),
                config.routes.len(),
                config.balancers.len()
            );
            return Ok(());
        }
        let running = server::start(&config).await?;
        let control = boot.into_control(running.reloader());
        // Before "listening" is logged: a SIGHUP that follows it must find the handler (the
        // default action would end the process).
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hup) => drop(tokio::spawn(reload_on_sighup(hup, config.file.clone(), Arc::clone(&control)))),
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; reload is unavailable"),
        }
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
            Ok(usr1) => drop(tokio::spawn(reopen_on_sigusr1(usr1, Arc::clone(&control)))),
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGUSR1; the access log cannot be reopened"),
        }
        // The balancer manager runs as long as the proxy; `[admin]` is read at start only.
        let _admin = match &config.admin {
            Some(settings) => Some(switchyard::admin::start(settings, Arc::clone(&control)).await?),
            None => None,
        };
        // Registered before "listening" is logged, as SIGHUP's is.
        let shutdown = shutdown_signal();
        for addr in &running.addrs {
            tracing::info!(%addr, "listening");
        }
        let stop = running.shutdown_handle();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested");
            let _ = stop.send(true);
        });
        running.wait().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// `switchyard plugin check|compile …`.
fn plugin_tool(command: &PluginCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match command {
            PluginCommand::New { name, kind, lang, sdk, dir } => {
                let built_with = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
                let sdk = sdk.clone().or_else(|| std::fs::canonicalize(&built_with).ok());
                match switchyard::scaffold::new_project(dir, name, *kind, *lang, sdk.as_deref()) {
                    Ok(root) => {
                        let next = match lang {
                            switchyard::scaffold::Lang::Rust => "cargo test, then cargo build --target wasm32-wasip2 --release",
                            switchyard::scaffold::Lang::Python => "pip install -r requirements.txt, then ./build.sh",
                            switchyard::scaffold::Lang::Js => "npm install, npm test, then ./build.sh",
                        };
                        println!("wrote {}: {next} (see its README)", root.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        ExitCode::FAILURE
                    }
                }
            }
            PluginCommand::Check { file, config } => {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(config) {
                    eprintln!("--config is not JSON: {e}");
                    return ExitCode::FAILURE;
                }
                match switchyard::plugin::tools::check(file, config).await {
                    Ok(report) => {
                        println!("{}: sha256:{} ({} bytes)", file.display(), report.sha256, report.size);
                        match &report.world {
                            Some((kind, version)) => println!("kind: {kind} (switchyard:plugin@{version})"),
                            None => println!("kind: none (exports: {})", report.exports.join(", ")),
                        }
                        println!("imports: {}", if report.imports.is_empty() { "none".to_string() } else { report.imports.join(", ") });
                        match &report.load {
                            Ok(()) => println!("configure: ok\nself-test: ok\nok: a proxy will load it"),
                            Err(e) => println!("refused: {e}"),
                        }
                        if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
                    }
                    Err(e) => {
                        println!("refused: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            PluginCommand::Replay { method, trace, config, format, interval } => {
                let interval = match config::parse_duration(interval) {
                    Ok(d) if !d.is_zero() => d,
                    _ => {
                        eprintln!("--interval: `{interval}` is not a duration such as 1s or 250ms");
                        return ExitCode::FAILURE;
                    }
                };
                match switchyard::trace::replay_file(method, trace, config).await {
                    Ok(replay) => {
                        print!("{}", switchyard::trace::report::render(&replay, *format, interval));
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        ExitCode::FAILURE
                    }
                }
            }
            PluginCommand::Compile { file, cache, proxy_config } => {
                let cache = match (cache, proxy_config) {
                    (Some(dir), _) => dir.clone(),
                    (None, Some(config_file)) => match config::load(config_file).map(|c| c.plugin_cache) {
                        Ok(Some(dir)) => dir,
                        Ok(None) => {
                            eprintln!("{}: sets no plugin cache ([plugins] cache or [admin] plugins)", config_file.display());
                            return ExitCode::FAILURE;
                        }
                        Err(e) => {
                            eprintln!("{e}");
                            return ExitCode::FAILURE;
                        }
                    },
                    (None, None) => return ExitCode::FAILURE,
                };
                match switchyard::plugin::tools::compile(file, &cache).await {
                    Ok((sha, true)) => {
                        println!("{}: compiled into {} (sha256:{sha})", file.display(), cache.display());
                        ExitCode::SUCCESS
                    }
                    Ok((sha, false)) => {
                        println!("{}: already compiled in {} (sha256:{sha})", file.display(), cache.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("refused: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    })
}

/// `switchyard import-httpd FILE [-o OUT]`.
fn import_httpd(file: &std::path::Path, output: Option<&std::path::Path>) -> ExitCode {
    let target = output.unwrap_or(std::path::Path::new("switchyard.toml"));
    let import = match switchyard::import::import_httpd(file, target) {
        Ok(import) => import,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let written = match output {
        Some(path) => std::fs::write(path, &import.toml).map_err(|e| format!("{}: cannot write: {e}", path.display())),
        None => {
            print!("{}", import.toml);
            Ok(())
        }
    };
    if let Err(e) = written {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    eprint!("{}", import.report());
    if import.complete() {
        eprintln!("complete: every reverse-proxy directive was translated");
        ExitCode::SUCCESS
    } else {
        eprintln!("incomplete: the directives marked NOT TRANSLATED or different above need a look");
        ExitCode::from(2)
    }
}

/// Reloads `file` on every SIGHUP (runtime changes stay laid over it).
#[cfg(unix)]
async fn reload_on_sighup(mut hup: tokio::signal::unix::Signal, file: PathBuf, control: Arc<control::Control>) {
    while hup.recv().await.is_some() {
        tracing::info!(file = %file.display(), "reload requested");
        if let Err(e) = control.change(control::Change::ReloadFile).await {
            for line in e.to_string().lines() {
                tracing::error!(error = %line, "config refused; the running config stays");
            }
        }
    }
}

/// Reopens the access log on every SIGUSR1 (after logrotate moved it).
#[cfg(unix)]
async fn reopen_on_sigusr1(mut usr1: tokio::signal::unix::Signal, control: Arc<control::Control>) {
    while usr1.recv().await.is_some() {
        tracing::info!("reopening the access log");
        control.reopen_logs();
    }
}

/// Resolves on SIGTERM or ctrl-c (SIGINT).
/// Registers for SIGTERM and SIGINT at once (a signal that comes before the returned future
/// is first polled must find the handler: the default action would end the process without
/// draining); the future resolves when one arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    };
    async move {
        #[cfg(unix)]
        match handlers {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Ok(mut term), Err(_)) => {
                term.recv().await;
            }
            (Err(_), _) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
