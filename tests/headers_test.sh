#!/usr/bin/env bash
# Every public header compiles on its own (issue 16): as C11 with -pedantic
# and as C++17, with gcc and clang, warnings as errors, from a directory
# holding only the public tree (pollux.h and pollux/*.h), so a header that
# needs another one it does not include, or an internal header, fails here.
# Not -pedantic in C++: px_resolved (resolve.h) ends in a flexible array
# member, standard C99 that C++ has only as a gcc and clang extension.
#
#   headers_test.sh HEADER...   (the runfiles of //api:public_headers)
set -euo pipefail
inc=$(mktemp -d "${TEST_TMPDIR:-/tmp}/headers.XXXXXX")
mkdir -p "$inc/pollux"
for h in "$@"; do
  case "$h" in
    */pollux/*.h) cp "$h" "$inc/pollux/" ;;
    */pollux.h | pollux.h) cp "$h" "$inc/" ;;
  esac
done
[ -f "$inc/pollux.h" ] || { echo "no pollux.h among $*"; exit 1; }
failed=0
for h in pollux.h $(cd "$inc" && ls pollux/*.h); do
  # (the typedef keeps a header of macros only from being an empty unit)
  printf '#include <%s>\ntypedef int px_header_test_unit;\n' "$h" >"$inc/one.c"
  cp "$inc/one.c" "$inc/one.cc"
  for c in gcc clang; do
    $c -std=c11 -Wall -Wextra -Werror -pedantic -I"$inc" -fsyntax-only "$inc/one.c" ||
      { echo "FAIL: $h alone as C11 ($c)"; failed=1; }
  done
  for c in g++ clang++; do
    $c -std=c++17 -Wall -Wextra -Werror -I"$inc" -fsyntax-only "$inc/one.cc" ||
      { echo "FAIL: $h alone as C++17 ($c)"; failed=1; }
  done
done
# pollux.h reaches nothing outside the public tree.
bad=$(gcc -MM -I"$inc" "$inc/one.c" -include "$inc/pollux.h" | tr ' \\' '\n\n' | grep . |
  grep -v -E "^($inc/one\.c|one\.o:|$inc/pollux\.h|$inc/pollux/[a-z_0-9]+\.h)$" || true)
[ -z "$bad" ] || { echo "FAIL: pollux.h reaches $bad"; failed=1; }
[ "$failed" = 0 ] && echo "every public header compiles alone (C11, C++17; gcc, clang)"
exit "$failed"
