//! A load-balancing method that misbehaves in the way its config asks, to prove the plugin
//! sandbox: `{ "mode": "panic" }`, `"loop"`, `"oom"`, `"sleep"`, `"print"`, `"bad-index"`,
//! `"bad-deltas"`, `"refuse"`, `"refuse-config"`, `"panic-every"` (with `"every": N`) or `"ok"`
//! (picks the first candidate). It misbehaves in `pick` only for requests with a non-zero key
//! (set `hashkey = "header:x-misbehave"` on the balancer and send that header), so it passes
//! the host's load-time self-test; with `"at": "configure"` it misbehaves while loading.

use std::time::Duration;

use serde::Deserialize;
use switchyard_sdk::{Candidates, Config, Decision, LbMethod, Request};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: String,
    #[serde(default)]
    every: u32,
    #[serde(default)]
    at: Option<String>,
}

/// The misbehaving method.
#[derive(Debug)]
pub struct Misbehave {
    mode: String,
    every: u32,
    calls: u32,
    hoard: Vec<Vec<u8>>,
}

impl Misbehave {
    fn act(&mut self) {
        match self.mode.as_str() {
            "panic" => {
                println!("misbehave: about to panic (stdout)");
                eprintln!("misbehave: about to panic (stderr)");
                panic!("misbehave panicked on purpose");
            }
            "loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(3));
                }
            }
            "oom" => loop {
                self.hoard.push(vec![1u8; 1 << 20]);
            },
            "sleep" => std::thread::sleep(Duration::from_secs(30)),
            "print" => {
                println!("misbehave: hello from pick");
                switchyard_sdk::info!("misbehave: log line {}", self.calls);
            }
            "panic-every"
                if self.every > 0 && self.calls.is_multiple_of(self.every) => {
                    panic!("misbehave: panic on call {}", self.calls);
                }
            _ => {}
        }
    }
}

impl LbMethod for Misbehave {
    fn configure(config: &Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if s.mode == "refuse-config" {
            return Err("misbehave: this config is refused on purpose".to_string());
        }
        let mut m = Misbehave { mode: s.mode, every: s.every, calls: 0, hoard: Vec::new() };
        if s.at.as_deref() == Some("configure") {
            m.act();
        }
        Ok(m)
    }

    fn pick(&mut self, request: Request, candidates: &Candidates<'_>) -> Option<Decision> {
        if request.key == 0 {
            return Some(Decision::to(0));
        }
        self.calls += 1;
        self.act();
        match self.mode.as_str() {
            "bad-index" => Some(Decision::to(candidates.len() + 5)),
            "bad-deltas" => Some(Decision::to(0).with_lbstatus_delta(vec![1])),
            "refuse" => None,
            _ => Some(Decision::to(0)),
        }
    }
}

switchyard_sdk::export_lbmethod!(Misbehave);
