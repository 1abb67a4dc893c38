"""Weighted rendezvous hashing with bounded loads: a Switchyard lbmethod plugin in Python.

Requests that carry a key (the balancer's `hashkey`: a header, a cookie, the client address,
the path) go to the member with the highest weighted score for that key, so the same key keeps
reaching the same member, and when a member leaves (error, drain, removal) only its own keys
move, spread over the others in proportion to their weights. Good for caches and for anything
that keeps per-user state in a member's memory.

Config (the plugin's table in the proxy config, all optional):

  balance_factor = 125      # bounded loads: a member may carry at most 125% of its weighted
                            # share of the requests in flight, else the key's next choice
                            # takes the request (HAProxy's hash-balance-factor). Absent: no bound.
  keyless = "round-robin"   # requests without a key: smooth weighted round robin (the default),
                            # or "refuse" (the client gets 503).

This file and ../rendezvous-rs/src/lib.rs implement the same algorithm bit for bit; the
end-to-end tests check that both send every key to the same member.

Build: ./build.sh (componentize-py against the repo's wit/, world lbmethod-plugin).
"""

import json
import math

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.lbmethod import Candidates, Decision, Feedback, Interest, MemberInfo, PlannedPicks
from wit_world.imports import log
from wit_world.imports.types import LogLevel

MASK64 = (1 << 64) - 1

# Column numbers of the candidate table (the WIT `member-field` enum).
MEMBER, LBFACTOR, LBSTATUS, BUSY = 0, 1, 2, 3


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bits: a member's identity (its route, else its URL) as a seed."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & MASK64
    return h


def mix64(z: int) -> int:
    """The splitmix64 finaliser: spreads key ^ seed over all 64 bits."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def score(key: int, seed: int, weight: int) -> float:
    """Weighted rendezvous score: weight / -ln(u), u uniform in (0, 1) from the hash.

    52 bits of the hash plus one half keep u strictly inside (0, 1) with no rounding, so the
    logarithm is never 0 and Python and Rust compute the same double.
    """
    u = ((mix64(key ^ seed) >> 12) + 0.5) / 4503599627370496.0  # 2**52
    return weight / -math.log(u)


def member_seed(info: MemberInfo) -> int:
    return fnv1a64((info.route or info.url).encode())


# The plugin's state. One instance of this module serves one Wasm instance; the host may run
# several instances per balancer and replace any of them, so everything here is derived from
# configure and reset, never accumulated from requests.
_balance_factor = None  # int percent >= 100, or None
_refuse_keyless = False
_seeds = []


def _parse_config(text: str):
    try:
        config = json.loads(text or "{}")
    except ValueError as e:
        raise Err(f"rendezvous: config is not valid JSON: {e}")
    if not isinstance(config, dict):
        raise Err("rendezvous: config must be a table")
    unknown = sorted(set(config) - {"balance_factor", "keyless"})
    if unknown:
        raise Err(f"rendezvous: unknown config key `{unknown[0]}` (known: balance_factor, keyless)")
    factor = config.get("balance_factor")
    if factor is not None and (type(factor) is not int or not 100 <= factor <= 10000):
        raise Err("rendezvous: balance_factor must be an integer percentage from 100 to 10000")
    keyless = config.get("keyless", "round-robin")
    if keyless not in ("round-robin", "refuse"):
        raise Err('rendezvous: keyless must be "round-robin" or "refuse"')
    return factor, keyless == "refuse"


def _round_robin(count: int, values) -> Decision:
    """httpd's byrequests: every candidate's lbstatus grows by its lbfactor, the highest wins
    (ties to the first), and the winner gives back the total."""
    factors = values[LBFACTOR * count:(LBFACTOR + 1) * count]
    statuses = values[LBSTATUS * count:(LBSTATUS + 1) * count]
    best, best_status = 0, None
    for i in range(count):
        status = statuses[i] + factors[i]
        if best_status is None or status > best_status:
            best, best_status = i, status
    deltas = list(factors)
    deltas[best] -= sum(factors)
    return Decision(best, deltas)


class Lbmethod(exports.Lbmethod):
    def configure(self, config: str) -> None:
        global _balance_factor, _refuse_keyless
        _balance_factor, _refuse_keyless = _parse_config(config)
        if log.enabled(LogLevel.DEBUG):
            log.write(LogLevel.DEBUG, f"rendezvous: balance_factor={_balance_factor} refuse_keyless={_refuse_keyless}")

    def wants(self) -> Interest:
        # Hashing needs no completion feedback: the host then sends none and pays nothing.
        # Nor plans: the key decides, and plans are only for methods that ignore it.
        return Interest(completions=False, plannable=False)

    def reset(self, members: list) -> None:
        global _seeds
        _seeds = [member_seed(m) for m in members]

    def pick(self, key: int, candidates: Candidates, feedback: Feedback | None):
        count, values = candidates.count, candidates.values
        if key == 0:
            return None if _refuse_keyless else _round_robin(count, values)
        members = values[MEMBER * count:(MEMBER + 1) * count]
        factors = values[LBFACTOR * count:(LBFACTOR + 1) * count]
        seeds = _seeds
        # A member the host has not described yet (cannot happen after reset) hashes by position.
        scores = [
            score(key, seeds[m] if 0 <= m < len(seeds) else mix64(m), factors[i])
            for i, m in enumerate(members)
        ]
        if _balance_factor is None:
            best = 0
            for i in range(1, count):
                if scores[i] > scores[best]:
                    best = i
            return Decision(best, [])
        # Bounded loads: the key's candidates from best to worst score (ties to the lower
        # index); the first whose in-flight requests, with this one, stay within
        # ceil(factor% of its weighted share of all in-flight requests plus this one).
        # With a factor of at least 100% some candidate always qualifies.
        busy = values[BUSY * count:(BUSY + 1) * count]
        total_weight = sum(factors)
        budget = _balance_factor * (sum(busy) + 1)
        for i in sorted(range(count), key=lambda i: (-scores[i], i)):
            cap = -(-budget * factors[i] // max(1, 100 * total_weight))
            if busy[i] + 1 <= cap:
                return Decision(i, [])
        return Decision(0, [])

    def plan(self, candidates: Candidates, picks: int) -> PlannedPicks:
        # Never called: this method is not plannable (see `wants`).
        return PlannedPicks([], [])

    def sticky_hit(self, usable: Candidates, chosen: int) -> list:
        # httpd's default bookkeeping, as the Rust SDK's default: every usable member gains its
        # lbfactor, the chosen one gives back the total (keeps keyless round robin fair).
        count = usable.count
        deltas = list(usable.values[LBFACTOR * count:(LBFACTOR + 1) * count])
        if 0 <= chosen < count:
            deltas[chosen] -= sum(deltas)
        return deltas
