//! Shared by the black-box tests: a real `kestrel serve` child process on a free 127.0.0.1 port,
//! an HTTP client that does not treat 4xx/5xx as errors, and builders of realistic records.
//!
//! The child is killed when its [`Server`] is dropped, so a failing test never leaves a server
//! running. Its log goes to a file in the test's temp dir and is printed when it fails to start.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use caribou_model::{
    Batch, Item, ItemRecord, Message, Phase, Record, RolloutStatus, StatusRecord, ToolExecution,
    TraceClose, TraceOpen, new_record_id, now_us,
};
use serde_json::Value;
use uuid::Uuid;

/// Every variable the server reads; removed from the child's environment so the developer's shell
/// cannot change what a test sees.
const KESTREL_ENV: &[&str] = &[
    "KESTREL_ADDR",
    "KESTREL_DATA_DIR",
    "KESTREL_API_KEY",
    "KESTREL_API_KEYS_FILE",
    "KESTREL_ALLOW_OPEN",
    "KESTREL_MAX_BODY_BYTES",
    "KESTREL_MAX_DECOMPRESSED_BYTES",
    "KESTREL_HEADER_TIMEOUT",
    "KESTREL_IDLE_TIMEOUT",
    "KESTREL_BODY_TIMEOUT",
    "KESTREL_WRITE_TIMEOUT",
    "KESTREL_MAX_CONNECTIONS",
    "KESTREL_MAX_ANSWER_MEMORY",
    "KESTREL_MAX_INGEST_MEMORY",
    "KESTREL_QUERY_TIMEOUT",
    "KESTREL_CONFIG",
    "KESTREL_LOG",
];

/// The `kestrel` binary under test: this build's, or the one `KESTREL_TEST_BIN` names (an older
/// build, to show that a new test fails on the code before its fix).
pub fn kestrel() -> Command {
    let bin = std::env::var_os("KESTREL_TEST_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_kestrel")),
        PathBuf::from,
    );
    let mut cmd = Command::new(bin);
    for var in KESTREL_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// How long a starting `kestrel serve` may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until the `kestrel serve` in `child` answers `/healthz` at `base`; on failure (it exited,
/// or no answer in time) the error holds its log.
pub fn wait_healthy(child: &mut Child, base: &str, log_path: &Path) -> Result<(), String> {
    let log = || std::fs::read_to_string(log_path).unwrap_or_default();
    let agent = agent();
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}\n{}", log()));
        }
        if let Ok(r) = agent.get(format!("{base}/healthz")).call()
            && r.status() == 200
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "no answer on /healthz after {} s\n{}",
        START_TIMEOUT.as_secs(),
        log()
    ))
}

/// A `kestrel serve` on a fixed port (for tests that kill it and start it again on the same
/// address), its stderr appended to `log_path`; panics with the log if it does not come up.
pub fn serve_on(port: u16, data_dir: &Path, log_path: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("log file");
    let mut child = kestrel()
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn kestrel");
    if let Err(e) = wait_healthy(&mut child, &format!("http://127.0.0.1:{port}"), log_path) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("kestrel did not start on port {port}: {e}");
    }
    child
}

