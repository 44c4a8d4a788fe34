//! The tokio peer of pollux's benchmarks (bench/*.c): the same shapes and
//! the same one-line report, so tools/bench can put them side by side.
//!
//!   tokio-peer BENCH FLAVOR [N]     FLAVOR: ct (current_thread) | mt (2 workers)
//!   tokio-peer http|echo FLAVOR PORT
//!   tokio-peer https FLAVOR PORT CERT KEY   (tokio-openssl 0.6, the system's OpenSSL)
//!
//! Every benchmark mirrors its C twin line by line; where the two cannot be
//! the same (Arc instead of a plain pointer, Notify instead of a waker slot)
//! the cost is the idiomatic tokio one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

// ---- Counting allocator: bytes and calls, like bench/common.c ----------
struct Counting;
static BYTES: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        BYTES.fetch_add(l.size(), Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        BYTES.fetch_add(n, Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// VmHWM: getrusage's ru_maxrss would carry the parent's peak across exec.
fn peak_rss_kb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(-1)
}

/// Measures `f` and prints the result line.
struct Meter {
    wall: Instant,
    cpu: f64,
    bytes: usize,
    calls: usize,
}

impl Meter {
    fn start() -> Meter {
        Meter {
            wall: Instant::now(),
            cpu: cpu_seconds(),
            bytes: BYTES.load(Ordering::Relaxed),
            calls: CALLS.load(Ordering::Relaxed),
        }
    }
    fn report(self, name: &str, config: &str, ops: f64, extra: &str) {
        let secs = self.wall.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - self.cpu;
        let bytes = (BYTES.load(Ordering::Relaxed) - self.bytes) as f64;
        let calls = (CALLS.load(Ordering::Relaxed) - self.calls) as f64;
        println!(
            "name={} config=\"{}\" ops={:.0} seconds={:.4} ops_per_s={:.0} cpu_s={:.4} \
             peak_rss_kb={} ops_per_cpu_s={:.0} bytes_per_op={:.1} allocs_per_op={:.2}{}{}",
            name, config, ops, secs, ops / secs, cpu, peak_rss_kb(),
            ops / cpu.max(1e-9), bytes / ops, calls / ops,
            if extra.is_empty() { "" } else { " " }, extra
        );
    }
}

/// A countdown: the last task to finish wakes the waiting one.
struct Latch {
    remaining: AtomicUsize,
    done: Notify,
}

impl Latch {
    fn new(n: usize) -> Arc<Latch> {
        Arc::new(Latch { remaining: AtomicUsize::new(n), done: Notify::new() })
    }
    fn count_down(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

const SPAWN_PER_ROUND: usize = 10_000;

async fn spawn_many(rounds: usize) {
    for _ in 0..rounds {
        let latch = Latch::new(SPAWN_PER_ROUND);
        for _ in 0..SPAWN_PER_ROUND {
            let l = latch.clone();
            tokio::spawn(async move { l.count_down() });
        }
        latch.done.notified().await;
    }
}

const YIELD_TASKS: usize = 200;
const YIELDS: usize = 1_000;

/// tokio's yield_many: the tasks are spawned from the benchmark's thread
/// (rt.spawn, outside the runtime), then block_on waits for them.
fn yield_many(rt: &tokio::runtime::Runtime, rounds: usize) {
    for _ in 0..rounds {
        let latch = Latch::new(YIELD_TASKS);
        for _ in 0..YIELD_TASKS {
            let l = latch.clone();
            rt.spawn(async move {
                for _ in 0..YIELDS {
                    tokio::task::yield_now().await;
                }
                l.count_down();
            });
        }
        rt.block_on(latch.done.notified());
    }
}

const CHAIN_DEPTH: usize = 1_000;

fn chain(latch: Arc<Latch>, depth: usize) {
    if depth == 0 {
        latch.count_down();
    } else {
        tokio::spawn(async move { chain(latch, depth - 1) });
    }
}

async fn chained_spawn(rounds: usize) {
    for _ in 0..rounds {
        let latch = Latch::new(1);
        let l = latch.clone();
        tokio::spawn(async move { chain(l, CHAIN_DEPTH - 1) });
        latch.done.notified().await;
    }
}

/// libuv's million_timers: n sleeps with distinct deadlines 1 us apart,
/// starting 1 ms from now; each in its own task, as tokio code would. The
/// tasks share one latch for the run, as libuv's count their fires in a
/// global and pollux's tasks count down a static latch: a leaked &'static
/// (a `static` Notify needs tokio's parking_lot feature, which would change
/// the peer's locks in every benchmark), so no task clones an Arc.
async fn million_timers(n: usize) {
    let base = tokio::time::Instant::now() + Duration::from_millis(1);
    let latch: &'static Latch = Box::leak(Box::new(Latch {
        remaining: AtomicUsize::new(n),
        done: Notify::new(),
    }));
    for i in 0..n {
        let l = latch;
        let deadline = base + Duration::from_micros(i as u64);
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            l.count_down();
        });
    }
    latch.done.notified().await;
}

