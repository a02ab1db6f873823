#!/usr/bin/env bash
# Data-parallel SASRec scaling on this machine: bench_distributed with 1 and 2 ranks of one
# thread each (blocking allreduce and overlap), then the scaling efficiency T1 / (N T_N)
# of each mode as a JSON line.
#   bash bench/distributed.sh [build-dir] [epochs]
set -euo pipefail
build=${1:-build} epochs=${2:-2}
exe=$build/examples/bench_distributed
mpirun=$(command -v mpirun || command -v mpiexec) || { echo "no mpirun: install Open MPI (scripts/setup.sh)"; exit 1; }
flags=()
if "$mpirun" --version 2>&1 | grep -q "Open MPI"; then
  flags=(--oversubscribe --bind-to none)
  [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for np in 1 2; do
  "$mpirun" "${flags[@]}" -np "$np" "$exe" --epochs "$epochs" --threads 1 | tee -a "$out"
done
field() { # MODE RANKS KEY: a number from the JSON lines
  grep "\"ranks\":$2," "$out" | grep "\"mode\":\"$1\"" | sed -E "s/.*\"$3\":([0-9.]+).*/\1/"
}
for mode in blocking overlap; do
  t1=$(field "$mode" 1 seconds_per_epoch) t2=$(field "$mode" 2 seconds_per_epoch)
  awk -v m="$mode" -v t1="$t1" -v t2="$t2" 'BEGIN {
    printf "{\"bench\":\"distributed-scaling\",\"mode\":\"%s\",\"seconds_per_epoch_1_rank\":%.3f,", m, t1
    printf "\"seconds_per_epoch_2_ranks\":%.3f,\"speedup\":%.2f,\"scaling_efficiency\":%.2f}\n", t2, t1 / t2, t1 / (2 * t2) }'
done
