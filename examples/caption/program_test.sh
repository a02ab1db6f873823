#!/usr/bin/env bash
# The caption program end to end on a tiny run, and its refusals: trains (pretraining
# included), evaluates, draws, checkpoints and resumes bitwise, captions a PNG, and refuses
# bad PNGs, bad IDX data and checkpoints of another program or model with their messages.
# Under the ASan suite (detect_leaks=1) a leak changes the status.
#   program_test.sh build/examples/caption DATA_DIR
set -uo pipefail
cap=$1
prog=$cap
data=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
tiny=(--fashion-mnist "$data" --pretrain-epochs 1 --pretrain-images 256 --train-scenes 128 --test-scenes 16
  --eval-size 8 --batch-size 32 --hidden 16 --embed-dim 8 --attn-dim 8 --threads 1 --no-progress --beam 2 --figures 1)

source "$(dirname "$0")/../program_test_util.sh"

# 2 epochs in one go, and 1 + 1 with a resume: the checkpoints are the same bytes.
"$cap" "${tiny[@]}" --epochs 2 --checkpoint "$dir/a.ckpt" --metrics "$dir/a.csv" --out "$dir/out" > "$dir/a.log" 2>&1 ||
  bad "training: $(cat "$dir/a.log")"
grep -q "^epoch 2: loss" "$dir/a.log" && grep -q "^test (16 scenes, beam 2): BLEU-1" "$dir/a.log" && ok "trained, evaluated" ||
  bad "no epoch 2 or results: $(cat "$dir/a.log")"
[ -s "$dir/out/caption-test-0.svg" ] && [ -s "$dir/out/scene-test-0.png" ] && [ -s "$dir/a.csv.svg" ] &&
  grep -q "data:image/png;base64," "$dir/out/caption-test-0.svg" && ok "figure, scene picture and curves" ||
  bad "pictures missing: $(ls -R "$dir")"
[ "$(wc -l < "$dir/a.csv")" = 3 ] && ok "metrics: header and 2 rows" || bad "metrics: $(cat "$dir/a.csv")"
"$cap" "${tiny[@]}" --epochs 2 --stop-after 1 --checkpoint "$dir/b.ckpt" > "$dir/b.log" 2>&1 &&
  "$cap" "${tiny[@]}" --epochs 2 --checkpoint "$dir/b.ckpt" --resume > "$dir/b2.log" 2>&1 ||
  bad "interrupted training: $(cat "$dir/b.log" "$dir/b2.log")"
grep -q "resumed from .* after epoch 1" "$dir/b2.log" && cmp -s "$dir/a.ckpt" "$dir/b.ckpt" &&
  ok "resume is bitwise: the checkpoints are identical" || bad "resumed checkpoint differs from the uninterrupted one"
[ "$(grep '^test (' "$dir/a.log")" = "$(grep '^test (' "$dir/b2.log")" ] && ok "same final evaluation" ||
  bad "final evaluations differ: $(grep '^test (' "$dir/a.log" "$dir/b2.log")"
# a finished checkpoint resumed without --out: only the final evaluation (no figures are
# kept, so none may be freed: --figures 3 used to free 3 of the 1 allocated)
"$cap" "${tiny[@]}" --epochs 2 --figures 3 --checkpoint "$dir/b.ckpt" --resume > "$dir/b3.log" 2>&1 &&
  [ "$(grep '^test (' "$dir/a.log")" = "$(grep '^test (' "$dir/b3.log")" ] && ok "evaluation only, without --out" ||
  bad "evaluation of a finished checkpoint without --out: $(cat "$dir/b3.log")"
# hard attention trains and resumes too
"$cap" "${tiny[@]}" --attention hard --epochs 1 --checkpoint "$dir/h.ckpt" > "$dir/h.log" 2>&1 &&
  grep -q "attention 8 (hard)" "$dir/h.log" && ok "hard attention trains" || bad "hard: $(cat "$dir/h.log")"

# Caption the scene picture the run wrote, with its figure: through the PNG file (8-bit grey,
# as the scene's pixels are) the model must say what it said for that test scene.
"$cap" --caption "$dir/out/scene-test-0.png" --checkpoint "$dir/a.ckpt" --beam 2 --out "$dir/out" > "$dir/c.log" 2>&1 ||
  bad "caption: $(cat "$dir/c.log")"
said=$(sed -n 's/^  .*caption-test-0.svg  //p' "$dir/a.log")
[ -n "$said" ] && grep -qxF "$dir/out/scene-test-0.png: $said" "$dir/c.log" && [ -s "$dir/out/caption-scene-test-0.png.svg" ] &&
  ok "captioned the PNG as in the run: $said" || bad "caption of the PNG: $(cat "$dir/c.log"), the run said: $said"

# --init constant: trains, its checkpoint records the setting, and --caption (which reads the
# model settings from the checkpoint) rebuilds that model and says what the run said.
"$cap" "${tiny[@]}" --init constant --epochs 1 --checkpoint "$dir/k.ckpt" --out "$dir/k" > "$dir/k.log" 2>&1 &&
  grep -q "initial state constant" "$dir/k.log" || bad "--init constant: $(cat "$dir/k.log")"
