"""The runtime's libraries, and one runtime library per backend combination.

//:pollux picks its backends with the three string flags. For the test matrix
we also want every combination inside ONE build, so that the backends are
compiled once and each combination costs only a link: px_runtime_variant
declares `//variants:pollux_<executor>_<reactor>_<timer>` with the backends
hard-wired, and px_variant_test declares one cc_test per combination.
"""

load("@rules_cc//cc:defs.bzl", "cc_library", "cc_test")

# Everything in the runtime except the three backend bindings.
PX_CORE_DEPS = [
    "//api",
    "//blocking",
    "//executors:core",
    "//observe",
    "//reactors:io",
    "//reactors:signal",
    "//reactors:tcp",
    "//reactors:udp",
    "//reactors:unix",
    "//scope",
    "//sync",
    "//timers:sleep",
    "//wakers",
]

EXECUTORS = ["fifo", "priority", "work_stealing"]
REACTORS = ["epoll", "select", "poll", "libevent", "kqueue", "io_uring"]
TIMERS = ["wheel", "heap"]

# The combinations the matrix tests: every executor with every reactor, and
# the timer alternating so that every executor also meets every timer.
def _pairs():
    out = []
    for ei, e in enumerate(EXECUTORS):
        for ri, r in enumerate(REACTORS):
            out.append((e, r, TIMERS[(ei + ri) % len(TIMERS)]))
    return out

VARIANTS = _pairs()

def variant_name(v):
    return "%s_%s_%s" % v

def px_runtime_variant(executor, reactor, timer):
    cc_library(
        name = "pollux_%s_%s_%s" % (executor, reactor, timer),
        deps = PX_CORE_DEPS + [
            "//executors/%s:default" % executor,
            "//reactors/%s:default" % reactor,
            "//timers/%s:default" % timer,
        ],
    )

def px_variant_test(name, srcs, deps = [], variants = None, **kwargs):
    """One cc_test per backend combination, plus a test_suite `name`.

    The tests' own code must depend on headers only (//api or a support
    library built on //api), so that the runtime comes from the variant.
    """
    names = []
    for v in (variants or VARIANTS):
        n = "%s_%s" % (name, variant_name(v))
        cc_test(
            name = n,
            srcs = srcs,
            deps = deps + ["//variants:pollux_" + variant_name(v)],
            linkstatic = True,
            **kwargs
        )
        names.append(n)
    native.test_suite(name = name, tests = names)
