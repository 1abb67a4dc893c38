//! `/metrics`: requests by route and status class, a histogram per route of the time until the
//! answer's head was ready, and the members' counters, flags and health checks, in Prometheus
//! text format (prometheus-client), read from the live atomics when scraped.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::api::error;
use crate::config::StatusFlags;
use crate::observe::LatencySnapshot;
use crate::control::{Control, ControlStats};
use crate::proxy::Proxy;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    balancer: String,
    plugin: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    balancer: String,
    plugin: String,
    version: String,
    /// Where the requests went: `previous` (the method used before the last swap) or
    /// `byrequests`.
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    balancer: String,
    plugin: String,
    /// `agreed`, `disagreed`, `failed` or `dropped`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowMemberLabels {
    balancer: String,
    plugin: String,
    member: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Each balancer's lbmethod: failed calls (traps, circuit open), refused answers and the
/// requests that fell back (to the previous method, or byrequests), since the balancer was
/// last built.
fn register_lbmethods(registry: &mut Registry, proxy: &Proxy) {
    let [failures, refused, planned, traps, opens] = [(); 5].map(|()| Family::<PluginLabels, Counter>::default());
    let fallbacks = Family::<FallbackLabels, Counter>::default();
    let shadow_picks = Family::<ShadowLabels, Counter>::default();
    let shadow_would = Family::<ShadowMemberLabels, Counter>::default();
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let mut picks = Vec::new();
    for b in proxy.balancers() {
        let labels = PluginLabels { balancer: b.name().to_string(), plugin: b.lbmethod().name().to_string(), version: b.lbmethod().version().to_string() };
        let stats = b.stats();
        failures.get_or_create(&labels).inc_by(stats.method_failures.load(relaxed));
        let (trapped, opened) = b.lbmethod().traps();
        traps.get_or_create(&labels).inc_by(trapped);
        opens.get_or_create(&labels).inc_by(opened);
        refused.get_or_create(&labels).inc_by(stats.refused_answers.load(relaxed));
        planned.get_or_create(&labels).inc_by(stats.planned_picks.load(relaxed));
        let (all, to_previous) = (stats.fallbacks.load(relaxed), stats.fallbacks_to_previous.load(relaxed));
        for (to, count) in [("previous", to_previous), ("byrequests", all.saturating_sub(to_previous))] {
            let fallback = FallbackLabels { balancer: labels.balancer.clone(), plugin: labels.plugin.clone(), version: labels.version.clone(), to };
            fallbacks.get_or_create(&fallback).inc_by(count);
        }
        picks.push((labels, stats.picks.snapshot()));
        if let Some(shadow) = b.shadow() {
            let (balancer, plugin) = (b.name().to_string(), shadow.method().name().to_string());
            let s = shadow.stats();
            for (outcome, count) in [("agreed", &s.agreed), ("disagreed", &s.disagreed), ("failed", &s.failed), ("dropped", &s.dropped)] {
                let labels = ShadowLabels { balancer: balancer.clone(), plugin: plugin.clone(), outcome };
                shadow_picks.get_or_create(&labels).inc_by(count.load(relaxed));
            }
            for (m, would) in b.members().iter().zip(s.would_pick.iter()) {
                let labels = ShadowMemberLabels { balancer: balancer.clone(), plugin: plugin.clone(), member: m.config.url.clone() };
                shadow_would.get_or_create(&labels).inc_by(would.load(relaxed));
            }
        }
    }
    registry.register("lbmethod_pick_seconds", "lbmethod calls (pick, or plan for a plannable method), by balancer, plugin and version", Histograms(picks));
    registry.register("lbmethod_planned_picks", "Requests placed by a plannable lbmethod's plan (its picks made ahead, several per call)", planned);
    registry.register("lbmethod_failures", "lbmethod calls that trapped or found the plugin circuit-broken", failures);
    registry.register("lbmethod_traps", "lbmethod calls that trapped (panic, CPU deadline, memory cap)", traps);
    registry.register("lbmethod_circuit_opens", "Times the lbmethod's circuit opened after repeated traps", opens);
    registry.register("lbmethod_refused_answers", "lbmethod answers refused (index out of range, wrong deltas)", refused);
    registry.register("lbmethod_fallbacks", "Requests the lbmethod failed to place, by where they went instead: the previous method or byrequests", fallbacks);
    registry.register("lbmethod_shadow_picks", "Picks of a balancer's shadow lbmethod, by whether it chose the member the active one did", shadow_picks);
    registry.register("lbmethod_shadow_would_pick", "Requests a balancer's shadow lbmethod would have sent to each member", shadow_would);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// `healthcheck` or `rewrite`.
    kind: &'static str,
    plugin: String,
    version: String,
}

