#!/usr/bin/env python3
"""An adversarial client for the example servers (issue 14, item 7).

    adversarial.py SERVER BINARY [--idle] [--cap] [--drain]
                   [--work-stealing] [--io-uring] [--only CASE,...]

SERVER is echo, http or redis; BINARY the server program. --idle: the
server takes -t IDLE_SECONDS (the idle and slowloris cases run); --cap: it
takes -c MAX_CONNECTIONS (the connection cap case runs). --only runs the
named cases (see CASES); --work-stealing and --io-uring: the server runs the
work-stealing executor, the io_uring reactor (both: the stall case checks
less). Each case prints the
figure it checks, as "ok: ..." or "FAIL: ..."; the exit status is 1 when
any case failed.

Every case ends by checking that the server is still alive and still
answers a fresh client: a case fails if the server crashed, whatever the
hostile client saw. A sanitizer build (ASan, UBSan, TSan: found by its
runtime's symbols in the binary) gets looser timing limits, printed next to
the strict ones; its stderr is checked for sanitizer reports.

Standard library only: it runs wherever python3 does.
"""
import glob
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HOST = "127.0.0.1"
failures = []


def report(ok, text):
    print(("ok: " if ok else "FAIL: ") + text, flush=True)
    if not ok:
        failures.append(text)
    return ok


def sanitizer_of(binary):
    """'asan', 'tsan', 'ubsan' or '' from the runtime symbols linked in."""
    with open(binary, "rb") as f:
        data = f.read()
    for sym, name in ((b"__asan_init", "asan"), (b"__tsan_init", "tsan"),
                      (b"__ubsan_handle", "ubsan")):
        if sym in data:
            return name
    return ""


# ---- Sockets ----------------------------------------------------------------

