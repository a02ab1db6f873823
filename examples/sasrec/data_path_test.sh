#!/usr/bin/env bash
# The real-data path of the sasrec program end to end: a dataset in the paper's format
# (users interleaved, CRLF line ends), training with --data, a checkpoint and a resumed
# run, the Markov-chain baseline, and a malformed file refused with its line number.
set -euo pipefail
sasrec=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
gen=(--gen-users 1200 --gen-items 150 --gen-successors 2 --gen-noise 0.15 --gen-max-len 40)
train=(--maxlen 20 --hidden-units 32 --num-blocks 1 --dropout-rate 0.2 --batch-size 64 --threads 1 --no-progress)
"$sasrec" "${gen[@]}" --num-epochs 0 --save-data "$dir/gen.txt" > /dev/null
# a stable sort by user id, descending, keeps each user's lines in time order
sort -s -k1,1nr "$dir/gen.txt" | sed 's/$/\r/' > "$dir/data.txt"
"$sasrec" --data "$dir/data.txt" "${train[@]}" --num-epochs 6 --eval-every 0 \
  --checkpoint "$dir/run.ckpt" > "$dir/first.log"
"$sasrec" --data "$dir/data.txt" "${train[@]}" --num-epochs 12 --eval-every 0 \
  --checkpoint "$dir/run.ckpt" --resume --target-hr 0.6 | tee "$dir/second.log"
grep -q "^resumed from .* after epoch 6" "$dir/second.log"
grep -q "^Markov chain" "$dir/second.log"
# a malformed line stops the load with the file, the line number and the line
printf '3 7\n3 x9\n' >> "$dir/data.txt"
if "$sasrec" --data "$dir/data.txt" "${train[@]}" --num-epochs 1 2> "$dir/err.log" > /dev/null; then
  echo "a malformed file was accepted"; exit 1
fi
lines=$(wc -l < "$dir/data.txt")
grep -q "data.txt:$lines:" "$dir/err.log" || { echo "unexpected error: $(cat "$dir/err.log")"; exit 1; }
echo "data path ok: $(cat "$dir/err.log")"
