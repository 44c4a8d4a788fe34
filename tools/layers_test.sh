#!/usr/bin/env bash
# tools/layers on small trees: a clean one passes; a cycle, an upward
# include, a pending include and a stale pending entry are each reported.
# Argument: tools/layers.
set -euo pipefail
layers=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
tmp=${TEST_TMPDIR:-$(mktemp -d)}/layers
fail=0

# A tree: api/ at the bottom, core/ over it, leaf/ over api/ only; $1 is the
# pending column of leaf/'s row.
make_tree() {
  rm -rf "$tmp" && mkdir -p "$tmp"/{api/pollux,core,leaf,docs}
  echo '#include <stdio.h>' >"$tmp/api/pollux/a.h"
  printf '#include "pollux/a.h"\n#include "leaf/l.h"\n' >"$tmp/core/c.h"
  printf '#include "pollux/a.h"\n' >"$tmp/leaf/l.h"
  cat >"$tmp/docs/ARCHITECTURE.md" <<MD
<!-- layers:begin -->
| directory | may include | pending |
|---|---|---|
| \`api/\` | nothing | |
| \`leaf/\` | \`api/\` | $1 |
| \`core/\` | \`api/\` \`leaf/\` | |
<!-- layers:end -->
MD
  git -C "$tmp" init -q && git -C "$tmp" add -A
}
# run NAME WANT_RC PATTERN: tools/layers exits WANT_RC and prints PATTERN.
run() {
  local out rc=0
  out=$(python3 "$layers" --root "$tmp" 2>&1) || rc=$?
  if [ "$rc" != "$2" ] || ! grep -qE -- "$3" <<<"$out"; then
    echo "FAIL $1: rc=$rc (want $2), output:"; echo "$out"; fail=1
  else
    echo "ok   $1"
  fi
}

make_tree ""
run clean 0 "no cycle, all allowed"

make_tree ""
printf '#include "core/c.h"\n' >>"$tmp/leaf/l.h"
run cycle 1 "^cycle: core -> leaf -> core"
run upward 1 "^not allowed: leaf -> core .*leaf/l.h:2 \\(core/c.h\\)"

make_tree '`core/c.h`'
printf '#include "core/c.h"\n' >>"$tmp/leaf/l.h"
run pending 0 "^note: pending leaf -> core/c.h: leaf/l.h:2"

make_tree '`core/c.h`'
run stale 1 "^stale: leaf/ no longer includes core/c.h"

exit "$fail"
