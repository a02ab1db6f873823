#!/usr/bin/env bash
# Sets up, builds and runs the main job: trains an example end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
./build/examples/spirals "$@"
