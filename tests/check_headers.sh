#!/bin/sh
# Each part of the public header (include/heed/*.h) compiles on its own, as C and with
# the warnings of the build, is included by include/heed.h and is installed (listed in
# meson.build's install_headers): check_headers.sh CC SOURCE_ROOT BUILD_ROOT (the build
# root holds the generated heed/config.h)
set -u
cc=$1 root=$2 build=$3 failed=0
for h in "$root"/include/heed/*.h; do
  name=heed/$(basename "$h")
  if printf '#include <%s>\n' "$name" | "$cc" -x c -std=gnu11 -Wall -Wextra -Werror -fsyntax-only -I"$root/include" -I"$build/include" - ; then
    echo "ok   $name"
  else
    echo "FAIL $name does not compile on its own"; failed=1
  fi
  if ! grep -q "^#include \"$name\"" "$root/include/heed.h"; then
    echo "FAIL $name is not included by include/heed.h"; failed=1
  fi
  if ! grep -q "'include/$name'" "$root/meson.build"; then
    echo "FAIL $name is not in meson.build's install_headers"; failed=1
  fi
done
exit $failed
