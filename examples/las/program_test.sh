#!/usr/bin/env bash
# The las program end to end on tiny data, and every refusal: the message, the exit status
# (2: bad flags or outputs, before any work; 1: a failure while running), nothing
# half-written left behind. Under the ASan suite (detect_leaks=1) a leak changes the status.
#   program_test.sh build/examples/las
set -uo pipefail
las=$1
prog=$las
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fsdd=$(dirname "$0")/fsdd/recordings
tiny=(--cache "$dir/cache/nested" --out "$dir/out/nested" --train-synth 24 --train-fsdd 12 --test-size 4 --eval-size 4
  --listener-hidden 8 --pyramid-layers 1 --speller-hidden 16 --embed-dim 8 --attn-dim 8 --loc-channels 2 --loc-kernel 5
  --batch-size 8 --threads 1 --no-progress --beam 2 --show 1)

source "$(dirname "$0")/../program_test_util.sh"

# Train 2 epochs in one go, and 1 + 1 with a resume: the checkpoints are the same bytes.
"$las" "${tiny[@]}" --epochs 2 --checkpoint "$dir/a.ckpt" --metrics "$dir/a.csv" > "$dir/a.log" 2>&1 ||
  bad "training: $(cat "$dir/a.log")"
grep -q "^epoch 2: loss" "$dir/a.log" && grep -q "(d) FSDD yweweler" "$dir/a.log" && ok "trained, evaluated" ||
  bad "no epoch 2 or results: $(cat "$dir/a.log")"
[ -s "$dir/out/nested/alignment.png" ] && [ -s "$dir/out/nested/alignment.svg" ] && [ -s "$dir/out/nested/curves.svg" ] &&
  ok "alignment pictures and curves (missing directories made)" || bad "pictures missing: $(ls -R "$dir/out")"
[ "$(wc -l < "$dir/a.csv")" = 3 ] && ok "metrics: header and 2 rows" || bad "metrics: $(cat "$dir/a.csv")"
"$las" "${tiny[@]}" --epochs 2 --stop-after 1 --checkpoint "$dir/b.ckpt" > "$dir/b.log" 2>&1 &&
  "$las" "${tiny[@]}" --epochs 2 --checkpoint "$dir/b.ckpt" --resume > "$dir/b2.log" 2>&1 ||
  bad "interrupted training: $(cat "$dir/b.log" "$dir/b2.log")"
grep -q "resumed from .* after epoch 1" "$dir/b2.log" && cmp -s "$dir/a.ckpt" "$dir/b.ckpt" &&
  ok "resume is bitwise: the checkpoints are identical" || bad "resumed checkpoint differs from the uninterrupted one"
loss_a=$(sed -n 's/^epoch 2: loss \([0-9.]*\).*/\1/p' "$dir/a.log")
loss_b=$(sed -n 's/^epoch 2: loss \([0-9.]*\).*/\1/p' "$dir/b2.log")
[ -n "$loss_a" ] && [ "$loss_a" = "$loss_b" ] && ok "same epoch-2 loss ($loss_a)" || bad "epoch 2 loss $loss_a vs $loss_b"

# Transcribe a real recording with its alignment picture.
"$las" --transcribe "$fsdd/7_theo_3.wav" --checkpoint "$dir/a.ckpt" --beam 2 --alignment "$dir/t.png" > "$dir/t.log" 2>&1 &&
  grep -q '7_theo_3.wav: ".*" (score' "$dir/t.log" && [ -s "$dir/t.png" ] && [ -s "$dir/t.svg" ] &&
  ok "transcribed: $(cat "$dir/t.log" | head -1)" || bad "transcribe: $(cat "$dir/t.log")"

# Luong's local attention and the feature warps: the checkpoint records the attention, so
# --transcribe rebuilds a local-p model, and a resume with another attention is refused.
"$las" "${tiny[@]}" --epochs 1 --no-test --attention local-p --local-window 3 --vtlp 0.1 --tempo 0.1 \
  --checkpoint "$dir/l.ckpt" > "$dir/l.log" 2>&1 && grep -q "attention 8 local-p" "$dir/l.log" &&
  "$las" --transcribe "$fsdd/7_theo_3.wav" --checkpoint "$dir/l.ckpt" > "$dir/lt.log" 2>&1 &&
  grep -q '7_theo_3.wav: ".*" (score' "$dir/lt.log" && ok "local-p trained with warps, transcribed" ||
  bad "local-p: $(cat "$dir/l.log" "$dir/lt.log")"
expect 1 "was saved with --attention local-p, this run has location" -- "${tiny[@]}" --epochs 1 --no-test --vtlp 0.1 \
  --tempo 0.1 --local-window 3 --checkpoint "$dir/l.ckpt" --resume

# Bad WAV files: each names the file and the rule.
: > "$dir/empty.wav"
printf 'hello, not audio\n' > "$dir/text.wav"
head -c 30 "$fsdd/7_theo_3.wav" > "$dir/truncated.wav"
# a RIFF/WAVE header with 0 channels, and one at 1 Hz
printf 'RIFF\x2c\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x00\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' > "$dir/zero-channels.wav"
printf 'RIFF\x2c\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x01\x00\x00\x00\x02\x00\x00\x00\x02\x00\x10\x00data\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' > "$dir/rate-1.wav"
for f in empty text; do
  expect 1 "$dir/$f.wav" "not a readable WAV file" -- --transcribe "$dir/$f.wav" --checkpoint "$dir/a.ckpt"
