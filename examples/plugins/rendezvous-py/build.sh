#!/usr/bin/env bash
# Builds the rendezvous lbmethod plugin from Python into a Wasm component.
#
#   pip install -r requirements.txt      # componentize-py, pinned
#   examples/plugins/rendezvous-py/build.sh [OUTPUT]     # default: rendezvous.wasm beside this script
#
# componentize-py generates bindings from the repository's wit/ (world lbmethod-plugin), runs
# the module once to snapshot CPython with it imported, and writes one component (~18 MB)
# holding the interpreter, that snapshot and the standard library modules it uses. Offline.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/rendezvous.wasm}"
# Build from a scratch copy: componentize-py leaves __pycache__ beside the sources it imports.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/rendezvous.py" "$work/"
componentize-py -d "$here/../../../wit" -w lbmethod-plugin componentize rendezvous -p "$work" -o "$out"