said=$(sed -n 's/^  .*caption-test-0.svg  //p' "$dir/k.log")
"$cap" --caption "$dir/k/scene-test-0.png" --checkpoint "$dir/k.ckpt" --beam 2 > "$dir/kc.log" 2>&1
[ -n "$said" ] && grep -qxF "$dir/k/scene-test-0.png: $said" "$dir/kc.log" && ok "--init constant: captioned as in the run" ||
  bad "--init constant caption: $(cat "$dir/kc.log"), the run said: $said"

# Bad PNGs.
printf 'not a png at all\n' > "$dir/text.png"
head -c 40 "$dir/out/scene-test-0.png" > "$dir/truncated.png"
expect 1 "$dir/text.png" -- --caption "$dir/text.png" --checkpoint "$dir/a.ckpt"
expect 1 "$dir/truncated.png" -- --caption "$dir/truncated.png" --checkpoint "$dir/a.ckpt"
expect 1 "$dir/missing.png" -- --caption "$dir/missing.png" --checkpoint "$dir/a.ckpt"
cp "$dir/a.csv.svg" "$dir/x.png"
expect 1 "$dir/x.png" -- --caption "$dir/x.png" --checkpoint "$dir/a.ckpt"

# Bad IDX data: a directory whose training images are truncated.
mkdir -p "$dir/idx"
for f in train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do ln -s "$data/$f.gz" "$dir/idx/$f.gz"; done
printf '\x00\x00\x08\x03\x00\x00\xea\x60\x00\x00\x00\x1c\x00\x00\x00\x1c\x00\x01' | gzip > "$dir/idx/train-images-idx3-ubyte.gz"
expect 1 "train-images-idx3-ubyte.gz" "ends after 2 of the 47040000 data bytes" -- "${tiny[@]/$data/$dir/idx}" --epochs 1
expect 1 "$dir/nowhere/train-images-idx3-ubyte.gz" -- "${tiny[@]/$data/$dir/nowhere}" --epochs 1

# Checkpoints: not a checkpoint, another program's, another model's settings.
expect 1 "$dir/text.png: not a heed checkpoint" -- --caption "$dir/out/scene-test-0.png" --checkpoint "$dir/text.png"
# a heed checkpoint (no tensors) of another program: its metadata has no caption.model
other='{"__metadata__":{"heed.format":"checkpoint","step":"0","epoch":"0","rng.seed":"0","rng.counter":"0","schedule.count":"0","user.other":"x"}}'
printf "\\x$(printf %02x ${#other})\\x00\\x00\\x00\\x00\\x00\\x00\\x00%s" "$other" > "$dir/other.ckpt"
expect 1 "$dir/other.ckpt: not a checkpoint of the caption program" -- --caption "$dir/out/scene-test-0.png" \
  --checkpoint "$dir/other.ckpt"
cp "$dir/a.ckpt" "$dir/c.ckpt"
expect 1 "was saved with the model setting hidden=16, this run has hidden=17" -- "${tiny[@]}" --hidden 17 --epochs 3 \
  --checkpoint "$dir/c.ckpt" --resume
expect 1 "was saved with the model setting init=mean, this run has init=constant" -- "${tiny[@]}" --init constant \
  --epochs 3 --checkpoint "$dir/c.ckpt" --resume
# a checkpoint from before the init setting (its caption.model without init=, the same
# length blanked) is the mean init's: it resumes as one, and is refused as a constant one
sed 's/ init=mean/          /' "$dir/a.ckpt" > "$dir/old.ckpt"
grep -q "init=mean" "$dir/old.ckpt" && bad "old.ckpt still has init=mean"
said=$(sed -n 's/^  .*caption-test-0.svg  //p' "$dir/a.log")
"$cap" --caption "$dir/out/scene-test-0.png" --checkpoint "$dir/old.ckpt" --beam 2 > "$dir/old.log" 2>&1 &&
  grep -qxF "$dir/out/scene-test-0.png: $said" "$dir/old.log" && ok "a checkpoint without init= is read as init=mean" ||
  bad "checkpoint without init=: $(cat "$dir/old.log")"
expect 1 "was saved with the model setting init=mean, this run has init=constant" -- "${tiny[@]}" --init constant \
  --epochs 3 --checkpoint "$dir/old.ckpt" --resume
expect 1 "was saved with the training setting order=reading, this run has order=any" -- "${tiny[@]}" --order any \
  --epochs 2 --checkpoint "$dir/c.ckpt" --resume
# a checkpoint from before --order (its caption.train without order=, blanked) trained on
# any order: it is refused for a reading-order run
sed 's/ order=reading/              /' "$dir/a.ckpt" > "$dir/old-order.ckpt"
expect 1 "was saved with the training setting order=any, this run has order=reading" -- "${tiny[@]}" --epochs 3 \
  --checkpoint "$dir/old-order.ckpt" --resume
expect 1 "was saved with the training setting lr=0.002, this run has lr=0.001" -- "${tiny[@]}" --lr 0.001 --epochs 2 \
  --checkpoint "$dir/c.ckpt" --resume

# Flags.
expect 2 "unknown flag '--nope'" -- --nope
expect 2 "--attention is soft or hard, got 'medium'" -- --attention medium
expect 2 "--beam needs a whole number in 1..64, got '0'" -- --beam 0
expect 2 "--init is mean or constant, got 'zeros'" -- --init zeros
expect 2 "--order is reading or any, got 'sideways'" -- --order sideways
expect 2 "--resume needs --checkpoint" -- --resume
expect 2 "--caption needs --checkpoint" -- --caption x.png

if [ $failures -gt 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all passed"
