# What the example programs' end-to-end tests share (examples/*/program_test.sh and
# examples/sasrec/errors_test.sh source it): ok, bad and expect. The sourcing script sets
# prog (the program) and dir (a scratch directory); failures counts what failed.
failures=0

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect STATUS NEEDLE... -- ARGS: runs $prog ARGS, wants exit STATUS and every NEEDLE in stderr.
expect() {
  local want=$1 needles=()
  shift
  while [ "$1" != -- ]; do needles+=("$1"); shift; done
  shift
  "$prog" "$@" > "$dir/out.log" 2> "$dir/err.log"
  local got=$? good=1
  [ "$got" = "$want" ] || good=0
  for n in "${needles[@]}"; do grep -qF -- "$n" "$dir/err.log" || good=0; done
  if [ $good = 0 ]; then
    bad "$(basename "$prog") $*: exit $got (want $want), stderr: $(cat "$dir/err.log")  (wanted: ${needles[*]})"
  else
    ok "$(head -c 200 "$dir/err.log" | head -1)"
  fi
}