const ARM_BATCH: usize = 10_000;

/// Arms (first poll) a batch of sleeps, then cancels (drops) them all; the
/// sleeps live in a preallocated slot array, as in the C version.
///
/// `unconstrained`: tokio's cooperative budget (128 polls per task turn)
/// would otherwise make every later Sleep::poll return Pending without
/// arming anything, and the benchmark would measure nothing.
async fn timer_arm_cancel(n: usize) {
    let mut slots: Vec<Option<tokio::time::Sleep>> = Vec::with_capacity(ARM_BATCH);
    slots.resize_with(ARM_BATCH, || None);
    tokio::task::unconstrained(std::future::poll_fn(move |cx| {
        let mut done = 0;
        while done < n {
            let batch = ARM_BATCH.min(n - done);
            // Per batch: a loaded machine may take over a second in all.
            let base = tokio::time::Instant::now() + Duration::from_secs(1);
            for i in 0..batch {
                slots[i] = Some(tokio::time::sleep_until(base + Duration::from_micros(i as u64)));
                // SAFETY: the slot is not moved until it is dropped in place.
                let s = unsafe { Pin::new_unchecked(slots[i].as_mut().unwrap()) };
                assert!(s.poll(cx).is_pending());
            }
            for slot in slots.iter_mut().take(batch) {
                *slot = None;
            }
            done += batch;
        }
        Poll::Ready(())
    }))
    .await
}

const PINGS: usize = 1_000;

/// tokio's ping_pong: a task spawned from block_on spawns the pings; each
/// ping spawns a helper, sends it a oneshot and awaits the answer on a
/// second one.
async fn ping_pong(rounds: usize) {
    for _ in 0..rounds {
        let latch = Latch::new(PINGS);
        let l = latch.clone();
        tokio::spawn(async move {
            for _ in 0..PINGS {
                let l = l.clone();
                tokio::spawn(async move {
                    let (tx1, rx1) = tokio::sync::oneshot::channel::<u64>();
                    let (tx2, rx2) = tokio::sync::oneshot::channel::<u64>();
                    tokio::spawn(async move {
                        let v = rx1.await.unwrap();
                        tx2.send(v).unwrap();
                    });
                    tx1.send(1).unwrap();
                    rx2.await.unwrap();
                    l.count_down();
                });
            }
        });
        latch.done.notified().await;
    }
}

const PRODUCERS: usize = 5;
const PER_PRODUCER: usize = 1_000;
const VALUES: usize = PRODUCERS * PER_PRODUCER;

/// tokio's contention_bounded_full (5 x 1,000 through capacity 100) or
/// uncontented_bounded (5,000 sent, then received, by one task, capacity
/// 1,000,000).
async fn mpsc(rounds: usize, contended: bool) -> u64 {
    let mut sum = 0u64;
    for _ in 0..rounds {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<u64>(if contended { 100 } else { 1_000_000 });
        if contended {
            for _ in 0..PRODUCERS {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..PER_PRODUCER {
                        tx.send(i as u64).await.unwrap();
                    }
                });
            }
        } else {
            for i in 0..VALUES {
                tx.send(i as u64).await.unwrap();
            }
        }
        drop(tx);
        for _ in 0..VALUES {
            sum += rx.recv().await.unwrap();
        }
    }
    sum
}

/// Counts "\r\n\r\n" across reads (one per request, pipelining included)
/// and notes a request that asks to close (`Connection: close`), as
/// examples/http_server.c's parser does: the answer to that request is the
/// connection's last.
struct RequestEnds {
    state: usize,
    line: Vec<u8>, // the current header line, lower-cased, up to 64 bytes
    close: bool,   // the current request has "Connection: close"
}

impl RequestEnds {
    fn new() -> RequestEnds {
        RequestEnds { state: 0, line: Vec::with_capacity(64), close: false }
    }

