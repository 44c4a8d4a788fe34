#!/usr/bin/env bash
# tools/sloc on small C and Rust files whose code lines are known: blank
# lines, // and /* */ comments (one line, several lines, after code),
# comment markers inside strings and characters, Rust's nested comments,
# doc comments and lifetimes.
set -u
sloc=$1
dir="${TEST_TMPDIR:-/tmp}/sloc_test.$$"
mkdir -p "$dir"
fail=0
check() { if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1: want [$3] got [$2]"; fail=1; fi; }
count() { "$sloc" "$1" | awk 'NR == 1 { print $1 }'; }

cat >"$dir/a.c" <<'C'
/* A header comment
 * over three lines */
#include <stdio.h>

// a line comment
int main(void) {   /* trailing */
  puts("not // a comment");
  puts("nor /* this */");
  char c = '"';    // a quote in a character
  /* one */ return c; /* two */
}
    
C
check "C: 7 code lines" "$(count "$dir/a.c")" "7"

cat >"$dir/b.rs" <<'R'
//! Crate docs.
/// An item doc.
fn f<'a>(s: &'a str) -> &'a str {
    /* outer /* nested */ still comment */
    let url = "http://example.com"; // a comment after code
    let q = '"';
    /*
     * block
     */
    s
}
R
check "Rust: 5 code lines" "$(count "$dir/b.rs")" "5"

out=$("$sloc" "$dir/a.c" "$dir/b.rs" | tail -n 1)
check "total over files" "$(echo "$out" | awk '{ print $1, $2 }')" "12 total"
"$sloc" >/dev/null 2>&1
check "no file is a usage error" "$?" "2"
"$sloc" "$dir/missing.c" >/dev/null 2>&1
check "a missing file fails" "$([ $? -ne 0 ] && echo failed)" "failed"
rm -rf "$dir"
exit $fail