/// The calls of every health-check and header-rewrite plugin, by plugin and version (loaded
/// plugins of the same version, with other configs, added together): their times, traps and
/// circuit openings. An lbmethod's calls are its balancer's `lbmethod_pick_seconds`.
fn register_plugin_calls(registry: &mut Registry, proxy: &Proxy) {
    let mut by_version: Vec<(CallLabels, crate::observe::PluginCalls)> = Vec::new();
    for (kind, plugin, calls) in proxy.plugin_calls() {
        let labels = CallLabels { kind, plugin: plugin.to_string(), version: calls.version.clone() };
        match by_version.iter_mut().find(|(l, _)| *l == labels) {
            Some((_, sum)) => {
                sum.times.add(&calls.times);
                sum.traps += calls.traps;
                sum.circuit_opens += calls.circuit_opens;
            }
            None => by_version.push((labels, calls)),
        }
    }
    let [traps, opens] = [(); 2].map(|()| Family::<CallLabels, Counter>::default());
    for (labels, calls) in &by_version {
        traps.get_or_create(labels).inc_by(calls.traps);
        opens.get_or_create(labels).inc_by(calls.circuit_opens);
    }
    let times = Histograms(by_version.into_iter().map(|(labels, calls)| (labels, calls.times)).collect());
    registry.register("plugin_call_seconds", "Calls of health-check and header-rewrite plugins, by kind, plugin and version (its count is the number of calls)", times);
    registry.register("plugin_traps", "Calls of health-check and header-rewrite plugins that trapped (panic, CPU deadline, memory cap)", traps);
    registry.register("plugin_circuit_opens", "Times a health-check or header-rewrite plugin's circuit opened after repeated traps", opens);
}