def connect(port, timeout=5.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def recv_until_close(s, limit=1 << 20):
    """Everything until EOF (or a reset, or the socket timeout). Returns
    (bytes, how): how is 'eof', 'reset' or 'timeout'."""
    buf = b""
    try:
        while len(buf) < limit:
            chunk = s.recv(65536)
            if not chunk:
                return buf, "eof"
            buf += chunk
    except ConnectionResetError:
        return buf, "reset"
    except socket.timeout:
        return buf, "timeout"
    return buf, "limit"


def reset_close(s):
    """Closes with SO_LINGER 0: the kernel sends RST, not FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


# ---- The servers' protocols ---------------------------------------------------

HTTP_OK = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 13\r\n\r\nHello, World!")
HTTP_GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"

# One request each server answers with a known reply (the probe).
PROBE = {
    "echo": (b"ping\n", b"ping\n"),
    "http": (HTTP_GET, HTTP_OK),
    "redis": (b"PING\r\n", b"+PONG\r\n"),
}


class Server:
    """One server process on a free loopback port."""

    def __init__(self, kind, binary, args=(), nofile=None):
        self.kind, self.binary = kind, binary
        for _ in range(8):
            self.port = random.randint(10000, 32000)  # below ephemeral ports
            # One file per server: several run at once (a case's own beside
            # the shared one).
            self.errpath = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"),
                                        "%s-%d-%d.err" % (kind, os.getpid(), self.port))
            pre = None
            if nofile is not None:
                def pre():
                    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            self.err = open(self.errpath, "wb")
            # LeakSanitizer is on by default in ASan builds on Linux; said
            # explicitly, so that the SIGTERM case checks what it claims.
            env = dict(os.environ)
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                                   ":detect_leaks=1").lstrip(":")
            self.proc = subprocess.Popen(
                [binary] + list(args) + [str(self.port), HOST],
                stdout=subprocess.DEVNULL, stderr=self.err, preexec_fn=pre,
                env=env)
            if self._wait_up():
                return
            self.kill()
        raise RuntimeError("%s did not start: %s" % (kind, self.stderr()[-2000:]))

    def _wait_up(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._listens():
                return True
            time.sleep(0.05)
        return False

    def _listens(self):
        """Whether our process holds the listener of self.port. A connect
        that succeeds does not say whose listener answered: when the port
        was taken, ours exits ("address already in use") while the connect
        reaches another test's server (seen in CI). The listener's socket
        inode, from /proc/net/tcp{,6}, must be one of our descriptors
        (tests/serve_lib.sh does the same for the shell tests)."""
        want = ":%04X" % self.port
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    rows = f.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                col = row.split()
                if col[3] == "0A" and col[1].endswith(want):  # 0A: LISTEN
                    inodes.add("socket:[%s]" % col[9])
        for fd in glob.glob("/proc/%d/fd/*" % self.proc.pid):
            try:
                if os.readlink(fd) in inodes:
                    return True
            except OSError:  # closed meanwhile
                pass
        return False

    def alive(self):
        return self.proc.poll() is None

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def round_trip(self, s):
        """One probe request on s; returns the seconds it took (raises on a
        wrong answer)."""
        req, want = PROBE[self.kind]
        t0 = time.monotonic()
        s.sendall(req)
        got = recv_exact(s, len(want))
        if got != want:
            raise RuntimeError("probe answer %r, want %r" % (got[:80], want))
        return time.monotonic() - t0

    def serves(self):
        """A fresh client is served (a new connection and a probe)."""
        try:
            with connect(self.port) as s:
                self.round_trip(s)
            return True
        except (OSError, RuntimeError):
            return False

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.err.close()

    def stop(self, timeout=20):
        """SIGTERM; returns the exit status (None: it did not exit)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout=20):
        """Waits for the exit a SIGTERM already asked for; returns the exit
        status (None: it did not exit, and was killed). Never a second
        SIGTERM: a server that already ended its signal handling on the
        way out would die of it (seen: exit status -15 in the drain case)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self.err.close()
        return self.proc.returncode


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer")


def sanitizer_reports(text):
    return [m for m in SANITIZER_MARKS if m in text]


# ---- The cases ------------------------------------------------------------------
#
# Each takes (ctx, srv) and reports its figures; the driver then checks that
# srv is alive and serves a fresh client.

class Ctx:
    def __init__(self, kind, binary, idle, cap):
        self.kind, self.binary, self.idle, self.cap = kind, binary, idle, cap
        self.san = sanitizer_of(binary)
        # Timing slack of a sanitizer build (ASan: ~2-3x slower, TSan: 5-15x).
        self.slow = {"": 1, "ubsan": 2, "asan": 5, "tsan": 10}[self.san]


def expect_error_or_close(srv, payload, want_prefix, what, read_all=True):
    """Sends payload on a fresh connection; the server must answer with
    want_prefix (if given) and/or close, within 10 s."""
    with connect(srv.port, timeout=10) as s:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it closed while we were still sending: allowed
        got, how = recv_until_close(s)
    first = got.split(b"\r\n", 1)[0].decode("latin-1")
    if want_prefix is None:
        return report(how in ("eof", "reset"),
                      "%s: connection ended (%s) after %d reply bytes"
                      % (what, how, len(got)))
    # Both servers drain what the client still sends before closing, so
    # the answer ends in a FIN, never in a reset that could destroy it.
    return report(got.startswith(want_prefix) and how == "eof",
                  "%s: answered %r, then %s (want %r, then eof)"
                  % (what, first[:70], how, want_prefix.decode()))


def echo_burst(port, n):
    """Sends n random bytes while reading; True when all come back intact."""
    data = os.urandom(n)
    with connect(port, timeout=30) as s:
        t = threading.Thread(target=s.sendall, args=(data,))
        t.start()
        got = recv_exact(s, n)
        t.join()
    return got == data


def case_malformed(ctx, srv):
    """Malformed and oversized input: an error answer or a close, while an
    already connected client keeps being served."""
    bystander = connect(srv.port)
    srv.round_trip(bystander)
    k = ctx.kind
    # A request split at every byte is still one request (a parser must
    # wait for the rest, whatever it has seen so far).
    req, want = PROBE[k]
    with connect(srv.port) as s:
        for i in range(len(req)):
            s.sendall(req[i:i + 1])
            time.sleep(0.01)
        got = recv_exact(s, len(want))
    report(got == want, "a request sent one byte at a time (%d writes) is "
           "answered: %r" % (len(req), got[:40]))
    if k == "http":
        cases = [
            (b"GARBAGE\r\n\r\n", b"HTTP/1.1 400", "request line without target"),
            (b"GET / HTTP/9.9\r\n\r\n", b"HTTP/1.1 400", "unknown version"),
            (b"GET /\x00 HTTP/1.1\r\n\r\n", b"HTTP/1.1 400", "NUL in the target"),
            (b"GET / HTTP/1.1\nHost: a\n\n", b"HTTP/1.1 400", "bare LF line ends"),
            (b"\xff\xfe\x00\x01" * 64, b"HTTP/1.1 400", "binary garbage"),
            (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
             b"HTTP/1.1 431", "a 9 KB header (head limit 8 KiB)"),
            (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 4000 + b"\r\n",
             b"HTTP/1.1 431", "4000 headers, 32 KB head"),
            (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
             b"HTTP/1.1 431", "a 70 KB request line"),
            (b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
             b"HTTP/1.1 400", "Content-Length beyond 64 bits"),
            (b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
             b"HTTP/1.1 400", "Content-Length 2^64"),
            (b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n",
             b"HTTP/1.1 413", "Content-Length 100000 (body limit 8 KiB)"),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
             b"HTTP/1.1 400", "conflicting Content-Length"),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
             b"HTTP/1.1 501", "Transfer-Encoding"),
        ]
        if ctx.idle:  # the http with -t also validates Host (RFC 9112 3.2)
            cases += [
                (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 400", "HTTP/1.1 without Host"),
                (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                 b"HTTP/1.1 400", "two Host headers"),
                (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", b"HTTP/1.1 400",
                 "a Host with a space"),
            ]
        for payload, want, what in cases:
            expect_error_or_close(srv, payload, want, what)
    elif k == "redis":
        # Each gets Redis's own protocol error, then a close.
        errors = {
            b"invalid multibulk length": [
                (b"*9999999999999999999\r\n", "multibulk count past 2^63"),
                (b"*18446744073709551616\r\n", "multibulk count 2^64"),
                (b"*" + b"9" * 100, "a 100-digit count without line end")],
            b"invalid bulk length": [
                (b"*1\r\n$-\r\n", "bulk length '$-'"),
                (b"*1\r\n$99999999999\r\n", "bulk length 99999999999"),
                (b"*1\r\n$18446744073709551616\r\n", "bulk length 2^64"),
                (b"*1\r\n$-9223372036854775808\r\n", "bulk length INT64_MIN"),
                (b"*1\r\n$3\r\nGETXX\r\n", "bulk longer than its length")],
            b"expected '$'": [(b"*2\r\n$3\r\nGET\r\n:1\r\n", "':' for '$'")],
            b"too big inline request": [
                (b"GET " + b"k" * 70000, "a 70 KB inline command without line end")],
        }
        for message, payloads in errors.items():
            for payload, what in payloads:
                expect_error_or_close(srv, payload,
                                      b"-ERR Protocol error: " + message, what)
        redis_numbers(ctx, srv)
    else:  # echo: bursts and binary, all echoed back intact
        for size in (1 << 20, 8 << 20):
            report(echo_burst(srv.port, size), "a %d MiB binary burst echoed "
                   "back intact" % (size >> 20))
        # Many clients bursting at once.
        results = []
        threads = [threading.Thread(
            target=lambda: results.append(echo_burst(srv.port, 256 << 10)))
            for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report(results.count(True) == 16,
               "16 concurrent 256 KiB bursts: %d echoed intact"
               % results.count(True))
    try:
        rt = srv.round_trip(bystander)
        report(True, "the client connected before is still served "
               "(round trip %.1f ms)" % (rt * 1000))
    except (OSError, RuntimeError) as e:
        report(False, "the client connected before is no longer served: %s" % e)
    bystander.close()


def redis_cmd(s, *args):
    """Sends one RESP command; returns the first reply line (bulk: its
    payload)."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(out)
    return redis_reply(s)


