#!/usr/bin/env bash
# Builds the rendezvous lbmethod plugin from Python into a Wasm component.
#
#   pip install componentize-py==0.25.1
#   examples/plugins/rendezvous-py/build.sh [OUTPUT]     # default: rendezvous.wasm beside this script
#
# componentize-py bundles CPython, the standard library modules the plugin imports and the
# bindings it generates from ../../../wit (world lbmethod-plugin) into one component.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/rendezvous.wasm}"
componentize-py -d "$here/../../../wit" -w lbmethod-plugin componentize rendezvous -p "$here" -o "$out"
