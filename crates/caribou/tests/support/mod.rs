//! What the spool and warning tests share: a listener that counts who knocks, the SDK config
//! they use, and the batch files under a spool folder (found whatever the layout inside it).

#![allow(dead_code)] // each test file uses its own part

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use caribou::model::{Item, Message};
use caribou::{Config, TraceOptions};

static SERIAL: Mutex<()> = Mutex::new(());

/// Tests of one file share the process-wide SDK: they run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A port where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port()
}

/// The SDK for the Kestrel on `port`, spooling under `root`, quick to give up on a request.
pub fn spooling(port: u16, root: &Path) -> Config {
    Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        project: Some("tests".into()),
        max_batch_records: 10,
        flush_interval: Duration::from_millis(10),
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(500),
        spool: true,
        spool_dir: Some(root.to_path_buf()),
        ..Config::default()
    }
}

/// Logs one trace of `messages` messages (`messages + 2` records with its open and close).
pub fn log_trace(messages: usize) {
    caribou::trace_run(TraceOptions::default(), |_| {
        for i in 0..messages {
            caribou::log(Item::Message(Message {
                role: "user".into(),
                content: Some(format!("message {i}").into()),
                ..Default::default()
            }));
        }
    });
}

/// Every batch file (ready or claimed) under `root`, at any depth, sorted.
pub fn batch_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if entry.file_name().to_string_lossy().contains(".batch") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Spools a trace for a Kestrel that is down, then moves its batch files into `root` itself,
/// where an SDK that used the configured folder as-is left them. Returns their paths.
pub fn loose_files_in(root: &Path) -> Vec<PathBuf> {
    let stage = tempfile::tempdir().expect("a temporary folder");
    caribou::configure(spooling(closed_port(), stage.path()));
    log_trace(3);
    let report = caribou::shutdown(Some(Duration::from_secs(5)));
    assert_eq!((report.spooled, report.pending), (5, 0), "{report:?}");
    std::fs::create_dir_all(root).expect("the root");
    let moved: Vec<PathBuf> = batch_files(stage.path())
        .into_iter()
        .map(|file| {
            let to = root.join(file.file_name().expect("a file name"));
            std::fs::rename(&file, &to).expect("moved");
            to
        })
        .collect();
    assert!(!moved.is_empty());
    moved
}

/// A listener that accepts connections and never answers, counting them: who tried to send
/// something to its port.
pub struct Knocks {
    pub port: u16,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Knocks {
    /// Listens on `port` (0: any free port).
    pub fn listen(port: u16) -> Knocks {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("address").port();
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        held.push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Knocks { port, count, stop }
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits up to `patience` for a first connection; the count then.
    pub fn wait(&self, patience: Duration) -> usize {
        let deadline = Instant::now() + patience;
        while self.count() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.count()
    }
}

impl Drop for Knocks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