def redis_reply(s):
    line = b""
    while not line.endswith(b"\r\n"):
        c = s.recv(1)
        if not c:
            raise RuntimeError("closed")
        line += c
    if line.startswith(b"$") and line != b"$-1\r\n":
        n = int(line[1:-2])
        return recv_exact(s, n + 2)[:-2].decode("latin-1")
    return line[:-2].decode("latin-1")


def redis_numbers(ctx, srv):
    """Numbers at and beyond 64 bits, and more than 1023 arguments."""
    s = connect(srv.port, timeout=10)
    checks = [
        (("SET", "big", "9223372036854775807"), "+OK"),
        (("INCR", "big"), "-ERR increment or decrement would overflow"),
        (("GET", "big"), "9223372036854775807"),
        (("SET", "big", "9223372036854775808"), "+OK"),
        (("INCR", "big"), "-ERR value is not an integer or out of range"),
        (("SET", "neg", "-9223372036854775808"), "+OK"),
        (("INCR", "neg"), ":-9223372036854775807"),
        (("SET", "sp", " 5"), "+OK"),
        (("INCR", "sp"), "-ERR value is not an integer or out of range"),
        (("SET", "k", "v", "EX", "18446744074"), "+OK"),
        (("GET", "k"), "v"),
        (("TTL", "k"), ":18446744074"),
        (("SET", "k", "v", "EX", "9223372036854775807"),
         "-ERR invalid expire time in 'set' command"),
        (("SET", "k", "v", "PX", "9223372036854775807"),
         "-ERR invalid expire time in 'set' command"),
        (("SET", "k", "v", "EX", "18446744073709551616"),
         "-ERR invalid expire time in 'set' command"),
        (("SET", "k", "v", "EX", "-1"), "-ERR invalid expire time in 'set' command"),
        (("EXPIRE", "k", "18446744073"), ":1"),
        (("GET", "k"), "v"),
        (("EXPIRE", "k", "9223372036854775807"),
         "-ERR invalid expire time in 'expire' command"),
        (("EXPIRE", "k", "99999999999999999999"),
         "-ERR value is not an integer or out of range"),
        (("LRANGE", "nolist", "-9223372036854775808", "9223372036854775807"), "*0"),
    ]
    for args, want in checks:
        got = redis_cmd(s, *args)
        report(got == want, "%s -> %r (want %r)" % (" ".join(args)[:60], got, want))
    # More than 1023 arguments, both forms: none is dropped.
    keys = ["key%d" % i for i in range(2000)]
    mset = ["MSET"] + [x for k in keys for x in (k, "1")]
    got = redis_cmd(s, *mset)
    report(got == "+OK", "MSET of 2000 keys (4001 arguments, RESP) -> %r" % got)
    s.sendall(("EXISTS " + " ".join(keys) + "\r\n").encode())
    got = redis_reply(s)
    report(got == ":2000", "inline EXISTS of 2000 keys -> %r (want ':2000')" % got)
    s.sendall(("DEL " + " ".join(keys) + "\r\n").encode())
    got = redis_reply(s)
    report(got == ":2000", "inline DEL of 2000 keys -> %r (want ':2000')" % got)
    s.close()