/// A running `kestrel serve`.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub agent: ureq::Agent,
    /// Sent as `Authorization: Bearer` by the helpers when set.
    pub key: Option<String>,
    _own_dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A server on a fresh data dir.
    pub fn start() -> Server {
        Server::start_with(&[], &[])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Server::start_in(&dir.path().join("data"), args, env);
        server._own_dir = Some(dir);
        server
    }

    /// A server on `data_dir` (which outlives it, for restart tests).
    pub fn start_in(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let log_path = data_dir.with_extension(format!("{}.log", free_port()));
        for attempt in 0..3 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let log = std::fs::File::create(&log_path).expect("log file");
            let mut cmd = kestrel();
            cmd.args(["serve", "--addr", &addr, "--data-dir"])
                .arg(data_dir)
                .args(args)
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log);
            let child = cmd.spawn().expect("spawn kestrel");
            let mut server = Server {
                child: Some(child),
                base: format!("http://{addr}"),
                data_dir: data_dir.to_owned(),
                log_path: log_path.clone(),
                agent: agent(),
                key: env
                    .iter()
                    .find(|(k, _)| *k == "KESTREL_API_KEY")
                    .map(|(_, v)| v.to_string()),
                _own_dir: None,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                // The port may have been taken between probing and binding: try another.
                Err(log) if attempt < 2 && log.contains("cannot listen") => continue,
                Err(log) => panic!("kestrel did not start:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        match self.child.as_mut() {
            Some(child) => wait_healthy(child, &self.base, &self.log_path),
            None => Err("no child process".to_owned()),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> Reply {
        let mut req = self.agent.get(self.url(path));
        if let Some(k) = &self.key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        Reply::from(req.call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    pub fn post_raw(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut req = self.agent.post(self.url(path));
        if let Some(k) = &self.key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::from(req.send(body))
    }

    pub fn ingest(&self, batch: &Batch) -> Reply {
        self.post(
            "/api/v1/ingest",
            &serde_json::to_value(batch).expect("batch to json"),
        )
    }

    /// Stops with SIGTERM (a graceful shutdown) and returns how the process exited.
    pub fn stop(self) -> ExitStatus {
        self.terminate();
        self.wait_exit()
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (up to 20 s) for the process to exit.
    pub fn wait_exit(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "kestrel did not stop within 20 s of SIGTERM\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A line of `/proc/<pid>/status` in kB (`VmRSS`, `RssAnon`), as MiB.
pub fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// An HTTP client that hands back 4xx and 5xx answers instead of errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// An answer: status, body as text, and as JSON when it is JSON (else `Null`).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub json: Value,
    pub content_type: String,
}

impl From<Result<ureq::http::Response<ureq::Body>, ureq::Error>> for Reply {
    fn from(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut r = r.expect("HTTP request failed");
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .expect("read body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            text,
            json,
            content_type,
        }
    }
}

impl Reply {
    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        self.json
    }

    /// The message of a JSON error body; asserts the body has the error shape.
    #[track_caller]
    pub fn error_message(&self) -> String {
        let code = self.json["error"]["code"].as_str();
        let message = self.json["error"]["message"].as_str();
        assert!(
            code.is_some() && message.is_some(),
            "not a JSON error body: {}",
            self.text
        );
        message.unwrap_or_default().to_owned()
    }
}

/// Builds the records of traces the way an SDK would.
pub struct TraceBuilder {
    pub trace_id: String,
    pub turn_id: Uuid,
    pub records: Vec<Record>,
    ts: i64,
}

impl TraceBuilder {
    pub fn new(trace_id: &str) -> TraceBuilder {
        TraceBuilder {
            trace_id: trace_id.to_owned(),
            turn_id: Uuid::now_v7(),
            records: Vec::new(),
            ts: now_us() - 60_000_000,
        }
    }

    fn tick(&mut self) -> i64 {
        self.ts += 1_000; // a millisecond between records
        self.ts
    }

    /// Opens a turn; `run_id` is a run id or, in prod, a project name.
    pub fn open(
        mut self,
        run_id: &str,
        phase: Phase,
        step: Option<i64>,
        datapoint: Option<&str>,
    ) -> Self {
        self.turn_id = Uuid::now_v7();
        let ts = self.tick();
        self.records.push(Record::TraceOpen(TraceOpen {
            id: new_record_id(),
            trace_id: self.trace_id.clone(),
            ts,
            turn_id: self.turn_id,
            project: None,
            run_id: Some(run_id.to_owned()),
            phase: Some(phase),
            step,
            datapoint_id: datapoint.map(str::to_owned),
            model_name: Some("gpt-4o".into()),
            metadata: None,
        }));
        self
    }

    pub fn item(mut self, item: Item) -> Self {
        let ts = self.tick();
        self.records.push(Record::Item(ItemRecord {
            id: new_record_id(),
            trace_id: self.trace_id.clone(),
            ts,
            turn_id: Some(self.turn_id),
            item,
        }));
        self
    }

    pub fn message(self, role: &str, content: &str, input: u64, output: u64, cost: f64) -> Self {
        self.item(Item::Message(Message {
            role: role.into(),
            content: Some(Value::String(content.into())),
            input_tokens: Some(input),
            output_tokens: Some(output),
            cost_usd: Some(cost),
            ..Default::default()
        }))
    }

    pub fn tool(self, name: &str) -> Self {
        self.item(Item::ToolExecution(ToolExecution {
            name: name.into(),
            arguments: Some(serde_json::json!({"q": "weather"})),
            result: Some(Value::String("sunny".into())),
            ..Default::default()
        }))
    }

    pub fn status(mut self, status: RolloutStatus) -> Self {
        let ts = self.tick();
        self.records.push(Record::Status(StatusRecord {
            id: new_record_id(),
            trace_id: self.trace_id.clone(),
            ts,
            status,
        }));
        self
    }

    pub fn close(mut self, status: RolloutStatus) -> Self {
        let ts = self.tick();
        self.records.push(Record::TraceClose(TraceClose {
            id: new_record_id(),
            trace_id: self.trace_id.clone(),
            ts,
            turn_id: self.turn_id,
            status: Some(status),
        }));
        self
    }

    pub fn batch(&self) -> Batch {
        Batch {
            records: self.records.clone(),
        }
    }
}
