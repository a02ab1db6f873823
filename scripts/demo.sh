#!/usr/bin/env bash
# Sets up, builds and runs the main job: trains SASRec end to end on generated data where
# every user interleaves several interests (the next item follows the latest item of one
# of them, not the last item; repeats; docs/sasrec.md) for about a minute, evaluates it
# under the paper's protocol against the generator's ceiling, a first-order Markov chain
# counted from the training data and popularity, and writes metrics, a checkpoint and
# attention heatmaps to runs/sasrec/ (a rerun continues from the checkpoint: --resume).
# Extra flags go to the program
# (build/examples/sasrec --help). `bash scripts/demo.sh spirals` runs the small MLP example;
# `bash scripts/demo.sh seq2seq` the attention encoder-decoder that learns to reverse
# sequences (heatmap in runs/seq2seq/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
if [ "${1:-}" = spirals ]; then
  shift
  exec ./build/examples/spirals "$@"
fi
if [ "${1:-}" = seq2seq ]; then
  shift
  mkdir -p runs/seq2seq
  exec ./build/examples/seq2seq --heatmap runs/seq2seq/attention.png "$@"
fi
[ "${1:-}" = sasrec ] && shift
mkdir -p runs/sasrec
exec ./build/examples/sasrec --gen interests --dropout-rate 0.2 --num-epochs 20 --eval-every 5 \
  --metrics runs/sasrec/metrics.csv --checkpoint runs/sasrec/sasrec.ckpt --resume \
  --heatmap runs/sasrec/attention.png "$@"