def concurrently(*checks):
    """Runs each check (a function returning (ok, text)) on a thread of its
    own and reports them in order. The idle checks each wait out the
    server's deadline; side by side they wait for it once, where one after
    another they waited five times (6 s of the http suite's 22). A check
    that raises fails the case, as it did when they ran in turn."""
    with ThreadPoolExecutor(len(checks)) as pool:
        for ok, text in pool.map(lambda check: check(), checks):
            report(ok, text)


def case_idle(ctx, srv):
    """-t 1: an idle connection, a half-sent request and a slow drip that
    stops are all closed by the deadline; the server then serves others.
    The checks run side by side: the server has to keep each one's deadline
    while the others come and go, as it would for real clients."""
    partial = {
        "echo": None,
        "http": b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ",
        "redis": b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab",
    }[ctx.kind]
    limit = 1.0 + 2.0 * ctx.slow
    kinds = [("an idle connection (no byte sent)", b"")]
    if partial is not None:
        kinds.append(("a half-sent request, then silence", partial))

    def closed_by_deadline(what, payload):
        def check():
            s = connect(srv.port, timeout=limit + 5)
            t0 = time.monotonic()
            if payload:
                s.sendall(payload)
            got, how = recv_until_close(s)
            took = time.monotonic() - t0
            s.close()
            return (how in ("eof", "reset") and 0.8 <= took <= limit,
                    "%s closed after %.2f s (%s; deadline 1 s, limit "
                    "0.8..%.1f s)" % (what, took, how, limit))
        return check

    def slowloris():
        # 200 connections each sending a byte of a request, then nothing;
        # all must be gone within the limit, the server serving others.
        # (Echo echoes the byte; the others must not answer half a request.)
        byte = (partial or b"x")[:1]
        many = []
        t0 = time.monotonic()
        for _ in range(200):
            c = connect(srv.port, timeout=limit + 5)
            c.sendall(byte)
            many.append(c)
        ok = srv.serves()
        closed, answered = 0, 0
        for c in many:
            got, how = recv_until_close(c)
            closed += how in ("eof", "reset")
            answered += got != (byte if ctx.kind == "echo" else b"")
            c.close()
        took = time.monotonic() - t0
        return (closed == len(many) and answered == 0 and took <= limit + 2
                and ok,
                "slowloris: %d of %d connections holding one byte %r closed "
                "silently (%d answered) within %.2f s (limit %.1f s); others "
                "served meanwhile: %s"
                % (closed, len(many), byte, answered, took, limit + 2, ok))

    def drip():
        # A head dripped a byte every 0.25 s: each byte is activity, but
        # the head as a whole gets min(IDLE, 10) s, so the drip is cut
        # (silently: no answer to a head that never came).
        with connect(srv.port, timeout=limit + 5) as s:
            t0 = time.monotonic()
            for b in HTTP_GET[:-4]:
                try:
                    s.sendall(bytes([b]))
                except OSError:
                    break
                time.sleep(0.25)
                if time.monotonic() - t0 > limit + 2:
                    break
            got, how = recv_until_close(s)
            took = time.monotonic() - t0
        return (how in ("eof", "reset") and took <= limit + 1,
                "slowloris drip (a head byte every 0.25 s) cut after %.2f s "
                "(%s, answer %r; limit %.1f s)"
                % (took, how, got[:12], limit + 1))

    def stalled_body():
        # A body that stops coming gets 408 (its head was a request).
        with connect(srv.port, timeout=limit + 5) as s:
            t0 = time.monotonic()
            s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10"
                      b"\r\n\r\nab")
            got, how = recv_until_close(s)
            took = time.monotonic() - t0
        return (got.startswith(b"HTTP/1.1 408") and how == "eof"
                and took <= limit,
                "a body that stops after 2 of 10 bytes: %r after %.2f s, "
                "then %s (want 408, then eof, within %.1f s)"
                % (got.split(b"\r\n")[0].decode(), took, how, limit))

    def active_echo_client():
        # Echo answers every byte, so a drip is a live client: it must stay.
        with connect(srv.port, timeout=5) as s:
            for _ in range(4):
                s.sendall(b"x")
                recv_exact(s, 1)
                time.sleep(0.4)
            rt = srv.round_trip(s)
        return (True, "a client active every 0.4 s stays past the 1 s "
                "deadline (round trip %.1f ms after 1.6 s)" % (rt * 1000))

    checks = [closed_by_deadline(what, payload) for what, payload in kinds]
    checks.append(slowloris)
    if ctx.kind == "http":
        checks += [drip, stalled_body]
    if ctx.kind == "echo":
        checks.append(active_echo_client)
    concurrently(*checks)


