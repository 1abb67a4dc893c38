//! The Python and JavaScript projects (lbmethods): the WIT contract copied in (they have no
//! SDK crate to carry it), the module — a working least-busy method — a test that needs no
//! proxy, the build tool pinned as the examples pin it, a build script and a README.

/// The contract this binary speaks, copied into every project.
const WIT: [(&str, &str); 5] = [
    ("wit/worlds.wit", include_str!("../../../wit/worlds.wit")),
    ("wit/types.wit", include_str!("../../../wit/types.wit")),
    ("wit/lbmethod.wit", include_str!("../../../wit/lbmethod.wit")),
    ("wit/health-check.wit", include_str!("../../../wit/health-check.wit")),
    ("wit/header-rewrite.wit", include_str!("../../../wit/header-rewrite.wit")),
];

/// The build tools, pinned as the examples pin them (the versions tested with this host).
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
const COMPONENTIZE_JS: &str = "0.23.0";
/// componentize-js imports it at run time but declares it only as an optional peer, which
/// `npm ci` leaves out.
const PREVIEW2_SHIM: &str = "0.25.0";

fn with_wit(mut files: Vec<(String, String)>) -> Vec<(String, String)> {
    files.extend(WIT.iter().map(|(path, text)| (path.to_string(), text.to_string())));
    files
}

/// A Python lbmethod project.
pub(super) fn python(name: &str) -> Vec<(String, String)> {
    with_wit(vec![
        ("app.py".into(), python_app(name)),
        ("test_app.py".into(), PYTHON_TEST.to_string()),
        ("requirements.txt".into(), format!("{COMPONENTIZE_PY}\n")),
        ("build.sh".into(), PYTHON_BUILD.replace("{name}", &name.replace('-', "_"))),
        ("README.md".into(), python_readme(name)),
        (".gitignore".into(), "*.wasm\n__pycache__/\nbindings/\n".into()),
    ])
}

/// A JavaScript lbmethod project.
pub(super) fn js(name: &str) -> Vec<(String, String)> {
    with_wit(vec![
        ("app.js".into(), JS_APP.replace("{name}", name)),
        ("test.mjs".into(), JS_TEST.to_string()),
        ("package.json".into(), JS_PACKAGE.replace("{name}", name).replace("{version}", COMPONENTIZE_JS).replace("{shim}", PREVIEW2_SHIM)),
        ("build.sh".into(), JS_BUILD.replace("{name}", &name.replace('-', "_"))),
        ("README.md".into(), js_readme(name)),
        (".gitignore".into(), "*.wasm\nnode_modules/\n".into()),
    ])
}

fn python_app(name: &str) -> String {
    format!(
        r#""""{name}: a Switchyard load-balancing method in Python — the least busy candidate, ties to
the first. The contract is in wit/lbmethod.wit; its comments say what each call gets."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.lbmethod import Candidates, Decision, Feedback, Interest, PlannedPicks

# Columns of the candidate table (the WIT `member-field` enum): field f of candidate i is
# values[f * count + i].
MEMBER, LBFACTOR, LBSTATUS, BUSY, TRANSFERRED, READ = range(6)


class Lbmethod(exports.Lbmethod):
    def configure(self, config: str) -> None:
        if json.loads(config or "{{}}"):
            raise Err("{name}: takes no config")

    def wants(self) -> Interest:
        # completions: True to get how requests ended (latency, status) with every pick, in
        # `feedback`. plannable: True when only lbfactor and lbstatus decide (then `plan` is
        # asked for several picks at once); this method reads busy counts, so not.
        return Interest(completions=False, plannable=False)

    def reset(self, members: list) -> None:
        pass

    def pick(self, key: int, candidates: Candidates, feedback: Feedback | None):
        n, values = candidates.count, candidates.values
        busy = values[BUSY * n:(BUSY + 1) * n]
        return Decision(min(range(n), key=lambda i: busy[i]), [])

    def plan(self, candidates: Candidates, picks: int) -> PlannedPicks:
        # Asked only of a plannable method: `pick` `picks` times, each answer's lbstatus
        # deltas added before the next.
        return PlannedPicks([], [])

    def sticky_hit(self, usable: Candidates, chosen: int) -> list:
        # httpd's bookkeeping: every usable member gains its lbfactor, the chosen one the total.
        n, values = usable.count, usable.values
        deltas = list(values[LBFACTOR * n:(LBFACTOR + 1) * n])
        deltas[chosen] -= sum(deltas)
        return deltas
"#
    )
}

const PYTHON_TEST: &str = r#""""The method in plain CPython, against bindings componentize-py generates (see README.md)."""

import unittest

from app import BUSY, Lbmethod
from wit_world.exports.lbmethod import Candidates


def table(busy):
    n = len(busy)
    columns = [list(range(n)), [100] * n, [0] * n, busy, [0] * n, [0] * n]
    return Candidates(n, [v for column in columns for v in column])


class LeastBusy(unittest.TestCase):
    def test_picks_the_least_busy(self):
        plugin = Lbmethod()
        plugin.configure("{}")
        self.assertEqual(plugin.pick(0, table([3, 1, 2]), None).chosen, 1)
        self.assertEqual(plugin.pick(0, table([0, 0]), None).chosen, 0, "ties go to the first")


if __name__ == "__main__":
    unittest.main()
"#;

