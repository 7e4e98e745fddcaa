//! Connections against a real `kestrel serve`: the deadlines of heads, idle keep-alive, bodies
//! and writes, the connection cap, the answer memory budget, and the answers written below the
//! handlers. Every client here talks to 127.0.0.1 and stops by itself within seconds; each test
//! prints what it measured (connection lifetimes, open file descriptors, RSS).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use caribou_model::Phase;
use common::{Server, TraceBuilder};
use serde_json::Value;

/// A server on a fresh data dir with `settings` (`("idle-timeout", "1s")` is
/// `--idle-timeout 1s`). Against an older build (`KESTREL_TEST_BIN`, see `common::kestrel`) they
/// go in as environment variables (`KESTREL_IDLE_TIMEOUT=1s`) instead: a build that lacks a
/// setting ignores its variable but would refuse its flag, and the test then shows what that
/// build does without it.
fn serve(settings: &[(&str, &str)]) -> Server {
    if std::env::var_os("KESTREL_TEST_BIN").is_none() {
        let flags: Vec<String> = settings
            .iter()
            .flat_map(|(name, value)| [format!("--{name}"), (*value).to_owned()])
            .collect();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        return Server::start_with(&flags, &[]);
    }
    let env: Vec<(String, &str)> = settings
        .iter()
        .map(|(name, value)| {
            let var = format!("KESTREL_{}", name.to_uppercase().replace('-', "_"));
            (var, *value)
        })
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    Server::start_with(&[], &env)
}

fn connect(server: &Server) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// One HTTP answer read off a socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
    /// The body's declared length (`content-length`).
    length: usize,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Reads one answer (head, then up to `content-length` body bytes, fewer if the connection
/// closes first); `None` if the connection closed before a whole head.
fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 << 10];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut body = buf[head_end..].to_vec();
    let mut answer = Answer {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        head,
        body: Vec::new(),
        length: 0,
    };
    answer.length = answer
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while body.len() < answer.length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    answer.body = body;
    Some(answer)
}

/// How long until the server closes `stream` (reading and dropping anything it sends), or
/// `None` if it is still open after `max`.
fn time_until_closed(stream: &mut TcpStream, since: Instant, max: Duration) -> Option<Duration> {
    let mut chunk = [0u8; 4096];
    loop {
        let left = max.checked_sub(since.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match stream.read(&mut chunk) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => return Some(since.elapsed()),
        }
    }
}

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

