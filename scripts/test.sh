#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite: bash scripts/test.sh [build-dir] [meson options...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dir=${1:-build}
shift || true
[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
ninja -C "$dir" >/dev/null
meson test -C "$dir" --print-errorlogs
