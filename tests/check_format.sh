#!/usr/bin/env bash
# The tree is formatted with .clang-format: lists every file scripts/format.sh would change
# and fails; skips (exit 77, meson's skip) when clang-format is not installed.
#   check_format.sh SOURCE_ROOT
set -uo pipefail
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 1
command -v clang-format >/dev/null || { echo "SKIP: clang-format not found"; exit 77; }
bad=0
while read -r f; do
  if ! clang-format --style=file "$f" | cmp -s - "$f"; then
    echo "not formatted: $f"
    bad=$((bad + 1))
  fi
done < <(bash scripts/format.sh --list)
[ "$bad" -eq 0 ] || { echo "$bad files differ from clang-format's output: run bash scripts/format.sh"; exit 1; }
echo "every file is formatted"
