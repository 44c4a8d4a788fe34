# The HTTP example's test client (examples/http_test.sh): raw socket scenarios that
# curl cannot play. Each prints "ok: ..." or "FAIL: ..." lines.
import os, signal, socket, sys, threading, time
from concurrent.futures import ThreadPoolExecutor

REQ = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
OK = b"HTTP/1.1 200 OK"
HELLO = b"Hello, World!"
fails = 0

def check(cond, what):
    global fails
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    fails += 0 if cond else 1

def connect(port, rcvbuf=0):
    s = socket.socket()
    if rcvbuf: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.settimeout(15)
    return s

def read_all(s, pause=0.0):
    """Everything until the server closes; (bytes, how it ended)."""
    data = b""
    try:
        while True:
            d = s.recv(4096)
            if not d: return data, "eof"
            data += d
            if pause: time.sleep(pause)
    except socket.timeout: return data, "timeout"
    except OSError as e: return data, "error %s" % e

def trickle(port, chunks, gap):
    """Sends chunks `gap` seconds apart while reading; returns (reply, end, sent)."""
    s = connect(port)
    got = {}
    def rd(): got["r"] = read_all(s)
    t = threading.Thread(target=rd); t.start()
    sent = 0
    for c in chunks:
        if not t.is_alive(): break
        try: s.sendall(c)
        except OSError: break
        sent += 1
        time.sleep(gap)
    t.join()
    s.close()
    return got["r"][0], got["r"][1], sent

def side_by_side(*checks):
    """Runs each check (a function returning (cond, what)) on a thread of
    its own, then prints them in order: each waits out a 1 s limit, and
    side by side they wait for it once."""
    with ThreadPoolExecutor(len(checks)) as pool:
        for cond, what in pool.map(lambda c: c(), checks): check(cond, what)

def timeouts(port):
    """The server runs with -t 1: head and body limits of 1 s, idle 1 s."""
    def slow_head():
        head = [b"GET / HTTP/1.1\r\nHost: x\r\n"] + [b"X-%d: y\r\n" % i for i in range(20)] + [b"\r\n"]
        reply, end, sent = trickle(port, head, 0.25)
        return (reply == b"" and end == "eof" and sent < len(head),
                "slowloris (a header line every 0.25 s) is closed silently after %d of %d lines (%r, %s)"
                % (sent, len(head), reply[:12], end))
    def slow_body():
        body = [b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n"] + [b"z"] * 20
        reply, end, sent = trickle(port, body, 0.25)
        return (reply.startswith(b"HTTP/1.1 408") and end == "eof" and sent < len(body),
                "a body sent a byte every 0.25 s gets 408 and is closed after %d of %d pieces (%r, %s)"
                % (sent, len(body), reply[:12], end))
    def idle_after_answer():
        s = connect(port); s.sendall(REQ)
        data, end = read_all(s)
        return (data.count(HELLO) == 1 and end == "eof",
                "a kept-alive connection idle after its answer is closed (%d answers, %s)" % (data.count(HELLO), end))
    def silent():
        s = connect(port)
        data, end = read_all(s)
        return data == b"" and end == "eof", "a connection that sends nothing is closed (%r, %s)" % (data, end)
    def timely():
        # Timely pieces within the limits are served: the deadline is per phase.
        reply, end, sent = trickle(port, [REQ, REQ, REQ], 0.5)
        return reply.count(HELLO) == 3, "requests 0.5 s apart on one connection are all answered (%d)" % reply.count(HELLO)
    side_by_side(slow_head, slow_body, idle_after_answer, silent, timely)

def stalled_reader(port):
    """The server runs with -t 1 -c 1: a client that pipelines and never
    reads holds the only connection until its answers' write stalls for 1 s;
    the write fails, the connection ends, and the next client is served."""
    hog = connect(port, rcvbuf=4096)
    t = threading.Thread(target=lambda: hog.sendall(REQ * 100000))
    t.daemon = True
    t.start()
    time.sleep(0.5)  # the server is writing answers nobody reads
    other = connect(port)
    other.sendall(REQ)
    other.settimeout(15)
    try: got = other.recv(4096)
    except OSError as e: got = repr(e).encode()
    check(OK in got, "a client that never reads is cut by the write timeout, "
          "and the next client (over -c 1) is served (%r)" % got[:15])
    hog.close(); other.close()

def cap(port):
    """The server runs with -c 2."""
    a, b = connect(port), connect(port)
    for s in (a, b):
        s.sendall(REQ)
        check(OK in s.recv(4096), "a connection under the cap is served")
    c = connect(port)  # the kernel completes it; the server does not take it
    c.sendall(REQ)
    c.settimeout(1.0)
    try: early = c.recv(4096)
    except socket.timeout: early = b""
    check(early == b"", "a third connection over -c 2 waits (%r within 1 s)" % early[:15])
    a.close()
    c.settimeout(15)
    late = c.recv(4096)
    check(OK in late, "it is served once a connection ends (%r)" % late[:15])
    b.close(); c.close()

def shutdown(port, pid):
    """SIGTERM while requests are in flight; the server must finish them."""
    idle = connect(port); idle.sendall(REQ)
    check(HELLO in idle.recv(4096), "idle keep-alive client served before the signal")
    # A client with a tiny receive window pipelines many requests and does
    # not read: the server is blocked writing answers when the signal comes.
    slow = connect(port, rcvbuf=4096)
    n = 100000
    sender = threading.Thread(target=lambda: (slow.sendall(REQ * n), slow.shutdown(socket.SHUT_WR)))
    sender.daemon = True
    sender.start()
    half = connect(port)
    half.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
    time.sleep(1.0)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    data, end = read_all(idle)
    check(data == b"" and end == "eof", "the idle connection is closed at the signal (%r, %s)" % (data, end))
    try:
        connect(port).close(); refused = False
    except OSError: refused = True
    check(refused, "new connections are refused after the signal")
    half.sendall(b"67890")
    data, end = read_all(half)
    check(data.startswith(OK) and data.endswith(HELLO) and b"Connection: close" in data and end == "eof",
          "a request half-sent at the signal is finished and answered, then closed (%r ... %s)" % (data[:15], end))
    data, end = read_all(slow, pause=0.0005)
    whole = data.count(OK) == data.count(HELLO) and data.endswith(HELLO)
    last = data[data.rfind(OK):]
    check(end == "eof" and whole and data.count(OK) > 1000 and b"Connection: close" in last,
          "the slow reader gets every answer in full, the last marked Connection: close, then EOF "
          "(%d answers, %d bytes, %s)" % (data.count(OK), len(data), end))

if __name__ == "__main__":
    cmd, port = sys.argv[1], int(sys.argv[2])
    {"timeouts": lambda: timeouts(port), "cap": lambda: cap(port),
     "stalled_reader": lambda: stalled_reader(port),
     "shutdown": lambda: shutdown(port, int(sys.argv[3]))}[cmd]()
    sys.exit(1 if fails else 0)
