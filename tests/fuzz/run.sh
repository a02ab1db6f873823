#!/bin/sh
# Builds the checkpoint loader fuzzer (libFuzzer + ASan + UBSan, clang) against the
# library sources and runs it for a bounded time from a seed corpus it makes itself.
#   tests/fuzz/run.sh [seconds]      (default 30; FUZZ_JOBS=n for parallel workers)
# Exit status: 0 if no crash was found, non-zero otherwise (the crash input is kept in
# the work directory, printed at the end).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-${FUZZ_TIME:-30}}
work=${FUZZ_WORK:-$root/build-fuzz}
CC=${CC_FUZZ:-clang}
mkdir -p "$work/corpus" "$work/seeds" "$work/artifacts"

# Library sources: every .c of the library folders (the portable GEMM, no BLAS needed),
# compiled to objects two at a time. The loader's code (graph/, optim/) is built for the
# baseline ISA; ops/ and models/ get -mavx2 -mfma because they include sleef.h under GCC's
# `#pragma GCC target`, which clang does not honour (the fuzzer never runs their kernels).
cflags="-std=gnu11 -g -O1 -fopenmp -fno-math-errno -fsanitize=fuzzer-no-link,address,undefined
        -fno-sanitize-recover=undefined -I$root/include -I$work/include -I$root -Wno-unused-parameter
        -Wno-pass-failed $(pkg-config --cflags sleef libcjson)"
mkdir -p "$work/obj" "$work/include/heed"
# heed/config.h, which meson makes: the fuzzer's library is built without MPI (no dist/).
sed 's|^#mesondefine HEED_HAVE_MPI|/* #undef HEED_HAVE_MPI */|' "$root/include/heed/config.h.in" >"$work/include/heed/config.h"
rm -f "$work"/obj/*.o
export CC cflags work
ls "$root"/graph/*.c "$root"/ops/*.c "$root"/optim/*.c "$root"/models/*.c 2>/dev/null |
  xargs -P 2 -n 1 sh -c '
    src=$1; obj="$work/obj/$(basename "$(dirname "$src")")_$(basename "$src" .c).o"
    case "$src" in */ops/*|*/models/*) isa="-mavx2 -mfma" ;; *) isa="" ;; esac
    $CC $cflags $isa -c "$src" -o "$obj"' _ || { echo "building the library for the fuzzer failed"; exit 1; }
# shellcheck disable=SC2086
$CC $cflags -fsanitize=fuzzer,address,undefined "$root/tests/fuzz/fuzz_checkpoint.c" "$work"/obj/*.o \
    $(pkg-config --libs sleef libcjson) -lm -o "$work/fuzz_checkpoint"

# Seeds: real files from the library, plus a few hand-made edge cases.
HEED_FUZZ_SEEDS="$work/seeds" "$work/fuzz_checkpoint" -runs=0 "$work/seeds" >/dev/null 2>&1
printf '\002\000\000\000\000\000\000\000{}' >"$work/seeds/empty-object"
printf '\010\000\000\000\000\000\000\000{"a":1} ' >"$work/seeds/not-a-tensor"
cat >"$work/dict" <<'DICT'
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

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
"$work/fuzz_checkpoint" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -dict="$work/dict" -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
    ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS} "$work/corpus" "$work/seeds"
