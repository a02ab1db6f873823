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
# `bash scripts/demo.sh las` trains a small LAS speech recogniser on connected digits (a few
# minutes) and transcribes held-out recordings of a speaker it never heard.
# `bash scripts/demo.sh caption` trains a small Show, Attend and Tell captioner on
# Fashion-MNIST scenes (a few minutes), prints test captions with their scores, and writes
# attention figures (runs/caption-demo/*.svg), then captions one of the scene pictures.
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
if [ "${1:-}" = las ]; then
  shift
  mkdir -p runs/las-demo
  # a small set and 10 short epochs (about 950 steps): it learns to spell digits in a few
  # minutes, not to the accuracy of the full run (docs/las.md)
  ./build/examples/las --out runs/las-demo --cache runs/las/cache --train-synth 2000 --train-fsdd 1000 \
    --test-size 60 --eval-size 30 --epochs 10 --warmup 100 --threads 1 --beam 4 --show 3 \
    --metrics runs/las-demo/metrics.csv --checkpoint runs/las-demo/las.ckpt --resume "$@"
  echo
  echo "transcribing recordings of yweweler, a speaker the model never heard:"
  words=(zero one two three four five six seven eight nine)
  for f in 3_yweweler_7 8_yweweler_21 0_yweweler_40 5_yweweler_2; do
    echo "reference: ${words[${f%%_*}]}"
    ./build/examples/las --transcribe "examples/las/fsdd/recordings/$f.wav" --checkpoint runs/las-demo/las.ckpt \
      --beam 4 --alignment "runs/las-demo/$f.png"
  done
  exit 0
fi
if [ "${1:-}" = caption ]; then
  shift
  # a smaller run than docs/caption.md's (fewer scenes and epochs): it learns to name and
  # place the objects in a few minutes, not to the full run's scores
  ./build/examples/caption --out runs/caption-demo --pretrain-epochs 2 --train-scenes 12000 --test-scenes 300 \
    --eval-size 200 --epochs 10 --eval-every 5 --figures 4 --metrics runs/caption-demo/metrics.csv \
    --checkpoint runs/caption-demo/caption.ckpt --resume "$@"
  echo
  echo "captioning a picture of a test scene (figure next to it):"
  exec ./build/examples/caption --caption runs/caption-demo/scene-test-0.png --checkpoint runs/caption-demo/caption.ckpt \
    --out runs/caption-demo
fi
[ "${1:-}" = sasrec ] && shift
mkdir -p runs/sasrec
exec ./build/examples/sasrec --gen interests --dropout-rate 0.2 --num-epochs 20 --eval-every 5 \
  --metrics runs/sasrec/metrics.csv --checkpoint runs/sasrec/sasrec.ckpt --resume \
  --heatmap runs/sasrec/attention.png "$@"
