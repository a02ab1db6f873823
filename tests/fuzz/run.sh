#!/bin/sh
# Builds every libFuzzer target (libFuzzer + ASan + UBSan, clang) against the library
# sources and runs each for a bounded time from a seed corpus it makes itself:
#   checkpoint    tests/fuzz/fuzz_checkpoint.c   checkpoint and weights loaders, then an
#                                                optimizer step on what was loaded; the
#                                                metadata reader (heed_checkpoint_read_info)
#   png           tests/fuzz/fuzz_png.c          the PNG reader (heed_png_read_gray, libpng)
#   sasrec_data   examples/sasrec/fuzz_data.c    the sasrec 'user item' loader
#   sasrec_args   examples/sasrec/fuzz_args.c    the sasrec command line
#   caption_idx   examples/caption/fuzz_idx.c    the IDX reader (plain or gzip, through zlib)
#   caption_args  examples/caption/fuzz_args.c   the caption command line
#   las_manifest  examples/las/fuzz_manifest.c   the las manifest (PATH<TAB>TRANSCRIPT) parser
#   las_wav       examples/las/fuzz_wav.c        the las WAV reader (libsndfile, libsamplerate)
#                                                and the feature pipeline after it
#   las_args      examples/las/fuzz_args.c       the las command line
# A file parser added to heed or an example gets its target here in the same change.
#   tests/fuzz/run.sh [seconds per target]      (default 20; FUZZ_TARGETS="a b" runs some)
# Prints one line per target with its execution count, then "fuzz: N passed, N failed".
# A target fails if it crashes (the input is kept in the work directory's artifacts/) or
# runs no input at all. Exit status: 0 if every target passed.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-${FUZZ_TIME:-20}}
work=${FUZZ_WORK:-$root/build-fuzz}
targets=${FUZZ_TARGETS:-checkpoint png sasrec_data sasrec_args caption_idx caption_args las_manifest las_wav las_args}
CC=${CC_FUZZ:-clang}
mkdir -p "$work/artifacts" "$work/obj" "$work/obj-sasrec" "$work/obj-caption" "$work/obj-las"

# Library sources: every .c of the library folders (the portable GEMM, no BLAS needed),
# compiled to objects two at a time. graph/, optim/, io/ and viz/ are built for the baseline
# ISA; ops/ and models/ get -mavx2 -mfma because they include sleef.h under GCC's
# `#pragma GCC target`, which clang does not honour (the checkpoint target's training
# step runs a few of their kernels: the machine needs AVX2, as heed's fast paths do).
# The examples' sources (all but main.c, the fuzz targets, tests and benchmarks) go into their own
# objects, one folder per example.
las_pkgs="sndfile samplerate fftw3f espeak-ng"
cflags="-std=gnu11 -g -O1 -fopenmp -fno-math-errno -fsanitize=fuzzer-no-link,address,undefined
        -fno-sanitize-recover=undefined -I$root/include -I$work/include -I$root -I$root/examples/sasrec
        -I$root/examples/las -Wno-unused-parameter -Wno-pass-failed $(pkg-config --cflags sleef libpng zlib $las_pkgs)"
