#!/usr/bin/env bash
# meson install into a temporary root, then build and run a program outside the tree
# against the installed library using only pkg-config's flags.
set -euo pipefail
build=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
meson install -C "$build" --destdir "$root" --no-rebuild --quiet
prefix=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
pcdir=$(dirname "$(find "$root" -name heed.pc | head -1)")
export PKG_CONFIG_PATH="$pcdir"
flags=$(pkg-config --define-variable=prefix="$root$prefix" --cflags --libs heed)
cat > "$root/prog.c" <<'C'
#include <heed.h>
#include <stdio.h>
int main(void) {
    heed_ctx *ctx = heed_ctx_new(NULL);
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(3), 2.0));
    heed_tensor *y = heed_sum_all(g, heed_mul(g, x, x));
    int ok = heed_backward(g, y) == HEED_OK && heed_get(heed_grad(g, x), 0) == 4.0;
    printf("%s\n", ok ? "installed heed works" : heed_graph_error(g));
    heed_graph_free(g);
    heed_ctx_free(ctx);
    return ok ? 0 : 1;
}
C
cc "$root/prog.c" -o "$root/prog" $flags
LD_LIBRARY_PATH="$(dirname "$(find "$root" -name 'libheed.so' | head -1)")" "$root/prog"