def pipeline(ctx, srv, count):
    """count pipelined requests whose answers are large (echo: count KiB).
    For redis, stores the 60 KB value they GET: each answer is 6000 times
    its request."""
    if ctx.kind == "http":
        return HTTP_GET * count
    if ctx.kind == "redis":
        with connect(srv.port) as s:
            if redis_cmd(s, "SET", "big", b"v" * 60000) != "+OK":
                raise RuntimeError("SET big failed")
        return b"GET big\r\n" * count
    return os.urandom(count << 10)


def case_never_reads(ctx, srv):
    """A client that pipelines without reading: the server's memory stays
    bounded and another client keeps being served."""
    chunk = pipeline(ctx, srv, {"http": 512, "redis": 4096, "echo": 64}[ctx.kind])
    base = srv.rss_kib()
    hogs, sent = [], 0
    for _ in range(3):
        h = connect(srv.port)
        h.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        h.setblocking(False)
        hogs.append(h)
    peak, worst, t_end = base, 0.0, time.monotonic() + 3
    other = connect(srv.port, timeout=10)
    stuck = 0
    while time.monotonic() < t_end:
        progressed = False
        for h in hogs:
            try:
                sent += h.send(chunk)
                progressed = True
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may disconnect a client past its limit
        peak = max(peak, srv.rss_kib())
        worst = max(worst, srv.round_trip(other))
        if not progressed:
            stuck += 1
            time.sleep(0.05)
    growth = (peak - base) / 1024
    limit = 64 * (2 if ctx.san else 1)
    report(growth <= limit,
           "3 clients that never read sent %.1f MiB: server RSS %d -> peak %d "
           "KiB, growth %.1f MiB (limit %d MiB)"
           % (sent / 1048576, base, peak, growth, limit))
    rt_limit = 1.0 * ctx.slow
    report(worst <= rt_limit,
           "meanwhile another client's worst round trip %.1f ms (limit %.0f ms)"
           % (worst * 1000, rt_limit * 1000))
    for h in hogs:
        reset_close(h)
    other.close()


def flood(port, seconds, threads=8, hold=300):
    """Connects from `threads` threads, ~100/s each, for `seconds`, keeping
    up to `hold` connections open (they cost the server descriptors).
    Returns (connects, held)."""
    stop, lock, counts, held = threading.Event(), threading.Lock(), [], []

    def run():
        n = 0
        while not stop.is_set():
            time.sleep(0.01)
            try:
                c = socket.create_connection((HOST, port), timeout=2)
            except OSError:
                continue
            n += 1
            with lock:
                if len(held) < hold:
                    held.append(c)
                    continue
            c.close()
        counts.append(n)
    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    for c in held:
        c.close()
    return sum(counts), len(held)


def case_stall(ctx, srv):
    """-t 1: the server stopped (SIGSTOP) for longer than its idle deadline
    while a client's request waits; running again, it serves the request
    instead of closing the connection as idle. Bytes that arrived beat the
    deadline (redis once let a fair select pick its idle timer: the connect
    flood saw a client closed mid-conversation on a loaded machine; the
    runtime once fired the timers due after a stall with the I/O looked at
    before it, and lost 1 run in 8 on a loaded machine; under work stealing
    a deadline was once judged by a clock reading taken in the middle of a
    poll, after its read had found nothing, and lost 1 time in 3 in a few
    matrix runs)."""
    req, want = PROBE[ctx.kind]
    trials, served, answers = 3, 0, []
    for _ in range(trials):
        with connect(srv.port, timeout=10) as s:
            srv.round_trip(s)  # the server now waits for the next request
            os.kill(srv.proc.pid, signal.SIGSTOP)
            try:
                time.sleep(0.2)
                s.sendall(req)
                time.sleep(1.3)
            finally:
                os.kill(srv.proc.pid, signal.SIGCONT)
            got = recv_exact(s, len(want))
            served += got == want
            answers.append(got[:20])
    what = ("a request sent while the server was stopped past its idle "
            "deadline (1.5 s, -t 1) is served: %d of %d (%r)"
            % (served, trials, answers))
    if ctx.work_stealing and ctx.io_uring:
        # Work stealing over io_uring: a completion is task work of the
        # worker that submitted the request, which may not be the driver
        # that fires the timer at the resume. A known limit
        # (docs/BACKENDS.md): the connection is then closed as idle,
        # cleanly (no reset, no partial answer), and finish() checks that
        # the server goes on.
        report(all(a in (want[:20], b"") for a in answers),
               "%s; work stealing over io_uring: each answer whole or a "
               "clean close (a known limit, docs/BACKENDS.md)" % what)
        return
    report(served == trials, what)


