#!/usr/bin/env bash
# The sasrec program fails loudly and loses nothing: every refusal and failed write exits
# with its status (2: bad flags or outputs, refused before any work; 1: a failure while
# running) and a message naming the path or flag and the reason. The exact status also
# catches leaks: under the ASan suite (detect_leaks=1) a leak changes it.
set -uo pipefail
sasrec=$1
prog=$sasrec
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
small=(--gen-users 300 --gen-items 150 --maxlen 10 --hidden-units 8 --num-blocks 1 --batch-size 64 --threads 1
  --no-progress --negatives 20 --eval-users 50)

source "$(dirname "$0")/../program_test_util.sh"
no_training() { # the refusal came before any epoch ran
  if grep -q "^epoch " "$dir/out.log"; then echo "FAIL: $1: trained before refusing"; failures=$((failures + 1)); fi
}

# A loss that becomes NaN (a learning rate that diverges): when and where, and the hint.
expect 1 "loss became NaN at epoch 1 step" "--anomaly" -- "${small[@]}" --num-epochs 3 --lr 1e10
# with --anomaly the op that made the first NaN/Inf is named instead
expect 1 "epoch 1 step" "NaN or Inf" -- "${small[@]}" --num-epochs 3 --lr 1e10 --anomaly

# Metrics that cannot be written: at the start (/dev/full takes no header) ...
expect 1 "/dev/full" "No space left on device" -- "${small[@]}" --num-epochs 2 --metrics /dev/full
no_training "--metrics /dev/full"
# ... and in the middle of a run (a 1 KiB file size limit: a row fails after some epochs).
( trap '' XFSZ; ulimit -f 1; exec "$sasrec" "${small[@]}" --num-epochs 60 --eval-every 0 \
  --metrics "$dir/m.csv" > /dev/null 2> "$dir/err.log" )
got=$?
if [ $got != 1 ] || ! grep -qF "$dir/m.csv: File too large" "$dir/err.log"; then
  echo "FAIL: a failed metrics row: exit $got, $(cat "$dir/err.log")"; failures=$((failures + 1))
else
  echo "ok: $(cat "$dir/err.log")"
fi
# The standard output is checked too.
"$sasrec" "${small[@]}" --num-epochs 1 > /dev/full 2> "$dir/err.log"
got=$?
if [ $got != 1 ] || ! grep -q "writing the standard output: No space left" "$dir/err.log"; then
  echo "FAIL: stdout on /dev/full: exit $got, $(cat "$dir/err.log")"; failures=$((failures + 1))
else
  echo "ok: $(cat "$dir/err.log")"
fi

# Memory bounded by what the file can justify. Without sanitizers (which reserve terabytes
# of address space) under a 2 GB address space limit: asking for the 16 GiB would fail.
limit=(ulimit -v 2000000)
case "${SASREC_SANITIZE:-none}" in *address*) limit=(true) ;; esac
printf '2147483647 3\n' > "$dir/huge.txt"
( "${limit[@]}"; exec "$sasrec" --data "$dir/huge.txt" --num-epochs 1 > /dev/null 2> "$dir/err.log" )
got=$?
if [ $got != 1 ] || ! grep -qF "huge.txt:1: user id 2147483647 is far beyond the file's 1 line" "$dir/err.log"; then
  echo "FAIL: huge id: exit $got, $(cat "$dir/err.log")"; failures=$((failures + 1))
else
  echo "ok: $(cat "$dir/err.log")"
fi
( "${limit[@]}"; exec timeout 60 "$sasrec" --data /dev/zero --num-epochs 1 > /dev/null 2> "$dir/err.log" )
got=$?
if [ $got != 1 ] || ! grep -qF "/dev/zero:1: line longer than 4096 bytes" "$dir/err.log"; then
  echo "FAIL: /dev/zero: exit $got, $(head -c 300 "$dir/err.log")"; failures=$((failures + 1))
else
  echo "ok: $(head -c 80 "$dir/err.log")..."
fi

# Fewer unseen items than --negatives: refused before training, naming the user.
expect 1 "fewer than the 100 negatives" "user " -- "${small[@]}" --gen-items 60 --negatives 100 --num-epochs 1
no_training "--negatives 100 with 60 items"