mkdir -p "$work/include/heed"
# heed/config.h, which meson makes: the fuzzer's library is built without MPI (dist/dist_none.c).
sed 's|^#mesondefine HEED_HAVE_MPI|/* #undef HEED_HAVE_MPI */|' "$root/include/heed/config.h.in" >"$work/include/heed/config.h"
rm -f "$work"/obj/*.o "$work"/obj-sasrec/*.o "$work"/obj-caption/*.o "$work"/obj-las/*.o
export CC cflags work
{ ls "$root"/graph/*.c "$root"/ops/*.c "$root"/ops/*/*.c "$root"/optim/*.c "$root"/io/*.c "$root"/viz/*.c "$root"/models/*.c \
    "$root"/dist/dist_common.c "$root"/dist/dist_none.c
  ls "$root"/examples/sasrec/*.c "$root"/examples/caption/*.c "$root"/examples/las/*.c | grep -v -e /main.c -e /fuzz_ -e /test_ -e /bench_; } |
  xargs -P 2 -n 1 sh -c '
    src=$1; dir=$(basename "$(dirname "$src")")
    case "$dir" in sasrec|caption|las) out="$work/obj-$dir" ;; *) out="$work/obj" ;; esac
    case "$src" in */ops/*|*/models/*) isa="-mavx2 -mfma" ;; *) isa="" ;; esac
    $CC $cflags $isa -c "$src" -o "$out/${dir}_$(basename "$src" .c).o"' _ ||
  { echo "building the library for the fuzzer failed"; echo "fuzz: 0 passed, 1 failed"; exit 1; }

source_of() {
  case "$1" in
    checkpoint) echo "$root/tests/fuzz/fuzz_checkpoint.c" ;;
    png) echo "$root/tests/fuzz/fuzz_png.c" ;;
    sasrec_data) echo "$root/examples/sasrec/fuzz_data.c $work/obj-sasrec/*.o" ;;
    sasrec_args) echo "$root/examples/sasrec/fuzz_args.c $work/obj-sasrec/*.o" ;;
    caption_*) echo "$root/examples/caption/fuzz_${1#caption_}.c $work/obj-caption/*.o" ;;
    las_*) echo "$root/examples/las/fuzz_${1#las_}.c $work/obj-las/*.o" ;;
  esac
}
# The longest input each target gets: a checkpoint header up to 1 MiB; data files past
# the loader's 4096-byte line limit; command lines; IDX files (gzip inflating them to at
# most about 16 MiB); PNG files (a 65536-pixel cap in the target).
max_len_of() {
  case "$1" in checkpoint) echo 1048576 ;; sasrec_data|caption_idx|las_manifest|png) echo 16384 ;; las_wav) echo 65536 ;; *) echo 4096 ;; esac
}

# Dictionaries: the checkpoint format's keywords; PNG chunk names; the sasrec, caption and las flags, read
# from their args.c; IDX and gzip headers.
cat >"$work/dict-checkpoint" <<'DICT'
"__metadata__"
"dtype"
"shape"
"data_offsets"
"F32"
"F64"
"BF16"
"heed.format"
"checkpoint"
"weights"
"role."
"param"
"optim."
"optim.steps"
"optim.states"
"adam.exp_avg"
"adam.exp_avg_sq"
"schedule.count"
"schedule.0"
"rng.seed"
"rng.counter"
"step"
"epoch"
"user."
"\\u0000"
"9007199254740993"
"1e308"
"-0"
DICT
printf '"\\x89PNG\\x0d\\x0a\\x1a\\x0a"\n"IHDR"\n"PLTE"\n"tRNS"\n"IDAT"\n"IEND"\n"gAMA"\n"iCCP"\n"zTXt"\n"\\x00\\x00\\x00\\x00"\n"\\xff\\xff\\xff\\xff"\n' >"$work/dict-png"
printf '"\\x0a"\n"\\x0d\\x0a"\n"\\x09"\n"2147483647"\n"65536"\n' >"$work/dict-sasrec_data"
grep -o '"--[a-z0-9-]*"' "$root/examples/sasrec/args.c" | sort -u >"$work/dict-sasrec_args"
printf '"\\x00"\n"small"\n"amazon-games"\n"1e30"\n"nan"\n"-1"\n' >>"$work/dict-sasrec_args"
printf '"\\x1f\\x8b\\x08"\n"\\x00\\x00\\x08\\x01"\n"\\x00\\x00\\x08\\x03"\n"\\x00\\x00\\x00\\x1c"\n"\\xff\\xff\\xff\\xff"\n' >"$work/dict-caption_idx"
grep -o '"--[a-z0-9-]*"' "$root/examples/caption/args.c" | sort -u >"$work/dict-caption_args"
printf '"\\x00"\n"-h"\n"soft"\n"hard"\n"mean"\n"constant"\n"1e-9"\n"0.95"\n"nan"\n"-1"\n' >>"$work/dict-caption_args"
printf '"\\x09"\n"\\x0a"\n"\\x0d\\x0a"\n"#"\n" "\n"\x27"\n"zero"\n"seven"\n' >"$work/dict-las_manifest"
printf '"RIFF"\n"WAVE"\n"fmt "\n"data"\n"LIST"\n"fact"\n"RF64"\n"\\x01\\x00"\n"\\x03\\x00"\n"\\xfe\\xff"\n"\\x40\\x1f\\x00\\x00"\n' >"$work/dict-las_wav"
grep -o '"--[a-z0-9-]*"' "$root/examples/las/args.c" | sort -u >"$work/dict-las_args"
printf '"\\x00"\n"cosine"\n"constant"\n"40"\n"80"\n"nan"\n"-1"\n' >>"$work/dict-las_args"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
passed=0
failed=0
for t in $targets; do
  exe="$work/fuzz_$t"
  # shellcheck disable=SC2046,SC2086
  if ! $CC $cflags -fsanitize=fuzzer,address,undefined $(source_of "$t") "$work"/obj/*.o \
      $(pkg-config --libs sleef libpng zlib $las_pkgs) -lm -o "$exe"; then
    echo "fuzz $t: FAILED to build"
    failed=$((failed + 1))
    continue
  fi
  mkdir -p "$work/corpus-$t" "$work/seeds-$t"
  HEED_FUZZ_SEEDS="$work/seeds-$t" "$exe" -runs=0 "$work/seeds-$t" >/dev/null 2>&1 || true
  if [ "$t" = checkpoint ]; then
    printf '\002\000\000\000\000\000\000\000{}' >"$work/seeds-$t/empty-object"
    printf '\010\000\000\000\000\000\000\000{"a":1} ' >"$work/seeds-$t/not-a-tensor"
  fi
  log="$work/fuzz-$t.log"
  status=0
  "$exe" -max_total_time="$secs" -max_len="$(max_len_of "$t")" -timeout=10 -rss_limit_mb=2048 \
    -dict="$work/dict-$t" -artifact_prefix="$work/artifacts/$t-" -print_final_stats=1 \
    "$work/corpus-$t" "$work/seeds-$t" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ "$status" -eq 0 ] && [ "${runs:-0}" -gt 0 ]; then
    echo "fuzz $t: ok, ${runs} executions in ${secs} s"
    passed=$((passed + 1))
  else
    echo "fuzz $t: FAILED (exit $status, ${runs:-0} executions); the end of $log:"
    tail -40 "$log"
    ls "$work/artifacts/$t-"* 2>/dev/null | sed 's/^/  crash input: /'
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
