//! Replaying a trace through an lbmethod, offline, with the balancer and tier code the proxy
//! runs: `switchyard plugin replay`.
//!
//! Replay is an offline shadow. For each recorded pick, the members are put in the state the
//! live method saw — flags, requests in flight, bytes to and from them — and the balancer picks
//! with the method under test, at the recorded time; lbstatus is the method's own, carried
//! from pick to pick as in the proxy. Completions reach a method that asks for them at their
//! recorded times, from the members that really answered. So replaying the method that was
//! live reproduces its choices exactly, and replaying another shows what it would have chosen
//! facing the same members (not how the members would have answered it: a trace cannot know).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::{Done, Header, Line, Pick};
use crate::balancer::{Balancer, BusyGuard, Completion, LbMethod, PickRequest};
use crate::config::{self, StatusFlags};

/// Why a trace could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A line is not part of the format.
    #[error("trace line {line}: {reason}")]
    Line {
        /// 1-based.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The trace has no header before its first event.
    #[error("trace line {line}: an event before any header")]
    NoHeader {
        /// 1-based.
        line: usize,
    },
}

/// What replaying a trace gave, per segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// One per header in the trace.
    pub segments: Vec<Segment>,
}

/// One segment replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The balancer's name.
    pub balancer: String,
    /// Its members' URLs.
    pub members: Vec<String>,
    /// When each pick happened (microseconds into the segment).
    pub times: Vec<u64>,
    /// The member the method under test chose for each pick; `None`: it refused them all.
    pub chosen: Vec<Option<usize>>,
    /// The member the live proxy chose for each pick.
    pub recorded: Vec<usize>,
}

impl Segment {
    /// Picks per member (the method under test).
    pub fn per_member(&self) -> Vec<u64> {
        count(self.members.len(), self.chosen.iter().flatten().copied())
    }

    /// Picks per member (the live proxy).
    pub fn recorded_per_member(&self) -> Vec<u64> {
        count(self.members.len(), self.recorded.iter().copied())
    }

    /// Picks where the method chose what the live proxy chose.
    pub fn matched(&self) -> usize {
        self.chosen.iter().zip(&self.recorded).filter(|(c, r)| **c == Some(**r)).count()
    }

    /// Picks the method refused.
    pub fn refused(&self) -> usize {
        self.chosen.iter().filter(|c| c.is_none()).count()
    }

    /// Picks per member in consecutive windows of `interval`: (window start in microseconds,
    /// counts).
    pub fn over_time(&self, interval: Duration) -> Vec<(u64, Vec<u64>)> {
        let width = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut windows: Vec<(u64, Vec<u64>)> = Vec::new();
        for (&t, chosen) in self.times.iter().zip(&self.chosen) {
            let start = t / width * width;
            if windows.last().is_none_or(|(s, _)| *s != start) {
                windows.push((start, vec![0; self.members.len()]));
            }
            if let (Some(m), Some((_, counts))) = (chosen, windows.last_mut())
                && let Some(n) = counts.get_mut(*m)
            {
                *n += 1;
            }
        }
        windows
    }
}

fn count(members: usize, chosen: impl Iterator<Item = usize>) -> Vec<u64> {
    let mut per = vec![0; members];
    for m in chosen {
        if let Some(n) = per.get_mut(m) {
            *n += 1;
        }
    }
    per
}

/// Replays the trace `text` through `method`.
pub fn replay(text: &str, method: &Arc<dyn LbMethod>) -> Result<Replay, ReplayError> {
    let mut segments = Vec::new();
    let mut current: Option<Run> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(raw).map_err(|e| ReplayError::Line { line, reason: e.to_string() })?;
        match parsed {
            Line::Header(header) => {
                if let Some(run) = current.take() {
                    segments.push(run.segment);
                }
                current = Some(Run::start(&header, method).map_err(|reason| ReplayError::Line { line, reason })?);
            }
            Line::Event(event) => {
                let run = current.as_mut().ok_or(ReplayError::NoHeader { line })?;
                let at = run.base + Duration::from_micros(event.t);
                match (event.pick, event.done) {
                    (Some(pick), None) => run.pick(event.t, at, pick).map_err(|reason| ReplayError::Line { line, reason })?,
                    (None, Some(done)) => run.done(at, &done).map_err(|reason| ReplayError::Line { line, reason })?,
                    _ => return Err(ReplayError::Line { line, reason: "an event has exactly one of pick and done".into() }),
                }
            }
        }
    }
    segments.extend(current.map(|run| run.segment));
    Ok(Replay { segments })
}

