#!/usr/bin/env bash
# The sasrec program data-parallel (docs/distributed.md): 2 ranks under the MPI launcher
# train 6 epochs with the same flags as one process and checkpoint (only rank 0 prints
# and writes), then one process resumes the checkpoint to epoch 12 and must beat
# popularity by far; then 1 process's epoch 6 is resumed by 2 ranks. First the trainer
# itself in f64 (TEST_SASREC_DIST, sasrec/test_dist.c): 2 ranks against one process.
#   mpi_test.sh MPIRUN SASREC TEST_SASREC_DIST
set -euo pipefail
mpirun=$1 sasrec=$2 trainer=$3
flags=()
if "$mpirun" --version 2>&1 | grep -q "Open MPI"; then
  flags=(--oversubscribe)
  [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
timeout 120 "$mpirun" "${flags[@]}" -np 2 "$trainer" train "$dir/trainer" > "$dir/trainer.log" 2>&1 ||
  { echo "FAIL: the trainer on 2 ranks, 2 epochs:"; cat "$dir/trainer.log"; exit 1; }
timeout 120 "$trainer" check "$dir/trainer" > "$dir/trainer.log" 2>&1 ||
  { echo "FAIL: one process: not the same losses and weights, or no resume of the ranks' epoch 1:"; cat "$dir/trainer.log"; exit 1; }
if ls "$dir"/*.tmp* >/dev/null 2>&1; then echo "FAIL: a temporary checkpoint file was left"; exit 1; fi
echo "the trainer on 2 ranks = one process (f64): ok"
args=(--gen-users 1200 --gen-items 150 --gen-successors 2 --gen-noise 0.15 --gen-max-len 40 --maxlen 20 --hidden-units 32
      --num-blocks 1 --dropout-rate 0.2 --batch-size 64 --threads 1 --no-progress --eval-every 0)
timeout 300 "$mpirun" "${flags[@]}" -np 2 "$sasrec" "${args[@]}" --num-epochs 6 --checkpoint "$dir/a.ckpt" \
  --metrics "$dir/a.csv" > "$dir/ranks.log"
[ "$(grep -c '^data:' "$dir/ranks.log")" -eq 1 ] || { echo "FAIL: not only rank 0 printed:"; cat "$dir/ranks.log"; exit 1; }
[ "$(grep -c '^epoch [0-9]*: loss' "$dir/ranks.log")" -eq 6 ] || { echo "FAIL: epochs:"; cat "$dir/ranks.log"; exit 1; }
[ "$(wc -l < "$dir/a.csv")" -eq 7 ] || { echo "FAIL: the metrics file has $(wc -l < "$dir/a.csv") lines"; exit 1; }
timeout 300 "$sasrec" "${args[@]}" --num-epochs 12 --checkpoint "$dir/a.ckpt" --resume --target-hr 0.6 > "$dir/one.log"
grep -q "^resumed from .* after epoch 6" "$dir/one.log" || { echo "FAIL: no resume:"; cat "$dir/one.log"; exit 1; }
timeout 300 "$sasrec" "${args[@]}" --num-epochs 6 --checkpoint "$dir/b.ckpt" > /dev/null
timeout 300 "$mpirun" "${flags[@]}" -np 2 "$sasrec" "${args[@]}" --num-epochs 8 --checkpoint "$dir/b.ckpt" --resume \
  > "$dir/ranks2.log"
grep -q "^resumed from .* after epoch 6" "$dir/ranks2.log" || { echo "FAIL: 2 ranks did not resume:"; cat "$dir/ranks2.log"; exit 1; }
tail -3 "$dir/ranks.log"
grep "^summary" "$dir/one.log"
echo "sasrec under mpirun -np 2: ok"
