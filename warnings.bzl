"""The warnings pollux recommends for C code that uses its async macros.

Every example builds with them (docs/ASYNC.md, "Warnings for your code").
They catch what the macros cannot: a C local variable used after a PX_AWAIT
(gcc: -Wjump-misses-init, because the resume jumps over its initialisation;
clang: -Wconditional-uninitialized), a local that shadows another name
(-Wshadow), and a case that falls through by accident
(-Wimplicit-fallthrough). A PX_AWAIT inside a switch of your own cannot be
caught at compile time; it fails with PX_EMISUSE at its first resume.
"""

PX_USER_COPTS = [
    "-Wshadow",
    "-Wimplicit-fallthrough",
] + select({
    # A Label, so the key names pollux's own setting when another workspace
    # loads this file as @pollux//:warnings.bzl.
    str(Label("//:clang")): ["-Wconditional-uninitialized"],
    "//conditions:default": ["-Wjump-misses-init"],
})