/// A segment being replayed.
struct Run {
    balancer: Balancer<()>,
    method: Arc<dyn LbMethod>,
    /// The trace's time 0.
    base: Instant,
    /// Requests in flight held per member, to match the recorded counts.
    busy: Vec<Vec<BusyGuard<()>>>,
    segment: Segment,
}

impl Run {
    fn start(header: &Header, method: &Arc<dyn LbMethod>) -> Result<Self, String> {
        let config = balancer_config(header)?;
        let balancer = Balancer::new(&config, Arc::clone(method), |_| ());
        Ok(Self {
            busy: header.members.iter().map(|_| Vec::new()).collect(),
            balancer,
            method: Arc::clone(method),
            base: Instant::now(),
            segment: Segment {
                balancer: header.balancer.clone(),
                members: header.members.iter().map(|m| m.url.clone()).collect(),
                times: Vec::new(),
                chosen: Vec::new(),
                recorded: Vec::new(),
            },
        })
    }

    fn pick(&mut self, t: u64, at: Instant, pick: Pick) -> Result<(), String> {
        let members = self.balancer.members();
        let n = members.len();
        if [pick.busy.len(), pick.transferred.len(), pick.read.len()].iter().any(|&l| l != n) || pick.chosen >= n {
            return Err(format!("a pick must describe the {n} members of its header"));
        }
        if let Some(flags) = &pick.flags {
            if flags.len() != n {
                return Err(format!("a pick must give flags for the {n} members of its header"));
            }
            for (m, letters) in members.iter().zip(flags) {
                let target = if letters.is_empty() { StatusFlags::empty() } else { StatusFlags::empty().apply(letters)? };
                m.set_status(StatusFlags::from_bits(u32::MAX), false);
                m.set_status(target, true);
            }
        }
        for (i, m) in members.iter().enumerate() {
            // The guards held here are the only requests in flight of a replay.
            let (held, target) = (&mut self.busy[i], usize::try_from(pick.busy[i]).unwrap_or(usize::MAX));
            held.truncate(target);
            while held.len() < target {
                held.push(m.busy_guard());
            }
            let (transferred, read) = m.snapshot_traffic();
            m.add_transferred(pick.transferred[i].saturating_sub(transferred));
            m.add_read(pick.read[i].saturating_sub(read));
        }
        let request = PickRequest { key: pick.key, route: pick.route.as_deref(), tried: &pick.tried };
        let chosen = self.balancer.pick(&request, at).ok().map(|p| p.index);
        self.segment.times.push(t);
        self.segment.chosen.push(chosen);
        self.segment.recorded.push(pick.chosen);
        Ok(())
    }

    fn done(&mut self, at: Instant, done: &Done) -> Result<(), String> {
        if done.member >= self.segment.members.len() {
            return Err(format!("member {} is not in the header", done.member));
        }
        let outcome = super::format::outcome_of(&done.outcome).ok_or_else(|| format!("unknown outcome `{}`", done.outcome))?;
        if self.method.wants_completions() {
            self.method.complete(&Completion {
                member: done.member,
                outcome,
                status: done.status,
                head: done.head_us.map(Duration::from_micros),
                total: Duration::from_micros(done.total_us),
                received: done.received,
                finished: at,
            });
        }
        Ok(())
    }
}

/// The balancer a header describes, checked as the proxy checks a config file.
fn balancer_config(header: &Header) -> Result<config::Balancer, String> {
    let name = toml::Value::String(header.balancer.clone());
    let mut text = format!("[[listen]]\naddr = \"127.0.0.1:1\"\n[[route]]\npath = \"/\"\nbalancer = {name}\n[balancer.{name}]\nforcerecovery = false\n");
    for m in &header.members {
        text.push_str(&format!(
            "[[balancer.{name}.member]]\nurl = {}\nloadfactor = {}\nlbset = {}\n",
            toml::Value::String(m.url.clone()),
            m.loadfactor,
            m.lbset
        ));
        if !m.route.is_empty() {
            text.push_str(&format!("route = {}\n", toml::Value::String(m.route.clone())));
        }
        if !m.status.is_empty() {
            text.push_str(&format!("status = {}\n", toml::Value::String(format!("+{}", m.status))));
        }
    }
    let parsed = config::parse(&text, std::path::Path::new("trace header")).map_err(|e| format!("the header's balancer is not valid: {e}"))?;
    parsed.balancers.into_iter().next().ok_or_else(|| "the header names no balancer".to_string())
}