    /// The requests that end in `data`, and whether the last of them asked
    /// to close (then the bytes after it are ignored, like pollux's server).
    fn feed(&mut self, data: &[u8]) -> (usize, bool) {
        const END: &[u8] = b"\r\n\r\n";
        let mut n = 0;
        for &b in data {
            if b == b'\n' {
                let l = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                if let Some(v) = l.strip_prefix(b"connection:") {
                    if v.split(|&c| c == b',').any(|t| t.trim_ascii() == b"close") {
                        self.close = true;
                    }
                }
                self.line.clear();
            } else if self.line.len() < 64 {
                self.line.push(b.to_ascii_lowercase());
            }
            if b == END[self.state] {
                self.state += 1;
                if self.state == 4 {
                    n += 1;
                    self.state = 0;
                    if self.close {
                        return (n, true);
                    }
                }
            } else {
                self.state = if b == b'\r' { 1 } else { 0 };
            }
        }
        (n, false)
    }
}

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
/// The answer to a request that asked to close.
const RESPONSE_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\
Connection: close\r\n\r\nHello, World!";

/// One HTTP connection: every complete request in what was read gets the
/// same answer, the answers go out in one write (pipelining, keep-alive).
/// After the answer to a `Connection: close` request it closes the way
/// examples/http_server.c does: shut down our side (over TLS, a
/// close_notify first), then read and discard until the client closes
/// (at most 64 reads, each within a second), then drop the socket.
async fn serve_http<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    let mut ends = RequestEnds::new();
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        out.clear();
        let (requests, close) = ends.feed(&buf[..n]);
        for i in 0..requests {
            out.extend_from_slice(if close && i + 1 == requests { RESPONSE_CLOSE } else { RESPONSE });
        }
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
        if close {
            break;
        }
    }
    if s.shutdown().await.is_err() {
        return;
    }
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => return,
        }
    }
}

/// http_min's twin (bench/serve_min.c, raw_epoll_http, the libuv peer): one
/// request per "\r\n\r\n" counted across reads, no header scan, every
/// complete request of a read answered in one write (at most 64, as they).
async fn serve_http_min(mut s: tokio::net::TcpStream) {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(64 * RESPONSE.len());
    let mut state = 0usize;
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        const END: &[u8] = b"\r\n\r\n";
        let mut requests = 0;
        for &b in &buf[..n] {
            if b == END[state] {
                state += 1;
                if state == 4 {
                    requests += 1;
                    state = 0;
                }
            } else {
                state = if b == b'\r' { 1 } else { 0 };
            }
        }
        out.clear();
        for _ in 0..requests.min(64) {
            out.extend_from_slice(RESPONSE);
        }
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// What every other contender's accepted socket has: pollux sets
/// TCP_NODELAY on each accepted connection by default (reactors/tcp.c), the
/// libuv peer calls uv_tcp_nodelay and raw epoll sets it too. tokio leaves
/// Nagle on, which lets the kernel hold a small write back until the last
/// one is acknowledged and merge it with the next: fewer segments per
/// request than the others send, so not the same work. (Before 2026-12-04
/// this peer ran with Nagle on.)
fn same_socket_options(s: &tokio::net::TcpStream) {
    let _ = s.set_nodelay(true);
}

/// Accepts on `port` forever, a task per connection running `serve`.
async fn serve_each<F, Fut>(port: u16, name: &str, serve: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = tokio::net::TcpListener::bind(("0.0.0.0", port)).await.expect("bind");
    println!("tokio-peer {}: listening on port {}", name, port);
    loop {
        let (s, _) = match l.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        same_socket_options(&s);
        tokio::spawn(serve(s));
    }
}

/// examples/https's twin: the same HTTP over tokio-openssl, ALPN http/1.1.
async fn https_server(port: u16, cert: &str, key: &str) {
    use openssl::ssl::{select_next_proto, AlpnError, Ssl, SslAcceptor, SslFiletype, SslMethod};
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("ssl");
    b.set_certificate_chain_file(cert).expect("certificate");
    b.set_private_key_file(key, SslFiletype::PEM).expect("key");
    b.set_alpn_select_callback(|_, client| {
        select_next_proto(b"\x08http/1.1", client).ok_or(AlpnError::ALERT_FATAL)
    });
    let acceptor = Arc::new(b.build());
    let l = tokio::net::TcpListener::bind(("0.0.0.0", port)).await.expect("bind");
    println!("tokio-peer https: listening on port {}", port);
    loop {
        let (s, _) = match l.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        same_socket_options(&s);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let ssl = match Ssl::new(acceptor.context()) {
                Ok(ssl) => ssl,
                Err(_) => return,
            };
            let mut s = match tokio_openssl::SslStream::new(ssl, s) {
                Ok(s) => s,
                Err(_) => return,
            };
            // A client gets 10 seconds for its handshake, as in
            // examples/https (a timer armed and cancelled per connection).
            match tokio::time::timeout(Duration::from_secs(10), Pin::new(&mut s).accept()).await {
                Ok(Ok(())) => {}
                _ => return,
            }
            serve_http(s).await
        });
    }
}

