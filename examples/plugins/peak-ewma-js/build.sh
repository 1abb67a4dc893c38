#!/usr/bin/env bash
# Builds the peak-EWMA lbmethod plugin from JavaScript into a Wasm component.
#
#   npm ci                                    # componentize-js, pinned in package-lock.json
#   examples/plugins/peak-ewma-js/build.sh [OUTPUT]   # default: peak_ewma.wasm beside this script
#
# componentize-js generates bindings from the repository's wit/ (world lbmethod-plugin),
# evaluates the module once inside the StarlingMonkey engine and snapshots it (wizer), and
# writes one component (~12 MB) holding the engine and that snapshot. The HTTP and
# fetch-event features are left out: a plugin has no network. Offline.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/peak_ewma.wasm}"
"$here/node_modules/.bin/componentize-js" --wit "$here/../../../wit" --world-name lbmethod-plugin \
    --disable http --disable fetch-event --out "$out" "$here/peak_ewma.js"