def case_idle_cost(ctx, srv_unused):
    """1000 open connections, half of which have been served once: what
    each costs the server in memory (issue 14: ~80 KiB each, allocated up
    front, before buffers were allocated when first needed). The server
    runs without -t, so that none is closed while they are counted."""
    srv = Server(ctx.kind, ctx.binary, [])
    try:
        base, conns = srv.rss_kib(), []
        for i in range(1000):
            conns.append(connect(srv.port, timeout=10))
            if i % 2 == 0:
                srv.round_trip(conns[-1])
        time.sleep(0.5)
        each = (srv.rss_kib() - base) / len(conns)
        # ASan's redzones and TSan's shadow memory grow every allocation.
        limit = 16 * {"": 1, "ubsan": 1, "asan": 4, "tsan": 8}[ctx.san]
        report(each <= limit, "1000 idle connections (500 served once) cost "
               "%.1f KiB each in server RSS (limit %d KiB%s)"
               % (each, limit, " under %s" % ctx.san if ctx.san else ""))
        for c in conns:
            c.close()
        finish(ctx, srv, "idle cost")
    finally:
        srv.kill()


# Long enough for hundreds of connects and a few hundred round trips to rank
# (about 400 at one per 5 ms).
FLOOD_SECONDS = 2


def case_connect_flood(ctx, srv):
    """Hundreds of connects per second while an existing client's round
    trips stay under 100 ms. The flood runs in a forked child, so that its
    threads do not compete with the measuring client for Python's lock."""
    existing = connect(srv.port, timeout=10)
    srv.round_trip(existing)
    rfd, wfd = os.pipe()
    t0 = time.monotonic()
    child = os.fork()
    if child == 0:
        os.close(rfd)
        try:
            n, held = flood(srv.port, FLOOD_SECONDS)
            os.write(wfd, b"%d %d" % (n, held))
        finally:
            os._exit(0)
    os.close(wfd)
    rts = []
    while time.monotonic() - t0 < FLOOD_SECONDS:
        rts.append(srv.round_trip(existing))
        time.sleep(0.005)
    with os.fdopen(rfd, "rb") as r:
        n, held = (int(x) for x in (r.read().split() or [0, 0]))
    os.waitpid(child, 0)
    took = time.monotonic() - t0
    existing.close()
    rate = n / took
    worst = max(rts) * 1000
    rts.sort()
    p99 = rts[int(len(rts) * 0.99)] * 1000
    report(rate >= 200, "connect flood: %d connects in %.1f s (%.0f/s, %d held "
           "open; want at least 200/s)" % (n, took, rate, held))
    # The 100 ms bound holds for 99% of the round trips; the single worst
    # one gets 1 s, because a loaded 2-core machine can deschedule the
    # client or the server once for over 100 ms (seen: 177 ms in 1 of 12
    # runs). Starvation by the accept loop, as issue 14 saw (5.7 s), fails
    # both.
    limit, worst_limit = 100 * ctx.slow, 1000 * ctx.slow
    under = " under %s" % ctx.san if ctx.san else ""
    report(p99 <= limit and worst <= worst_limit,
           "connect flood: existing client's round trip p99 %.1f ms, worst "
           "%.1f ms over %d (limits: p99 100 ms, worst 1000 ms%s)"
           % (p99, worst, len(rts),
              "; %d and %d ms%s" % (limit, worst_limit, under) if ctx.san else ""))


def case_fd_exhaustion(ctx, srv_unused):
    """A server with ulimit -n 64: 300 clients exceed it; the server stays
    up, serves an existing client, and serves a new one once they close."""
    srv = Server(ctx.kind, ctx.binary, ctx.base_args, nofile=64)
    try:
        existing = connect(srv.port, timeout=10)
        srv.round_trip(existing)
        conns = []
        for _ in range(300):
            try:
                conns.append(socket.create_connection((HOST, srv.port), timeout=2))
            except OSError:
                pass
        time.sleep(0.5)
        shed = 0
        for c in conns:  # which of ours did the server close at once?
            c.setblocking(False)
            try:
                shed += c.recv(1) == b""
            except ConnectionResetError:
                shed += 1
            except BlockingIOError:
                pass
        ok_existing = True
        try:
            rt = srv.round_trip(existing)
        except (OSError, RuntimeError):
            ok_existing, rt = False, 0
        report(srv.alive() and ok_existing,
               "fd exhaustion: %d connections against ulimit -n 64 (%d shed by "
               "the server, the rest served or queued): server alive, existing "
               "client served (round trip %.1f ms)"
               % (len(conns), shed, rt * 1000))
        for c in conns:
            c.close()
        t0, served = time.monotonic(), False
        while time.monotonic() - t0 < 10 and not served:
            served = srv.serves()
            if not served:
                time.sleep(0.1)
        report(served, "fd exhaustion: after release a new client served in "
               "%.2f s (limit 10 s)" % (time.monotonic() - t0))
        existing.close()
        finish(ctx, srv, "fd exhaustion")
    finally:
        srv.kill()