const PYTHON_BUILD: &str = r#"#!/usr/bin/env bash
# Builds the component: ./build.sh [OUTPUT]   (default {name}.wasm; needs requirements.txt installed)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/{name}.wasm}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/app.py" "$work/"
componentize-py -d "$here/wit" -w lbmethod-plugin componentize app -p "$work" -o "$out"
"#;

const JS_APP: &str = r#"// {name}: a Switchyard load-balancing method in JavaScript — the least busy candidate, ties
// to the first. The contract is in wit/lbmethod.wit; its comments say what each call gets.
//
// componentize-js maps it so: the exported interface is the object `lbmethod`, functions in
// camelCase; u64 and s64 are BigInt, list<s64> a BigInt64Array; records are objects with
// camelCase fields; option<T> is the value or undefined; a thrown string is the error of
// result<_, string>.

// Columns of the candidate table (the WIT `member-field` enum): field f of candidate i is
// values[f * count + i].
const LBFACTOR = 1, BUSY = 3;

export const lbmethod = {
  configure(config) {
    if (Object.keys(JSON.parse(config || "{}")).length > 0) throw "{name}: takes no config";
  },
  // completions: true to get how requests ended (latency, status) with every pick.
  // plannable: true when only lbfactor and lbstatus decide (then `plan` is asked for several
  // picks at once); this method reads busy counts, so not.
  wants() { return { completions: false, plannable: false }; },
  // Asked only of a plannable method: `pick` `picks` times, each answer's deltas added first.
  plan(candidates, picks) { return { chosen: [], lbstatusDelta: [] }; },
  reset(members) {},
  pick(key, candidates, feedback) {
    const n = candidates.count, values = candidates.values;
    let best = 0;
    for (let i = 1; i < n; i++) {
      if (values[BUSY * n + i] < values[BUSY * n + best]) best = i;
    }
    return { chosen: best, lbstatusDelta: [] };
  },
  // httpd's bookkeeping: every usable member gains its lbfactor, the chosen one the total.
  stickyHit(usable, chosen) {
    const n = usable.count, values = usable.values;
    const deltas = Array.from(values.slice(LBFACTOR * n, (LBFACTOR + 1) * n));
    deltas[chosen] -= deltas.reduce((a, b) => a + b, 0n);
    return deltas;
  },
};
"#;

const JS_TEST: &str = r#"// The method in plain Node.js: node test.mjs
import assert from "node:assert/strict";
import { lbmethod } from "./app.js";

function table(busy) {
  const n = busy.length;
  const columns = [busy.map((_, i) => i), busy.map(() => 100), busy.map(() => 0), busy, busy.map(() => 0), busy.map(() => 0)];
  return { count: n, values: BigInt64Array.from(columns.flat().map(BigInt)) };
}

lbmethod.configure("{}");
assert.equal(lbmethod.pick(0n, table([3, 1, 2])).chosen, 1);
assert.equal(lbmethod.pick(0n, table([0, 0])).chosen, 0, "ties go to the first");
console.log("ok");
"#;

const JS_PACKAGE: &str = r#"{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {
    "test": "node test.mjs",
    "build": "./build.sh"
  },
  "devDependencies": {
    "@bytecodealliance/componentize-js": "{version}",
    "@bytecodealliance/preview2-shim": "{shim}"
  }
}
"#;

const JS_BUILD: &str = r#"#!/usr/bin/env bash
# Builds the component: ./build.sh [OUTPUT]   (default {name}.wasm; needs `npm install` first)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/{name}.wasm}"
"$here/node_modules/.bin/componentize-js" --wit "$here/wit" --world-name lbmethod-plugin \
    --disable http --disable fetch-event --out "$out" "$here/app.js"
"#;

/// The README of a script project: how to build, test, check and load it.
fn readme(name: &str, lang: &str, tool: &str, pinned_in: &str, module: &str, commands: &str) -> String {
    let wasm = name.replace('-', "_");
    let commands = commands.replace("{wasm}", &wasm);
    format!(
        r#"# {name}

A Switchyard load-balancing method in {lang}, built into a WebAssembly component with
{tool} (pinned in `{pinned_in}`). `wit/` is the plugin contract this project was written
against; `{module}` the method.

```sh
{commands}switchyard plugin check {wasm}.wasm    # will a proxy load it?
```

Then, in the proxy's config:

```toml
[balancer.web]
lbmethod = {{ path = "{wasm}.wasm", config = {{}} }}
```

A {lang} pick costs tens of microseconds (the {lang} runtime is entered on every call): good
for trying a method, Rust (`switchyard plugin new {name} --lang rust`) for a hot path.
"#
    )
}

fn python_readme(name: &str) -> String {
    let commands = "pip install -r requirements.txt\n\
        componentize-py -d wit -w lbmethod-plugin bindings bindings    # once: the bindings, for the test\n\
        PYTHONPATH=bindings python3 -m unittest -v test_app            # the method in plain CPython\n\
        ./build.sh                                                     # {wasm}.wasm\n";
    readme(name, "Python", "componentize-py", "requirements.txt", "app.py", commands)
}

fn js_readme(name: &str) -> String {
    let commands = "npm install\nnpm test                               # the method in plain Node.js\n./build.sh                             # {wasm}.wasm\n";
    readme(name, "JavaScript", "componentize-js", "package.json", "app.js", commands)
}
