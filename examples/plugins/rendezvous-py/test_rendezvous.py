"""Native unit tests of the Python plugin: plain CPython, no Wasm.

componentize-py generates the bindings the plugin imports; generate them once, then run:

  componentize-py -d ../../../wit -w lbmethod-plugin bindings /tmp/rendezvous-bindings
  PYTHONPATH=/tmp/rendezvous-bindings python3 -m unittest -v test_rendezvous

(The end-to-end tests run these too, then build the component and run it under the proxy.)
Imported functions (the host's log) have no implementation outside Wasm: they are replaced
here. The pinned numbers are the ones rendezvous-rs/src/lib.rs pins, so the two agree.
"""

import json
import unittest

from wit_world.imports import log

log.enabled = lambda level: False
log.write = lambda level, message: None

import rendezvous  # noqa: E402  (after the log stubs, as the plugin logs in configure)
from componentize_py_types import Err  # noqa: E402
from wit_world.exports.lbmethod import Candidates, MemberInfo  # noqa: E402


class Sim:
    """A tiny stand-in for the host: members, lbstatus and busy, deltas applied."""

    def __init__(self, config, weights):
        self.plugin = rendezvous.Lbmethod()
        self.plugin.configure(json.dumps(config))
        self.names = [chr(ord("a") + i) for i in range(len(weights))]
        self.lbfactor = [int(w * 100) for w in weights]
        self.lbstatus = [0] * len(weights)
        self.busy = [0] * len(weights)
        self.plugin.reset([MemberInfo(n, "", 0) for n in self.names])

    def pick(self, key, among=None):
        among = list(range(len(self.names))) if among is None else among
        columns = [among, [self.lbfactor[m] for m in among], [self.lbstatus[m] for m in among],
                   [self.busy[m] for m in among], [0] * len(among), [0] * len(among)]
        decision = self.plugin.pick(key, Candidates(len(among), [v for col in columns for v in col]), None)
        if decision is None:
            return None
        assert 0 <= decision.chosen < len(among)
        assert len(decision.lbstatus_delta) in (0, len(among))
        for m, d in zip(among, decision.lbstatus_delta):
            self.lbstatus[m] += d
        return self.names[among[decision.chosen]]


class RendezvousTest(unittest.TestCase):
    def test_hash_functions_are_pinned(self):
        self.assertEqual(rendezvous.mix64(1), 0x5692161D100B05E5)
        self.assertEqual(rendezvous.fnv1a64(b"http://127.0.0.1:8080"), 0x75327DA3B04BCBF2)
        self.assertEqual(rendezvous.score(42, rendezvous.fnv1a64(b"a"), 100), 57.22329758672297)
        self.assertEqual(rendezvous.member_seed(MemberInfo("http://x", "r1", 0)), rendezvous.fnv1a64(b"r1"))

    def test_keyless_requests_round_robin_by_weight(self):
        sim = Sim({}, [1, 2, 3])
        self.assertEqual([sim.pick(0) for _ in range(6)], ["c", "b", "a", "c", "b", "c"])
        self.assertEqual(sim.lbstatus, [0, 0, 0])

    def test_keyless_requests_can_be_refused(self):
        sim = Sim({"keyless": "refuse"}, [1, 1])
        self.assertIsNone(sim.pick(0))
        self.assertIsNotNone(sim.pick(5))

    def test_only_a_leaving_members_keys_move(self):
        sim = Sim({}, [1, 2, 1, 3])
        for key in range(1, 1001):
            before, after = sim.pick(key), sim.pick(key, [0, 1, 3])
            if before == "c":
                self.assertNotEqual(after, "c")
            else:
                self.assertEqual(after, before, f"key {key}")

    def test_bounded_loads_send_a_key_to_its_next_choice(self):
        sim = Sim({"balance_factor": 150}, [1, 1, 1])
        first = sim.names.index(sim.pick(42))
        second = sim.names.index(sim.pick(42, [i for i in range(3) if i != first]))
        sim.busy[first] = 1  # cap = ceil(1.5 * 2 / 3) = 1 < 2
        self.assertEqual(sim.pick(42), sim.names[second])
        sim.busy[3 - first - second] = 3  # cap = ceil(1.5 * 5 / 3) = 3 >= 2
        self.assertEqual(sim.pick(42), sim.names[first])

    def test_bad_config_is_refused_with_a_clear_message(self):
        for config, message in [('{"balance_factor": 99}', "from 100 to 10000"),
                                ('{"balance_factor": 1.5}', "from 100 to 10000"),
                                ('{"keyless": "random"}', "keyless must be"),
                                ('{"balance": 1}', "unknown config key `balance`"),
                                ("[1]", "must be a table")]:
            with self.assertRaises(Err) as caught:
                rendezvous.Lbmethod().configure(config)
            self.assertIn(message, caught.exception.value)

    def test_sticky_hit_is_httpds_bookkeeping(self):
        plugin = rendezvous.Lbmethod()
        deltas = plugin.sticky_hit(Candidates(2, [0, 1, 100, 300, 0, 0, 0, 0, 0, 0, 0, 0]), 1)
        self.assertEqual(deltas, [100, -100])


if __name__ == "__main__":
    unittest.main()
