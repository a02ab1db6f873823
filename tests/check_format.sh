#!/usr/bin/env bash
# The tree is formatted with .clang-format: lists every file scripts/format.sh would change
# and fails; skips (exit 77, meson's skip) when clang-format is not installed.
#   check_format.sh SOURCE_ROOT
set -uo pipefail
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 1
command -v clang-format >/dev/null || { echo "SKIP: clang-format not found"; exit 77; }
# One clang-format per 40 files, two at a time: a process per file took 30 s on a loaded machine.
out=$(bash scripts/format.sh --list | xargs -P 2 -n 40 clang-format --style=file --dry-run -Werror 2>&1)
status=$?
bad=$(printf '%s\n' "$out" | grep -oE '^[^:]+:[0-9]+:[0-9]+: error' | cut -d: -f1 | sort -u)
if [ "$status" -ne 0 ] && [ -z "$bad" ]; then echo "clang-format failed: $out"; exit 1; fi
if [ -n "$bad" ]; then
  printf 'not formatted: %s\n' $bad
  echo "$(printf '%s\n' $bad | wc -l) files differ from clang-format's output: run bash scripts/format.sh"
  exit 1
fi
echo "every file is formatted"
