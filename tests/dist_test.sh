#!/usr/bin/env bash
# The MPI cases of tests/test_dist.c under the MPI launcher:
#   dist_test.sh TEST_DIST MPIRUN   or   dist_test.sh --skip REASON (exit 77:
#   meson's skip)
# Each case is bounded by a timeout; a case fails on a non-zero exit, a timeout, or (the
# failure cases) a job that takes more than FAIL_SECONDS or lacks the failing rank's message.
set -uo pipefail
if [ "$1" = --skip ]; then
  echo "SKIP: $2"
  exit 77
fi
exe=$1 mpirun=$2
FAIL_SECONDS=10
flags=()
if "$mpirun" --version 2>&1 | grep -q "Open MPI"; then
  flags=(--oversubscribe) # more ranks than cores
  [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
run() { # NP ARGS...: the launcher, or the plain program for NP 0
  local np=$1
  shift
  if [ "$np" -eq 0 ]; then timeout 120 "$exe" "$@"
  else timeout 120 "$mpirun" "${flags[@]}" -np "$np" "$exe" "$@"; fi
}
case_() { # NAME NP ARGS...
  local name=$1
  shift
  if run "$@" >"$tmp/out" 2>&1; then
    echo "ok   $name"
  else
    echo "FAIL $name (exit $?):"
    cat "$tmp/out"
    failed=1
  fi
}

case_ "2 ranks = one process on the union batch" 2 equal
case_ "3 ranks = one process on the union batch" 3 equal
case_ "dropout masks differ per rank, runs reproducible" 2 dropout
case_ "a different parameter layout is named" 2 layout
case_ "2 ranks save at epoch 2" 2 save "$tmp/a.ckpt" 2
case_ "1 process resumes them to epoch 4" 0 resume "$tmp/a.ckpt" 4
case_ "1 process saves at epoch 2" 0 save "$tmp/b.ckpt" 2
case_ "2 ranks resume it to epoch 4" 2 resume "$tmp/b.ckpt" 4
case_ "3 ranks resume it to epoch 4" 3 resume "$tmp/b.ckpt" 4
ls "$tmp"/*.tmp* >/dev/null 2>&1 && { echo "FAIL a temporary checkpoint file was left"; failed=1; }

# A rank that fails mid-epoch ends the job within seconds, with its message.
for how in abort exit kill; do
  start=$(date +%s%N)
  run 2 fail "$how" >"$tmp/out" 2>&1
  rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  case $how in
    abort) want="heed: rank 1 of 2: test_dist: injected failure at step 2" ;;
    exit) want="heed: rank 1 of 2 exited without heed_dist_finalize" ;;
    kill) want="test_dist: rank 1: injected kill at step 2" ;;
  esac
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qF "$want" "$tmp/out" && [ "$ms" -lt $((FAIL_SECONDS * 1000)) ]; then
    echo "ok   rank 1 fails ($how): the job ends in ${ms} ms with its message"
  else
    echo "FAIL rank 1 fails ($how): exit $rc after ${ms} ms, want non-zero within ${FAIL_SECONDS}s and '$want':"
    cat "$tmp/out"
    failed=1
  fi
done
exit $failed