/// Asserts a lifetime is the deadline, give or take the scheduling of a busy test machine.
#[track_caller]
fn assert_closed_near(what: &str, lifetime: Option<Duration>, deadline: Duration) {
    println!("{what}: closed after {lifetime:?} (deadline {deadline:?})");
    let lifetime = lifetime.unwrap_or_else(|| panic!("{what}: still open long past its deadline"));
    assert!(
        lifetime >= deadline.mul_f64(0.8) && lifetime <= deadline + Duration::from_millis(2500),
        "{what}: closed after {lifetime:?}, deadline {deadline:?}"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let server = serve(&[("idle-timeout", "1s"), ("header-timeout", "5s")]);
    let mut stream = connect(&server);
    stream.write_all(GET_HEALTHZ).expect("send");
    let answer = read_answer(&mut stream).expect("an answer");
    assert_eq!(answer.status, 200);
    let answered = Instant::now();
    // A second request on the same connection still works before the deadline.
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(GET_HEALTHZ).expect("send again");
    assert_eq!(
        read_answer(&mut stream).expect("a second answer").status,
        200
    );
    let answered_again = Instant::now();
    let lifetime = time_until_closed(&mut stream, answered_again, Duration::from_secs(10));
    println!(
        "keep-alive connection lived {:?} after its first answer",
        answered.elapsed()
    );
    assert_closed_near("idle connection", lifetime, Duration::from_secs(1));
}

#[test]
fn a_half_sent_head_is_closed_at_the_header_timeout() {
    let server = serve(&[("header-timeout", "1s"), ("idle-timeout", "30s")]);
    let deadline = Duration::from_secs(1);

    // A new connection that sends nothing.
    let mut silent = connect(&server);
    let lifetime = time_until_closed(&mut silent, Instant::now(), Duration::from_secs(10));
    assert_closed_near("connection that sent nothing", lifetime, deadline);

    // A head trickled a byte at a time: the deadline does not move with each byte.
    let mut trickle = connect(&server);
    let started = Instant::now();
    for byte in b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " {
        if trickle.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    let lifetime = time_until_closed(&mut trickle, started, Duration::from_secs(10));
    assert_closed_near("head trickled a byte every 40 ms", lifetime, deadline);

    // A keep-alive connection whose second head stops halfway: the header deadline counts from
    // its first byte, not the 30 s idle one.
    let mut kept = connect(&server);
    kept.write_all(GET_HEALTHZ).expect("send");
    assert_eq!(read_answer(&mut kept).expect("answer").status, 200);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .expect("send half");
    let lifetime = time_until_closed(&mut kept, Instant::now(), Duration::from_secs(10));
    assert_closed_near("second head sent halfway", lifetime, deadline);
}

#[test]
fn a_trickled_body_gets_a_json_408() {
    let server = serve(&[("body-timeout", "1s")]);
    let mut stream = connect(&server);
    let started = Instant::now();
    stream
        .write_all(
            b"POST /api/v1/ingest HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
              Content-Length: 2000\r\n\r\n{\"records\": [",
        )
        .expect("send head");
    let mut writer = stream.try_clone().expect("clone");
    let trickler = std::thread::spawn(move || {
        // 10 bytes every 100 ms: the whole body would take 20 s.
        for _ in 0..200 {
            if writer.write_all(b"          ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let answer = read_answer(&mut stream).expect("an answer");
    let answered = started.elapsed();
    println!(
        "trickled body answered {} after {answered:?}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.json()["error"]["code"], "request_timeout");
    assert!(
        answered < Duration::from_secs(4),
        "answered after {answered:?}"
    );
    let closed = time_until_closed(&mut stream, started, Duration::from_secs(6));
    println!("trickled body's connection closed after {closed:?}");
    assert!(closed.is_some(), "the connection stays open after the 408");
    trickler.join().expect("trickler");
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Open sockets of a process (its listener and connections).
fn open_sockets(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Resident anonymous memory (the heap; the store's memory-mapped database pages are not in
/// it), in MiB.
fn heap_mib(pid: u32) -> f64 {
    common::status_mib(pid, "RssAnon")
}

#[test]
fn past_the_connection_cap_healthz_answers_once_idle_ones_are_reaped() {
    const CAP: usize = 20;
    const IDLE: usize = 60;
    let server = serve(&[("max-connections", "20"), ("header-timeout", "1s")]);
    let pid = server.pid();
    let baseline = open_fds(pid);
    // Connections that never send anything: three times the cap.
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut peak = open_fds(pid);
    let started = Instant::now();
    let mut fresh = connect(&server);
    fresh.write_all(GET_HEALTHZ).expect("send");
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            peak = peak.max(open_fds(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    let answer = read_answer(&mut fresh);
    let latency = started.elapsed();
    peak = peak.max(sampler.join().expect("sampler"));
    println!(
        "{IDLE} idle connections against a cap of {CAP}: server fds {baseline} before, at most \
         {peak} during; /healthz answered {:?} after {latency:?}",
        answer.as_ref().map(|a| a.status)
    );
    assert_eq!(answer.map(|a| a.status), Some(200));
    assert!(
        latency < Duration::from_secs(8),
        "/healthz waited {latency:?}"
    );
    assert!(
        peak <= baseline + CAP + 2,
        "open fds went from {baseline} to {peak} with a cap of {CAP}"
    );
    drop(idle);
    // Still alive, and answering at once with the slots free.
    assert_eq!(server.get("/healthz").status, 200);
}

/// A trace of `items` messages of `text_bytes` each, ingested in batches of 40.
fn ingest_big_trace(server: &Server, trace_id: &str, items: usize, text_bytes: usize) {
    let text = "x".repeat(text_bytes);
    let mut builder = TraceBuilder::new(trace_id).open("big-answers", Phase::Prod, None, None);
    for i in 0..items {
        builder = builder.message("assistant", &format!("{i} {text}"), 1, 1, 0.0);
        if builder.records.len() >= 40 || i + 1 == items {
            server.ingest(&builder.batch()).expect(200);
            builder.records.clear();
        }
    }
}

/// Runs `f` while sampling the heap of `pid` every 50 ms: `f`'s result, the peak (MiB), and
/// the samples every 250 ms for the log.
fn heap_while<T>(pid: u32, f: impl FnOnce() -> T) -> (T, f64, Vec<String>) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let started = Instant::now();
            let (mut peak, mut timeline, mut last) = (0.0f64, Vec::new(), None);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let heap = heap_mib(pid);
                peak = peak.max(heap);
                let at = started.elapsed();
                if last.is_none_or(|l: Duration| at - l >= Duration::from_millis(250)) {
                    timeline.push(format!("{:.1}s {heap:.0}", at.as_secs_f64()));
                    last = Some(at);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (peak, timeline)
        });
        let out = f();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (peak, timeline) = sampler.join().expect("sampler");
        (out, peak, timeline)
    })
}

#[test]
fn readers_that_never_read_a_big_answer_are_cut_off_and_its_memory_freed() {
    const READERS: usize = 10;
    let server = serve(&[
        ("write-timeout", "1s"),
        ("idle-timeout", "1s"),
        ("max-answer-memory", "32MiB"),
    ]);
    let pid = server.pid();
    ingest_big_trace(&server, "trc_big", 240, 100_000);
    let path = "/api/v1/traces/trc_big";

    // Four readers that read it whole at once: the heap's peak then is what serving four
    // such answers costs (with the allocator's caches), the yardstick below.
    let (sizes, normal_peak, _) = heap_while(pid, || {
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| server.get(path).text.len()))
                .collect();
            let sizes: Vec<usize> = readers
                .into_iter()
                .map(|r| r.join().expect("reader"))
                .collect();
            // Past the idle timeout: the server has closed those readers' connections.
            std::thread::sleep(Duration::from_millis(1500));
            sizes
        })
    });
    let answer_mib = sizes[0] as f64 / (1 << 20) as f64;
    assert!(
        answer_mib > 20.0,
        "the trace's answer is only {answer_mib:.1} MiB"
    );
    let sockets = open_sockets(pid);

    // Readers that send the request and never read: without a bound, each pins its answer.
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    let ((mut readers, closed_after), peak, timeline) = heap_while(pid, || {
        let started = Instant::now();
        let readers: Vec<TcpStream> = (0..READERS)
            .map(|_| {
                let mut s = connect(&server);
                s.write_all(request.as_bytes()).expect("send");
                s
            })
            .collect();
        // The server closes each: cut off at the write timeout, or idle after a 503.
        std::thread::sleep(Duration::from_millis(500));
        while open_sockets(pid) > sockets && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let closed_after = (open_sockets(pid) <= sockets).then(|| started.elapsed());
        (readers, closed_after)
    });
    println!(
        "{READERS} readers that never read a {answer_mib:.1} MiB answer: all closed by the \
         server after {closed_after:?}; heap (RssAnon) peak {peak:.0} MiB against {normal_peak:.0} \
         MiB for 4 readers that read; {:.0} MiB after (VmRSS {:.0} MiB); heap MiB over time: {}",
        heap_mib(pid),
        common::status_mib(pid, "VmRSS"),
        timeline.join(", ")
    );
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for reader in &mut readers {
        let outcome = match read_answer(reader) {
            None => "closed before an answer".to_owned(),
            Some(a) if a.status == 200 && a.body.len() < a.length => "cut off".to_owned(),
            Some(a) if a.status == 200 => "whole answer".to_owned(),
            Some(a) => format!("{} {}", a.status, a.json()["error"]["code"]),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!("readers: {outcomes:?}");
    assert!(
        !outcomes.contains_key("whole answer"),
        "a reader that never read kept its answer: {outcomes:?}"
    );
    assert!(closed_after.is_some(), "connections still open after 20 s");
    // At most the budget (one answer) is held, plus the answers being built or waiting for
    // room (four): about what four readers that read cost.
    let bound = normal_peak + 2.0 * answer_mib;
    assert!(
        peak < bound,
        "heap peaked at {peak:.0} MiB (bound {bound:.0} MiB)"
    );
    // Their memory is free again: a reader that reads gets the whole answer.
    let again = server.get(path);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.text.len(), sizes[0]);
}

#[test]
fn a_read_stops_when_its_client_goes_away() {
    let server = serve(&[
        ("max-answer-memory", "1MiB"),
        ("write-timeout", "10s"),
        ("log", "kestrel=debug,info"),
    ]);
    ingest_big_trace(&server, "trc_held", 120, 100_000);
    // A reader that never reads holds the whole answer memory...
    let mut holder = connect(&server);
    holder
        .write_all(b"GET /api/v1/traces/trc_held HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    std::thread::sleep(Duration::from_millis(500));
    // ...so this read waits for room (up to 2 s, then a 503), and its client leaves meanwhile.
    let mut leaver = connect(&server);
    leaver
        .write_all(b"GET /api/v1/traces/trc_held/items?limit=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    std::thread::sleep(Duration::from_millis(300));
    drop(leaver);
    std::thread::sleep(Duration::from_millis(2500));
    let log = server.log();
    let cancelled = log
        .lines()
        .filter(|l| l.contains("read request cancelled"))
        .count();
    let refused = log
        .lines()
        .filter(|l| l.contains("answer memory budget full"))
        .count();
    println!("read whose client left: {cancelled} cancelled, {refused} answered 503");
    assert_eq!(cancelled, 1, "{log}");
    assert_eq!(refused, 0, "the abandoned read ran on to its 503: {log}");
    drop(holder);
}

/// Sends `request` on a new connection and reads the answer.
fn raw(server: &Server, request: &[u8]) -> Answer {
    let mut stream = connect(server);
    // A server may answer and close before reading all of a request that is too large.
    let _ = stream.write_all(request);
    read_answer(&mut stream).expect("an answer")
}

#[test]
fn errors_below_the_handlers_are_json() {
    let server = serve(&[]);
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(600 << 10)
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(70_000));
    let cases: [(&str, &[u8], u16, &str); 4] = [
        (
            "huge header",
            huge_header.as_bytes(),
            431,
            "header_too_large",
        ),
        (
            "malformed request line",
            b"NOT AN HTTP REQUEST\r\n\r\n",
            400,
            "bad_request",
        ),
        (
            "malformed Content-Length",
            b"POST /api/v1/ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 12abc\r\n\r\n",
            400,
            "bad_request",
        ),
        ("long URI", long_uri.as_bytes(), 414, "uri_too_long"),
    ];
    for (what, request, status, code) in cases {
        let answer = raw(&server, request);
        println!(
            "{what}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.status, status, "{what}");
        assert_eq!(answer.json()["error"]["code"], code, "{what}: {answer:?}");
        assert!(
            answer.json()["error"]["message"].as_str().is_some(),
            "{what}"
        );
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            answer.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{what}"
        );
    }
}

#[test]
fn every_answer_says_nosniff() {
    let server = serve(&[]);
    let requests: [&[u8]; 7] = [
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"GET /api/v1/traces HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"GET /api/v1/nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"DELETE /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"POST /api/v1/ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nConnection: close\r\n\r\n{",
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ];
    for request in requests {
        let answer = raw(&server, request);
        let line = String::from_utf8_lossy(request.split(|b| *b == b'\r').next().unwrap_or(b""))
            .into_owned();
        println!(
            "{line}: {} nosniff={:?}",
            answer.status,
            answer.header("x-content-type-options")
        );
        assert_eq!(
            answer.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{line}"
        );
    }
}

#[test]
fn allow_open_beyond_loopback_warns() {
    // The data dir is a file, so the server stops right after checking its exposure: it never
    // listens on 0.0.0.0.
    let dir = tempfile::tempdir().expect("temp dir");
    let not_a_dir = dir.path().join("a-file");
    std::fs::write(&not_a_dir, b"").expect("file");
    let output = common::kestrel()
        .args([
            "serve",
            "--addr",
            "0.0.0.0:8750",
            "--allow-open",
            "--data-dir",
        ])
        .arg(&not_a_dir)
        .output()
        .expect("run kestrel");
    let log = String::from_utf8_lossy(&output.stderr);
    println!("{log}");
    assert!(!output.status.success());
    assert!(
        log.contains("WARN") && log.contains("--allow-open") && log.contains("without an API key"),
        "no warning in: {log}"
    );
}