def case_reset(ctx, srv):
    """RST (SO_LINGER 0 close) in the middle of a request and in the middle
    of a response, 50 times each."""
    partial = {
        "echo": b"half a line",
        "http": b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nhalf",
        "redis": b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nhalf",
    }[ctx.kind]
    for _ in range(50):
        s = connect(srv.port)
        s.sendall(partial)
        reset_close(s)
    ok1 = srv.alive() and srv.serves()
    report(ok1, "50 resets mid-request: server alive and serving")
    req = pipeline(ctx, srv, {"http": 2000, "redis": 100, "echo": 4096}[ctx.kind])
    got_total = 0
    for _ in range(50):
        s = connect(srv.port)
        try:
            s.sendall(req[:256 << 10])
            got_total += len(s.recv(4096))
        except OSError:
            pass
        reset_close(s)
    ok2 = srv.alive() and srv.serves()
    report(ok2 and got_total > 0,
           "50 resets mid-response (%d reply bytes read before them): server "
           "alive and serving" % got_total)


def case_sigterm(ctx, srv_unused):
    """SIGTERM while clients are busy: exit status 0, promptly, and no
    sanitizer report (under ASan, LeakSanitizer runs at exit)."""
    srv = Server(ctx.kind, ctx.binary, ctx.base_args)
    stop = threading.Event()
    served = []

    def load():
        n = 0
        try:
            with connect(srv.port) as s:
                while not stop.is_set():
                    srv.round_trip(s)
                    n += 1
        except (OSError, RuntimeError):
            pass  # the server closed us: expected
        served.append(n)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    rc = srv.stop(timeout=30)
    took = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join()
    err = srv.stderr()
    marks = sanitizer_reports(err)
    report(rc == 0, "SIGTERM under load (8 clients, %d round trips): exit status "
           "%s after %.2f s (want 0)" % (sum(served), rc, took))
    report(not marks, "SIGTERM: no sanitizer report in stderr%s (found: %s)"
           % (" (LeakSanitizer ran at exit)" if ctx.san == "asan" else "",
              ", ".join(marks) or "none"))
    if marks or rc != 0:
        print(err[-3000:])


def case_drain(ctx, srv_unused):
    """SIGTERM while a client has pipelined requests and not read the
    answers (6 to 8 MB of them: more than the kernel buffers, so the
    server blocks writing): what
    arrives is whole answers only (http: the last one may say "Connection:
    close"), then a clean close (FIN, not a reset,
    which could destroy answers not yet read), and the server exits 0.
    redis reads its 100 GETs at once, so all 100 answers must arrive; echo
    must return an intact prefix of the 8 MiB it was sent."""
    srv = Server(ctx.kind, ctx.binary, ctx.base_args)
    count = {"http": 100000, "redis": 100, "echo": 8192}[ctx.kind]
    req = pipeline(ctx, srv, count)  # redis: GETs of a 60 KB value
    answer = (HTTP_OK if ctx.kind == "http"
              else b"$60000\r\n" + b"v" * 60000 + b"\r\n")
    s = connect(srv.port, timeout=30)

    def send():
        try:
            s.sendall(req)
        except OSError:
            pass  # the server stopped reading and closed: allowed
    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.5)  # the server reads, answers and blocks writing
    srv.proc.send_signal(signal.SIGTERM)
    got, how = recv_until_close(s, limit=1 << 30)
    sender.join()
    s.close()
    received = len(got)
    whole = got.count(answer)
    # http may mark its last answer "Connection: close" (the server ends).
    last = HTTP_OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    if ctx.kind == "http" and got.endswith(last):
        whole += 1
        got = got[:-len(last)] + answer
    want = count if ctx.kind == "redis" else max(whole, 1)
    rc = srv.wait(timeout=30)  # the SIGTERM above is the one
    if ctx.kind == "echo":
        report(0 < received and got == req[:received] and how == "eof",
               "SIGTERM with 8 MiB sent, its echo unread: %d bytes came back "
               "intact (%s), then %s (want an intact prefix, then eof)"
               % (received, "a prefix" if got == req[:received] else "CHANGED",
                  how))
    else:
        report(whole == want and got == answer * whole and how == "eof",
               "SIGTERM with %d requests pipelined, answers unread: %d "
               "answers arrived whole (%d bytes, %s), then %s (want %s whole "
               "answers only, then eof)"
               % (count, whole, received,
                  "nothing cut" if got == answer * whole else "one cut", how,
                  count if ctx.kind == "redis" else "at least 1"))
    marks = sanitizer_reports(srv.stderr())
    report(rc == 0 and not marks, "SIGTERM with answers unread: exit status "
           "%s (want 0), sanitizer reports: %s" % (rc, ", ".join(marks) or "none"))
    if rc != 0 or marks:
        print(srv.stderr()[-6000:])