async fn echo_server(port: u16) {
    let l = tokio::net::TcpListener::bind(("0.0.0.0", port)).await.expect("bind");
    println!("tokio-peer echo: listening on port {}", port);
    loop {
        let (mut s, _) = match l.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        same_socket_options(&s);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16384];
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: tokio-peer BENCH ct|mt [N]\n  BENCH: spawn_many spawn_many_remote_idle yield_many \
         chained_spawn million_timers timer_arm_cancel\n       ping_pong mpsc_contended mpsc_uncontended\n       tokio-peer http|http_min|echo ct|mt PORT\n       tokio-peer https ct|mt PORT CERT KEY"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        usage();
    }
    let bench = args[1].as_str();
    let (rt, config) = match args[2].as_str() {
        "ct" => (
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            "tokio current_thread".to_string(),
        ),
        "mt" => {
            // 2 workers, as pollux's benchmarks (bench/common.c), unless
            // PX_BENCH_WORKERS says otherwise: the same variable sets both.
            let workers = std::env::var("PX_BENCH_WORKERS")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|&n| n >= 1)
                .unwrap_or(2);
            (
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .enable_all()
                    .build()
                    .unwrap(),
                format!("tokio multi_thread workers={}", workers),
            )
        }
        _ => usage(),
    };
    let config = config.as_str();
    let arg = |default: usize| -> usize {
        match args.get(3) {
            None => default,
            Some(s) => match s.parse::<usize>() {
                Ok(v) if v >= 1 => v,
                _ => usage(),
            },
        }
    };
    match bench {
        "spawn_many" => {
            let rounds = arg(300);
            rt.block_on(spawn_many(1)); // warm-up, as in the C version
            let m = Meter::start();
            rt.block_on(spawn_many(rounds));
            m.report(bench, config, (rounds * SPAWN_PER_ROUND) as f64, "");
        }
        "spawn_many_remote_idle" => {
            let rounds = arg(100);
            let mut handles = Vec::with_capacity(SPAWN_PER_ROUND);
            let m = Meter::start();
            for _ in 0..rounds {
                for _ in 0..SPAWN_PER_ROUND {
                    handles.push(rt.spawn(async {}));
                }
                rt.block_on(async {
                    for h in handles.drain(..) {
                        h.await.unwrap();
                    }
                });
            }
            m.report(bench, config, (rounds * SPAWN_PER_ROUND) as f64, "");
        }
        "yield_many" => {
            let rounds = arg(20);
            let m = Meter::start();
            yield_many(&rt, rounds);
            m.report(bench, config, (rounds * YIELD_TASKS * YIELDS) as f64, "");
        }
        "chained_spawn" => {
            let rounds = arg(2000);
            let m = Meter::start();
            rt.block_on(chained_spawn(rounds));
            m.report(bench, config, (rounds * CHAIN_DEPTH) as f64, "");
        }
        "million_timers" => {
            let n = arg(1_000_000);
            let m = Meter::start();
            rt.block_on(million_timers(n));
            m.report(bench, config, n as f64, "");
        }
        "timer_arm_cancel" => {
            let n = arg(1_000_000);
            let m = Meter::start();
            rt.block_on(timer_arm_cancel(n));
            m.report(bench, config, n as f64, "");
        }
        "ping_pong" => {
            let rounds = arg(300);
            let m = Meter::start();
            rt.block_on(ping_pong(rounds));
            m.report(bench, config, (rounds * PINGS) as f64, "");
        }
        "mpsc_contended" | "mpsc_uncontended" => {
            let rounds = arg(200);
            let m = Meter::start();
            let sum = rt.block_on(mpsc(rounds, bench == "mpsc_contended"));
            assert!(sum > 0);
            m.report(bench, config, (rounds * VALUES) as f64, "");
        }
        "http" => rt.block_on(serve_each(arg(8080) as u16, "http", serve_http)),
        "http_min" => rt.block_on(serve_each(arg(8080) as u16, "http_min", serve_http_min)),
        "echo" => rt.block_on(echo_server(arg(7000) as u16)),
        "https" if args.len() == 6 => {
            rt.block_on(https_server(arg(8443) as u16, &args[4], &args[5]))
        }
        _ => usage(),
    }
}