done
expect 1 "$dir/zero-channels.wav: 0 channels (1 or 2 are read" -- --transcribe "$dir/zero-channels.wav" --checkpoint "$dir/a.ckpt"
expect 1 "$dir/truncated.wav: the 'fmt ' chunk at byte 12 declares 16 bytes, past the end of the file (30 bytes)" -- \
  --transcribe "$dir/truncated.wav" --checkpoint "$dir/a.ckpt"
expect 1 "$dir/rate-1.wav" "sample rate 1 Hz (must be in 4000..192000 Hz)" -- --transcribe "$dir/rate-1.wav" --checkpoint "$dir/a.ckpt"
expect 1 "$dir/missing.wav" -- --transcribe "$dir/missing.wav" --checkpoint "$dir/a.ckpt"

# Checkpoints: not a checkpoint, another program's, another model's shape.
expect 1 "$dir/text.wav: not a heed checkpoint" -- --transcribe "$fsdd/7_theo_3.wav" --checkpoint "$dir/text.wav"
# a heed checkpoint (no tensors) of another program: its metadata has no las.model
other='{"__metadata__":{"heed.format":"checkpoint","step":"0","epoch":"0","rng.seed":"0","rng.counter":"0","schedule.count":"0","user.other":"x"}}'
printf "\\x$(printf %02x ${#other})\\x00\\x00\\x00\\x00\\x00\\x00\\x00%s" "$other" > "$dir/other.ckpt"
expect 1 "$dir/other.ckpt: not a checkpoint of the las program" -- --transcribe "$fsdd/7_theo_3.wav" --checkpoint "$dir/other.ckpt"
cp "$dir/a.ckpt" "$dir/c.ckpt"
expect 1 "was saved with --listener-hidden 8, this run has 9" -- "${tiny[@]}" --listener-hidden 9 --epochs 3 \
  --checkpoint "$dir/c.ckpt" --resume
expect 1 "was saved with --lr 0.002, this run has 0.001" -- "${tiny[@]}" --lr 0.001 --epochs 2 --checkpoint "$dir/c.ckpt" --resume
cmp -s "$dir/a.ckpt" "$dir/c.ckpt" && ok "a refused resume leaves the checkpoint as it was" || bad "c.ckpt changed"

# Manifests: a missing file and a transcript outside the alphabet, named with the line.
printf 'nothere.wav\tone two\n' > "$dir/missing.tsv"
printf '%s\tone\n%s\tseven 7\n' "$(realpath "$fsdd/1_theo_3.wav")" "$(realpath "$fsdd/7_theo_3.wav")" > "$dir/badtext.tsv"
expect 1 "missing.tsv: utterance 1" "nothere.wav" -- "${tiny[@]}" --epochs 1 --no-test --eval-manifest "$dir/missing.tsv"
expect 1 "badtext.tsv:2: character '7' at column 7 is outside the alphabet" -- "${tiny[@]}" --epochs 1 --eval-manifest "$dir/badtext.tsv"
# a good manifest is evaluated beside the test sets
printf '%s\tone\n%s\tseven\n' "$(realpath "$fsdd/1_theo_3.wav")" "$(realpath "$fsdd/7_theo_3.wav")" > "$dir/good.tsv"
"$las" "${tiny[@]}" --epochs 1 --no-test --eval-manifest "$dir/good.tsv" > "$dir/m.log" 2>&1 && grep -q "good.tsv  *2 " "$dir/m.log" &&
  ok "a manifest evaluated" || bad "manifest evaluation: $(cat "$dir/m.log")"

"$las" "${tiny[@]}" --epochs 1 --no-test --train-manifest "$dir/good.tsv" > "$dir/tm.log" 2>&1 &&
  grep -q "^data: 38 training utterances" "$dir/tm.log" && ok "a manifest joins the training set (36 + 2)" ||
  bad "--train-manifest: $(cat "$dir/tm.log")"

# Flags and outputs refused before any work (status 2).
expect 2 "--checkpoint $dir/a.ckpt exists" -- "${tiny[@]}" --checkpoint "$dir/a.ckpt"
expect 2 "--loc-kernel 4" -- --loc-kernel 4
expect 2 "bad value 'global' for --attention" -- --attention global
expect 2 "--transcribe needs --checkpoint" -- --transcribe x.wav
expect 2 "bad value '0' for --batch-size" -- --batch-size 0
expect 2 "cannot write in $dir/nodir" -- "${tiny[@]}" --metrics "$dir/nodir/m.csv"
: > "$dir/afile"
expect 2 "--out $dir/afile/x: Not a directory" -- "${tiny[@]}" --out "$dir/afile/x"
mkfifo "$dir/fifo"
expect 2 "not a regular file" -- "${tiny[@]}" --checkpoint "$dir/fifo"

# Nothing half-written anywhere.
left=$(find "$dir" -name '*.tmp*')
[ -z "$left" ] && ok "no temporary file left" || bad "temporary files left: $left"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
