#!/usr/bin/env bash
# Formats heed's C sources in place with the repository's .clang-format: every .c and .h
# under graph ops optim io viz models dist examples tests bench include, except generated
# files (a first line saying "Generated ... do not edit": the PyTorch reference tables).
#   bash scripts/format.sh          format them (and regenerate docs/api.md from the headers)
#   bash scripts/format.sh --list   print their paths (relative to the root), change nothing
# tests/check_format.sh checks the same list.
set -euo pipefail
cd "$(dirname "$0")/.."
list() {
  find graph ops optim io viz models dist examples tests bench include -type f \( -name '*.c' -o -name '*.h' \) |
    LC_ALL=C sort |
    while read -r f; do
      head -n 1 "$f" | grep -qi 'generated.*do not edit' || echo "$f"
    done
}
if [ "${1:-}" = --list ]; then
  list
  exit 0
fi
command -v clang-format >/dev/null || { echo "format.sh: clang-format not found (apt-get install clang-format)" >&2; exit 1; }
list | xargs -r -n 20 -P 2 clang-format -i --style=file
# docs/api.md is generated from the headers just formatted
python3 scripts/gen_api_doc.py > docs/api.md
