#!/usr/bin/env bash
# spirals' outputs: --out DIR is the only place written (no ./runs), the files named are
# the ones written, and an --out it cannot write to fails naming nothing as written.
set -euo pipefail
spirals=$(realpath "$1")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
"$spirals" --steps 20 --out out > ok.log 2> /dev/null
[ ! -e runs ] || { echo "--out out still created ./runs"; exit 1; }
[ -s out/metrics.csv ] && [ -s out/loss.svg ] || { echo "outputs missing: $(ls out)"; exit 1; }
grep -q "^metrics: out/metrics.csv$" ok.log && grep -q "^loss curve: out/loss.svg$" ok.log || { cat ok.log; exit 1; }
# out is a file: nothing can be written under it
touch blocked
if "$spirals" --steps 20 --out blocked > bad.log 2> bad.err; then echo "--out blocked succeeded"; exit 1; fi
grep -q "blocked/metrics.csv" bad.err || { echo "unexpected error: $(cat bad.err)"; exit 1; }
if grep -q "blocked/" bad.log; then echo "named a file it did not write: $(cat bad.log)"; exit 1; fi
# a missing parent is not made for --out
if "$spirals" --steps 20 --out missing/run > /dev/null 2> miss.err; then echo "--out missing/run succeeded"; exit 1; fi
[ ! -e missing ] || { echo "made missing/"; exit 1; }
echo "spirals outputs ok"