def case_cap(ctx, srv_unused):
    """-c 2: a third client is not served until one of two closes."""
    # Without -t 1: an idle timeout would close the two holders within the
    # second the third client waits, and let it in for a reason other than
    # the cap (seen: http answered at 1.0 s).
    srv = Server(ctx.kind, ctx.binary, ["-c", "2"])
    try:
        a, b = connect(srv.port), connect(srv.port)
        srv.round_trip(a)
        srv.round_trip(b)
        c = connect(srv.port, timeout=1.0)
        req, want = PROBE[ctx.kind]
        c.sendall(req)
        try:
            early = c.recv(len(want))
        except socket.timeout:
            early = None
        report(early is None or early == b"",
               "cap 2: a third client gets no answer while two are open "
               "(got %r within 1 s)" % early)
        a.close()
        got = b""
        if early is None:
            c.settimeout(10 * ctx.slow)
            t0 = time.monotonic()
            try:
                got = recv_exact(c, len(want))
            except OSError:
                pass
            report(got == want, "cap 2: the third client is served %.2f s after "
                   "one closed" % (time.monotonic() - t0))
        else:
            report(srv.serves(), "cap 2: the third was refused; after one "
                   "closed a new client is served")
        c.close()
        b.close()
        finish(ctx, srv, "cap")
    finally:
        srv.kill()


CASES = [
    ("malformed", case_malformed, None),
    ("idle", case_idle, "idle"),
    ("stall", case_stall, "idle"),
    ("never_reads", case_never_reads, None),
    ("idle_cost", case_idle_cost, None),
    ("connect_flood", case_connect_flood, None),
    ("fd_exhaustion", case_fd_exhaustion, None),
    ("reset", case_reset, None),
    ("cap", case_cap, "cap"),
    ("sigterm", case_sigterm, None),
    ("drain", case_drain, "drain"),
]


def finish(ctx, srv, name):
    """After a case: the server is alive and serves a fresh client."""
    alive = srv.alive()
    serves = alive and srv.serves()
    report(alive and serves, "after %s: server alive and serving a new client"
           % name)
    if not alive:
        print(srv.stderr()[-3000:])


def main():
    args = sys.argv[1:]
    if len(args) < 2 or args[0] not in PROBE:
        sys.exit(__doc__)
    kind, binary = args[0], args[1]
    idle, cap, drain = "--idle" in args, "--cap" in args, "--drain" in args
    only = None
    if "--only" in args:
        only = args[args.index("--only") + 1].split(",")
    ctx = Ctx(kind, binary, idle, cap)
    ctx.drain = drain
    ctx.work_stealing = "--work-stealing" in args
    ctx.io_uring = "--io-uring" in args
    # Our own descriptors: the flood holds hundreds.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # With --idle every server runs with -t 1, so each case also checks that
    # the deadline does not cut clients that are active.
    ctx.base_args = ["-t", "1"] if idle else []
    print("%s: %s%s" % (kind, binary, " (%s build)" % ctx.san if ctx.san else ""))
    srv = None
    for name, fn, needs in CASES:
        if only and name not in only:
            continue
        if needs and not getattr(ctx, needs):
            print("skip: %s (%s)" % (name, {
                "idle": "the server has no -t option yet",
                "cap": "the server has no -c option yet",
                "drain": "the server does not finish in-flight answers at "
                         "shutdown yet"}[needs]))
            continue
        if srv is None or not srv.alive():
            srv = Server(kind, binary, ctx.base_args)
        print("-- %s" % name, flush=True)
        t0 = time.monotonic()
        try:
            fn(ctx, srv)
        except Exception as e:  # a wrong answer or a dead connection
            report(False, "%s: %s: %s" % (name, type(e).__name__, e))
        if fn not in (case_fd_exhaustion, case_sigterm, case_cap, case_drain,
                      case_idle_cost):
            finish(ctx, srv, name)
        print("   (%s took %.1f s)" % (name, time.monotonic() - t0), flush=True)
    if srv is not None:
        rc = srv.stop()
        marks = sanitizer_reports(srv.stderr())
        report(rc == 0 and not marks, "the server used by the cases exits 0 on "
               "SIGTERM (%s) with no sanitizer report (%s)"
               % (rc, ", ".join(marks) or "none"))
    for text in failures:  # again at the end, where a log's tail shows it
        print("FAIL: " + text)
    print("%d failed" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