/// Config reloads, manager edits and hot swaps, applied or refused.
fn register_changes(registry: &mut Registry, stats: &ControlStats) {
    for (name, help, counts) in [
        ("config_reloads", "Config file reloads, by outcome", &stats.reloads),
        ("manager_edits", "Balancer-manager edits, by outcome", &stats.edits),
        ("plugin_swaps", "lbmethod changes and rollbacks (hot swaps), by outcome", &stats.swaps),
    ] {
        let family = Family::<OutcomeLabels, Counter>::default();
        for (i, outcome) in ["applied", "refused"].into_iter().enumerate() {
            family.get_or_create(&OutcomeLabels { outcome }).inc_by(counts[i].load(std::sync::atomic::Ordering::Relaxed));
        }
        registry.register(name, help, family);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberLabels {
    balancer: String,
    member: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    /// The balancer the route sends to; empty for a single backend, an exclusion, or no route.
    balancer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    route: String,
    balancer: String,
    class: String,
}

/// One histogram per label set (route, member), read from the proxy's own atomics when
/// scraped.
#[derive(Debug)]
struct Histograms<L>(Vec<(L, LatencySnapshot)>);

impl<L: EncodeLabelSet + std::fmt::Debug + Send + Sync> EncodeMetric for Histograms<L> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, snap) in &self.0 {
            let count = snap.buckets.iter().sum();
            let bounds = snap.bounds.iter().copied().chain(std::iter::once(f64::INFINITY));
            let buckets: Vec<(f64, u64)> = bounds.zip(snap.buckets.iter().copied()).collect();
            encoder.encode_family(labels)?.encode_histogram::<NoLabelSet>(snap.sum_seconds, count, &buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlagLabels {
    balancer: String,
    member: String,
    flag: String,
}

pub(super) fn render(control: &Control) -> Response<Full<Bytes>> {
    let proxy = control.current();
    let mut registry = Registry::with_prefix("switchyard");
    let elected = Family::<MemberLabels, Counter>::default();
    let errors = Family::<MemberLabels, Counter>::default();
    let sent = Family::<MemberLabels, Counter>::default();
    let received = Family::<MemberLabels, Counter>::default();
    let busy = Family::<MemberLabels, Gauge>::default();
    let loadfactor = Family::<MemberLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let flags = Family::<FlagLabels, Gauge>::default();
    let probes = Family::<MemberLabels, Counter>::default();
    let probe_failures = Family::<MemberLabels, Counter>::default();
    let requests = Family::<ClassLabels, Counter>::default();
    let mut heads = Vec::new();
    for (route, stats) in proxy.traffic() {
        let (route, balancer) = route.map_or(("(none)", None), |(prefix, balancer)| (prefix, balancer));
        let (route, balancer) = (route.to_string(), balancer.unwrap_or_default().to_string());
        let snap = stats.snapshot();
        for (i, n) in snap.by_class.iter().enumerate() {
            if *n > 0 {
                requests.get_or_create(&ClassLabels { route: route.clone(), balancer: balancer.clone(), class: format!("{}xx", i + 1) }).inc_by(*n);
            }
        }
        heads.push((RouteLabels { route, balancer }, snap.head));
    }
    registry.register("requests", "Requests answered, by route, balancer and status class", requests);
    registry.register("request_head_seconds", "Time from a request's arrival until its answer's head was ready, by route", Histograms(heads));
    let mut responses = Vec::new();
    for (bi, b) in proxy.balancers().iter().enumerate() {
        for (mi, m) in b.members().iter().enumerate() {
            let labels = MemberLabels { balancer: b.name().to_string(), member: m.config.url.clone() };
            responses.push((labels.clone(), m.response_latency()));
            let s = m.snapshot();
            elected.get_or_create(&labels).inc_by(s.elected);
            errors.get_or_create(&labels).inc_by(s.errors);
            sent.get_or_create(&labels).inc_by(s.transferred);
            received.get_or_create(&labels).inc_by(s.read);
            busy.get_or_create(&labels).set(i64::try_from(s.busy).unwrap_or(i64::MAX));
            loadfactor.get_or_create(&labels).set(f64::from(s.lbfactor) / 100.0);
            for (flag, letter, _) in StatusFlags::ALL {
                let labels = FlagLabels { balancer: labels.balancer.clone(), member: labels.member.clone(), flag: letter.to_string() };
                flags.get_or_create(&labels).set(i64::from(s.status.contains(flag)));
            }
            if let Some(h) = proxy.health_status(bi, mi) {
                probes.get_or_create(&labels).inc_by(h.probes);
                probe_failures.get_or_create(&labels).inc_by(h.failures);
            }
        }
    }
    registry.register("member_response_head_seconds", "Time from sending a request to the member until its answer's head arrived", Histograms(responses));
    registry.register("member_elected", "Requests the lbmethod (or a sticky session) sent to the member", elected);
    registry.register("member_errors", "Times the member was put in error", errors);
    registry.register("member_sent_bytes", "Bytes sent to the member", sent);
    registry.register("member_received_bytes", "Bytes received from the member", received);
    registry.register("member_busy", "Requests in flight at the member", busy);
    registry.register("member_loadfactor", "The member's loadfactor", loadfactor);
    registry.register("member_flag", "1 when the member has the status flag (D S I R H E N C)", flags);
    registry.register("member_health_probes", "Health-check probes judged", probes);
    registry.register("member_health_failures", "Health-check probes that failed", probe_failures);
    register_lbmethods(&mut registry, &proxy);
    register_plugin_calls(&mut registry, &proxy);
    register_changes(&mut registry, control.stats());
    let spliced = Counter::<u64>::default();
    spliced.inc_by(crate::splice::moved_bytes());
    registry.register("spliced_bytes", "Response body bytes moved from member sockets to client sockets by splice(2), never copied through the proxy", spliced);
    let parked = Gauge::<i64>::default();
    parked.set(i64::try_from(control.parked_connections()).unwrap_or(i64::MAX));
    registry.register("parked_connections", "Idle HTTP/1 keep-alive client connections parked (held as a bare socket, without a task)", parked);
    let trims = Counter::<u64>::default();
    trims.inc_by(control.memory_trims());
    registry.register("memory_trims", "Times memory freed by many ended connection tasks was handed back to the system (glibc's malloc_trim)", trims);
    if let Some(log) = proxy.access_log() {
        let dropped = Counter::<u64>::default();
        dropped.inc_by(log.dropped());
        registry.register("access_log_dropped_lines", "Access-log lines dropped because a worker had gathered `buffer` lines the writer had not taken", dropped);
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("metrics could not be encoded: {e}"));
    }
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    r
}