# Flags that would be ignored or would destroy something: refused up front.
expect 2 "--gen-users has no effect with --data" -- --data "$dir/huge.txt" --gen-users 50
expect 2 "--gen has no effect with --data" -- --gen small --data "$dir/huge.txt"
printf 'precious' > "$dir/old.ckpt"
expect 2 "--checkpoint $dir/old.ckpt exists" "--resume" -- "${small[@]}" --num-epochs 1 --checkpoint "$dir/old.ckpt"
[ "$(cat "$dir/old.ckpt")" = precious ] || { echo "FAIL: the existing checkpoint was touched"; failures=$((failures + 1)); }
touch "$dir/a-file"
expect 2 "--checkpoint $dir/missing/x.ckpt: directory $dir/missing: No such file" -- \
  "${small[@]}" --num-epochs 1 --checkpoint "$dir/missing/x.ckpt"
expect 2 "--heatmap $dir/a-file/attn.svg: $dir/a-file is not a directory" -- \
  "${small[@]}" --num-epochs 1 --heatmap "$dir/a-file/attn.svg"
expect 2 "--metrics $dir: is a directory" -- "${small[@]}" --num-epochs 1 --metrics "$dir"
expect 2 "--save-data $dir/missing/d.txt" -- "${small[@]}" --num-epochs 1 --save-data "$dir/missing/d.txt"
# files written atomically (renamed over the path) must be regular files: a device or
# FIFO would be replaced (a FIFO here: nothing outside this directory is at risk)
mkfifo "$dir/fifo"
expect 2 "--save-data $dir/fifo: not a regular file" -- "${small[@]}" --num-epochs 1 --save-data "$dir/fifo"
expect 2 "--heatmap $dir/fifo: not a regular file" -- "${small[@]}" --num-epochs 1 --heatmap "$dir/fifo"
[ -p "$dir/fifo" ] || { echo "FAIL: the FIFO was replaced"; failures=$((failures + 1)); }
no_training "an unwritable output"
expect 2 "unknown flag --frobnicate" -- --frobnicate
expect 2 "--lr needs a value" -- --lr
expect 2 "bad value 'x' for --lr" -- --lr x

# A resume with different settings is refused naming the flag and both values.
"$sasrec" "${small[@]}" --num-epochs 1 --checkpoint "$dir/run.ckpt" > /dev/null 2>&1 || { echo "FAIL: first run"; failures=$((failures + 1)); }
cp "$dir/run.ckpt" "$dir/run.before"
expect 1 "saved with --lr 0.001, this run has --lr 0.01" -- "${small[@]}" --num-epochs 2 --checkpoint "$dir/run.ckpt" --resume --lr 0.01
expect 1 "saved with --dropout-rate 0.5, this run has --dropout-rate 0.3" -- \
  "${small[@]}" --num-epochs 2 --checkpoint "$dir/run.ckpt" --resume --dropout-rate 0.3
expect 1 "saved with --l2-emb 0, this run has --l2-emb 0.1" -- \
  "${small[@]}" --num-epochs 2 --checkpoint "$dir/run.ckpt" --resume --l2-emb 0.1
expect 1 "saved with --length-groups 4, this run has --length-groups 2" -- \
  "${small[@]}" --num-epochs 2 --checkpoint "$dir/run.ckpt" --resume --length-groups 2
expect 1 "saved with the number of interactions (the data)" -- \
  "${small[@]}" --gen-seed 2 --num-epochs 2 --checkpoint "$dir/run.ckpt" --resume
expect 1 "sasrec.item_emb" "[151,8] in the file, [152,8] expected" -- \
  "${small[@]}" --gen-items 151 --num-epochs 2 --checkpoint "$dir/run.ckpt" --resume
cmp -s "$dir/run.ckpt" "$dir/run.before" || { echo "FAIL: a refused resume changed the checkpoint"; failures=$((failures + 1)); }
# the same settings resume
expect 0 -- "${small[@]}" --num-epochs 2 --checkpoint "$dir/run.ckpt" --resume
grep -q "^resumed from .* after epoch 1" "$dir/out.log" || { echo "FAIL: did not resume"; failures=$((failures + 1)); }

echo "$failures failure(s)"
[ "$failures" = 0 ]
