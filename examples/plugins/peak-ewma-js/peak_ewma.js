// peak-EWMA with power of two choices: a Switchyard lbmethod plugin in JavaScript.
//
// The same method as ../peak-ewma-rs/src/lib.rs (read its header for the why): for every
// request two different candidates are drawn at random and the cheaper one wins; a member's
// cost is its latency estimate × (requests in flight + 1) ÷ loadfactor. The estimate follows
// each answer's time to the response head (completion feedback, contract 0.2.0); a slower
// sample replaces it at once, faster ones pull it down gradually, and it decays towards zero
// while the member is left alone. A failed attempt counts as `failure_ms`.
//
// Config (all optional): { decay_ms = 10000, default_rtt_ms = 30, failure_ms = 5000 }.
//
// How the WIT maps to JavaScript (componentize-js): the exported interface is the object
// `lbmethod`, functions in camelCase; u64 and s64 are BigInt, and list<s64> a BigInt64Array;
// records are objects with camelCase fields; option<T> is the value or undefined; a thrown
// string is the `err` of result<_, string>.
//
// Build: npm ci && ./build.sh (see build.sh).
// Settings, in microseconds.
let decayMicros = 10_000_000, defaultRtt = 30_000, failureMicros = 5_000_000;
// Per member position (the list given to `reset`): { rtt, at, seen }. A cache of what the
// completions said; a new instance rebuilds it within a few requests.
let estimates = [];
// splitmix64 state for the two random choices.
let rng = 0x5EEDn;
const MASK = (1n << 64n) - 1n;
function nextRandom() {
  rng = (rng + 0x9E3779B97F4A7C15n) & MASK;
  let z = rng;
  z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & MASK;
  return z ^ (z >> 31n);
}
export const lbmethod = {
  configure(config) {
    const c = JSON.parse(config || "{}");
    for (const k of Object.keys(c)) {
      if (!["decay_ms", "default_rtt_ms", "failure_ms"].includes(k)) throw `peak-ewma: unknown key ${k}`;
    }
    if (c.decay_ms !== undefined) { if (!(c.decay_ms >= 1)) throw "peak-ewma: decay_ms must be at least 1"; decayMicros = c.decay_ms * 1000; }
    if (c.default_rtt_ms !== undefined) defaultRtt = c.default_rtt_ms * 1000;
    if (c.failure_ms !== undefined) failureMicros = c.failure_ms * 1000;
  },
  wants() { return { completions: true, plannable: false }; },
  // Never called: a method that learns from completions is not plannable.
  plan(candidates, picks) { return { chosen: [], lbstatusDelta: [] }; },
  reset(members) { estimates = members.map(() => ({ rtt: defaultRtt, at: 0, seen: false })); },
  pick(key, candidates, feedback) {
    // Completions: column-major, fields member, outcome, status, head-micros, total-micros,
    // received, finished-at.
    const now = feedback ? Number(feedback.now) : 0;
    if (feedback) {
      const n = feedback.count, v = feedback.values;
      for (let i = 0; i < n; i++) {
        const member = Number(v[i]), outcome = Number(v[n + i]), head = Number(v[3 * n + i]);
        const total = Number(v[4 * n + i]), at = Number(v[6 * n + i]);
        const rtt = outcome === 0 && head >= 0 ? head : Math.max(total, failureMicros);
        const e = estimates[member];
        if (!e) continue;
        if (!e.seen) { e.rtt = rtt; e.at = at; e.seen = true; continue; }
        const w = Math.exp(-Math.max(0, at - e.at) / decayMicros);
        e.rtt = rtt > e.rtt ? rtt : e.rtt * w + rtt * (1 - w);
        e.at = Math.max(e.at, at);
      }
    }
    const n = candidates.count;
    if (n <= 1) return n === 1 ? { chosen: 0, lbstatusDelta: [] } : undefined;
    // Candidates: column-major, fields member, lbfactor, lbstatus, busy, transferred, read.
    const cost = (i) => {
      const v = candidates.values;
      const member = Number(v[i]), lbfactor = Number(v[n + i]), busy = Number(v[3 * n + i]);
      const e = estimates[member];
      let rtt = defaultRtt;
      if (e) {
        if (e.seen && now > e.at) { e.rtt *= Math.exp(-(now - e.at) / decayMicros); e.at = now; }
        rtt = e.rtt;
      }
      return rtt * (busy + 1) * 100 / Math.max(lbfactor, 1);
    };
    const a = Number(nextRandom() % BigInt(n));
    let b = Number(nextRandom() % BigInt(n - 1));
    if (b >= a) b += 1;
    return { chosen: cost(b) < cost(a) ? b : a, lbstatusDelta: [] };
  },
  // httpd's bookkeeping for a sticky request (this method keeps no lbstatus, but the host's
  // default keeps the column meaningful should the balancer switch methods).
  stickyHit(usable, chosen) {
    const n = usable.count, v = usable.values;
    const deltas = [];
    let total = 0n;
    for (let i = 0; i < n; i++) { deltas.push(v[n + i]); total += v[n + i]; }
    deltas[chosen] -= total;
    return deltas;
  },
};
