//! The durable spool: sealed batches that Kestrel did not take (yet), kept on disk until it does.
//!
//! Layout: a spool folder (the *root*: `<user cache dir>/caribou/spool`, or the configured
//! `spool_dir`) holds one subfolder per endpoint, named by a hash of the endpoint
//! ([`endpoint_dir`]); the batches of that endpoint live there. So any number of processes, for
//! any number of Kestrels, may share one root, and a process only ever sees (and sends) batches
//! spooled for its own endpoint. The hash is of the endpoint as configured (trimmed, without
//! trailing `/`): two spellings of one server (`localhost` and `127.0.0.1`) are two folders,
//! each delivered by processes using that spelling.
//!
//! Batch files found in the root itself are not replayed: the root says nothing about which
//! Kestrel they were spooled for. They are left where they are, and the exporter warns once per
//! process ([`leftovers`]) saying where they are and where to move them to deliver them.
//!
//! An endpoint's folder holds batch files, one per sealed batch: the exact zstd body that would
//! have been posted, behind a 40-byte header (magic, record count, a tag of the API key, body
//! length, an FNV-1a checksum of the body). Files are named
//! `<µs since epoch, 16 hex>-<pid>-<seq>-<records>.batch`, so sorting names sorts oldest first,
//! and a scan learns sizes and record counts without opening anything.
//!
//! Invariants:
//! - A batch file appears whole or not at all: it is written to `.tmp-<pid>-<seq>`, fsynced,
//!   renamed to its final name, and the folder is fsynced. Only then is the batch counted as
//!   spooled (so `flush()` saying "spooled" means it survives a SIGKILL or a power cut).
//! - Several processes may share an endpoint's folder (every process with the same endpoint and
//!   spool root does). A process claims a file before sending it by renaming it to
//!   `<name>.claim-<pid>-<ms>` (atomic: one process wins), deletes it once Kestrel acknowledged
//!   it, and renames it back if the send failed. Claims left by a dead process (its pid gone from `/proc`, or any claim older
//!   than [`STALE_CLAIM`]) are released by the next scan. A batch sent twice is harmless: Kestrel
//!   stores every record once, by id.
//! - A process replays only batches spooled with the same API key (a hash of it is in the
//!   header; the key itself is never written). The others wait for a process that has it.
//! - The folder is bounded by `max_bytes`: to make room, the oldest unclaimed files are deleted and
//!   their records counted as dropped (warned once by the exporter). A single batch larger than
//!   the bound is not spooled.
//!
//! Limits: the size bound is enforced by each process from its own view of the folder (refreshed by
//! every scan), so processes writing at the same moment can overshoot it by a few batches. A file
//! whose header or checksum is wrong (a disk fault) is deleted and counted as dropped.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 8] = b"CRBSPL01";
const HEADER_LEN: usize = 40;
const SUFFIX: &str = ".batch";
const CLAIM: &str = ".claim-";
const TMP: &str = ".tmp-";

/// A claim (or a temporary file) older than this belongs to a process that is gone or stuck: a
/// claim is held only for one request, which is bounded by the request timeout.
pub const STALE_CLAIM: Duration = Duration::from_secs(10 * 60);

/// FNV-1a, 64 bits: a checksum for torn or damaged files, and the API key's tag.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The spool root used when none is configured: `<user cache dir>/caribou/spool`.
pub fn default_root() -> Option<PathBuf> {
    Some(dirs::cache_dir()?.join("caribou").join("spool"))
}

/// The folder of `endpoint`'s batches inside a spool root: `<root>/<hash of endpoint>`, 16 hex
/// digits of FNV-1a (a name that never looks like a batch file).
pub fn endpoint_dir(root: &Path, endpoint: &str) -> PathBuf {
    root.join(format!("{:016x}", fnv1a(endpoint.as_bytes())))
}

/// Batch files lying in a spool root itself, outside every endpoint's folder.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Leftovers {
    pub files: u64,
    pub records: u64,
}

/// Counts the batch files (ready or claimed) in `root` itself; they are never replayed (see the
/// module docs). A root that does not exist or cannot be read has none.
pub fn leftovers(root: &Path) -> Leftovers {
    let mut found = Leftovers::default();
    let Ok(entries) = fs::read_dir(root) else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let records =
            records_of(&name).or_else(|| parse_claim(&name).and_then(|c| records_of(c.0)));
        if let Some(records) = records {
            found.files += 1;
            found.records += records;
        }
    }
    found
}

/// A ready batch file, as known from the last scan or from writing it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    bytes: u64,
    records: u64,
}

/// A claimed batch, read back: send `body`, then [`Spool::complete`] or [`Spool::release`] it.
#[derive(Debug)]
pub struct Claim {
    name: String,
    claimed: PathBuf,
    pub records: u64,
    pub body: Vec<u8>,
}

/// What [`Spool::claim_next`] found.
#[derive(Debug)]
pub enum Next {
    Batch(Claim),
    /// A damaged file, deleted; its records (as its name says) are lost.
    Damaged {
        records: u64,
    },
}

/// What [`Spool::write`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    /// The new file's name (for [`Spool::remove_written`]).
    pub name: String,
    /// Records of older files deleted to make room.
    pub evicted_records: u64,
    pub evicted_files: u64,
}

/// One process's handle on a spool folder. Not shared between threads (the exporter thread owns it).
#[derive(Debug)]
pub struct Spool {
    /// The root this endpoint's folder is in, when opened with [`Spool::in_root`].
    root: Option<PathBuf>,
    dir: PathBuf,
    max_bytes: u64,
    key_tag: u64,
    pid: u32,
    seq: u64,
    files: BTreeMap<String, Entry>,
    total_bytes: u64,
    /// Files of another API key, or that this process could not read: not tried again.
    skip: HashSet<String>,
}

impl Spool {
    /// A handle on `endpoint`'s folder inside the spool root `root` ([`endpoint_dir`]); touches
    /// nothing on disk.
    pub fn in_root(root: &Path, endpoint: &str, max_bytes: u64, api_key: Option<&str>) -> Spool {
        Spool {
            root: Some(root.to_path_buf()),
            ..Spool::new(endpoint_dir(root, endpoint), max_bytes, api_key)
        }
    }

    /// A handle on the batch folder `dir`; touches nothing on disk (the folder is created on the
    /// first write).
    pub fn new(dir: PathBuf, max_bytes: u64, api_key: Option<&str>) -> Spool {
        Spool {
            root: None,
            dir,
            max_bytes,
            key_tag: key_tag(api_key),
            pid: std::process::id(),
            seq: 0,
            files: BTreeMap::new(),
            total_bytes: 0,
            skip: HashSet::new(),
        }
    }

    /// This endpoint's batch folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The spool root the folder is in (see [`Spool::in_root`]).
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Whether a batch file this process may replay is known.
    pub fn has_batches(&self) -> bool {
        self.files.keys().any(|n| !self.skip.contains(n))
    }

    /// Ready files and their records, as last seen.
    pub fn backlog(&self) -> (u64, u64) {
        let records = self.files.values().map(|e| e.records).sum();
        (self.files.len() as u64, records)
    }

    /// Rereads the folder: ready files, stale claims (released) and stale temporary files
    /// (deleted). A folder that does not exist is an empty spool.
    pub fn scan(&mut self) -> io::Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.files.clear();
                self.total_bytes = 0;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut files = BTreeMap::new();
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if let Some(records) = records_of(&name) {
                if let Ok(meta) = entry.metadata() {
                    files.insert(
                        name,
                        Entry {
                            bytes: meta.len(),
                            records,
                        },
                    );
                }
            } else if let Some((base, pid, ms)) = parse_claim(&name) {
                if claim_is_stale(pid, ms) {
                    let base = base.to_owned();
                    // Another process may release it at the same moment: either rename wins.
                    if fs::rename(entry.path(), self.dir.join(&base)).is_ok()
                        && let (Some(records), Ok(meta)) =
                            (records_of(&base), fs::metadata(self.dir.join(&base)))
                    {
                        files.insert(
                            base,
                            Entry {
                                bytes: meta.len(),
                                records,
                            },
                        );
                    }
                }
            } else if let Some(pid) = parse_tmp(&name) {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_CLAIM);
                if pid != self.pid && (old || process_is_gone(pid)) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        self.total_bytes = files.values().map(|e| e.bytes).sum();
        self.skip.retain(|n| files.contains_key(n));
        self.files = files;
        Ok(())
    }

    /// Writes one batch durably (see the module docs), making room first if the folder is at its
    /// bound. Returns what was evicted. An error means the batch is NOT spooled.
    pub fn write(&mut self, body: &[u8], records: u64) -> io::Result<Written> {
        let size = (HEADER_LEN + body.len()) as u64;
        if size > self.max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a batch of {size} bytes is larger than the spool bound of {} bytes",
                    self.max_bytes
                ),
            ));
        }
        let mut written = Written::default();
        if self.total_bytes + size > self.max_bytes {
            // Our view may be stale (other processes replay and write too): look again first.
            let _ = self.scan();
            written = self.make_room(size);
        }
        create_private_dir(&self.dir)?;
        self.seq += 1;
        let tmp = self.dir.join(format!("{TMP}{}-{}", self.pid, self.seq));
        let name = format!(
            "{:016x}-{}-{}-{}{SUFFIX}",
            now_us(),
            self.pid,
            self.seq,
            records
        );
        let result = (|| {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            // Trace content: readable by the user only.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(&header(records, self.key_tag, body))?;
            file.write_all(body)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, self.dir.join(&name))?;
            sync_dir(&self.dir)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.files.insert(
            name.clone(),
            Entry {
                bytes: size,
                records,
            },
        );
        self.total_bytes += size;
        written.name = name;
        Ok(written)
    }

    /// Deletes the oldest unclaimed files until `size` more bytes fit.
    fn make_room(&mut self, size: u64) -> Written {
        let mut written = Written::default();
        let names: Vec<String> = self.files.keys().cloned().collect();
        for name in names {
            if self.total_bytes + size <= self.max_bytes {
                break;
            }
            let Some(entry) = self.files.remove(&name) else {
                continue;
            };
            self.total_bytes = self.total_bytes.saturating_sub(entry.bytes);
            // NotFound: another process claimed or finished it meanwhile; not ours to count.
            if fs::remove_file(self.dir.join(&name)).is_ok() {
                written.evicted_files += 1;
                written.evicted_records += entry.records;
            }
        }
        written
    }

    /// Claims the oldest batch this process may replay, reads and checks it. `None` when there is
    /// none (or every one is claimed by others).
    pub fn claim_next(&mut self) -> Option<Next> {
        let names: Vec<String> = self
            .files
            .keys()
            .filter(|n| !self.skip.contains(*n))
            .cloned()
            .collect();
        for name in names {
            let entry = self.files.get(&name).copied();
            let claimed = self
                .dir
                .join(format!("{name}{CLAIM}{}-{}", self.pid, now_us() / 1000));
            if fs::rename(self.dir.join(&name), &claimed).is_err() {
                // Gone (sent or claimed by another process): forget it.
                self.forget(&name);
                continue;
            }
            match read_batch(&claimed, self.key_tag) {
                Ok(Some((records, body))) => {
                    return Some(Next::Batch(Claim {
                        name,
                        claimed,
                        records,
                        body,
                    }));
                }
                Ok(None) => {
                    // Another API key's batch: put it back for a process that has that key.
                    let _ = fs::rename(&claimed, self.dir.join(&name));
                    self.skip.insert(name);
                }
                Err(_) => {
                    let records = entry.map_or(0, |e| e.records);
                    self.forget(&name);
                    if fs::remove_file(&claimed).is_ok() {
                        return Some(Next::Damaged { records });
                    }
                }
            }
        }
        None
    }

    /// The claimed batch was acknowledged (or refused for good): delete it.
    pub fn complete(&mut self, claim: Claim) {
        let _ = fs::remove_file(&claim.claimed);
        self.forget(&claim.name);
    }

    /// The send failed: put the batch back for a later try (by any process).
    pub fn release(&mut self, claim: Claim) {
        if fs::rename(&claim.claimed, self.dir.join(&claim.name)).is_err() {
            // Released meanwhile as stale by another process: it is back in the folder already.
            self.forget(&claim.name);
        }
    }

    /// Deletes a batch this process wrote, once a copy of it was acknowledged. Returns false when
    /// it was not there any more (claimed by another process, which will send it again: harmless).
    pub fn remove_written(&mut self, name: &str) -> bool {
        let removed = fs::remove_file(self.dir.join(name)).is_ok();
        self.forget(name);
        removed
    }

    fn forget(&mut self, name: &str) {
        if let Some(e) = self.files.remove(name) {
            self.total_bytes = self.total_bytes.saturating_sub(e.bytes);
        }
        self.skip.remove(name);
    }
}

fn key_tag(api_key: Option<&str>) -> u64 {
    api_key.map_or(0, |k| fnv1a(k.as_bytes()) | 1)
}

fn header(records: u64, key_tag: u64, body: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&records.to_le_bytes());
    h[16..24].copy_from_slice(&key_tag.to_le_bytes());
    h[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
    h[32..40].copy_from_slice(&fnv1a(body).to_le_bytes());
    h
}

fn le(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(a)
}

/// `Ok(None)`: a sound file of another API key. `Err`: damaged.
fn read_batch(path: &Path, key_tag: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let damaged = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    if data.len() < HEADER_LEN || &data[..8] != MAGIC {
        return Err(damaged("not a spool batch"));
    }
    let records = le(&data[8..16]);
    let tag = le(&data[16..24]);
    let len = le(&data[24..32]);
    let sum = le(&data[32..40]);
    let body = data.split_off(HEADER_LEN);
    if body.len() as u64 != len || fnv1a(&body) != sum {
        return Err(damaged("truncated or damaged spool batch"));
    }
    if tag != key_tag {
        return Ok(None);
    }
    Ok(Some((records, body)))
}

/// The record count of a ready batch file's name, or `None` if it is not one.
fn records_of(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SUFFIX)?;
    let mut parts = stem.split('-');
    let (ts, pid, seq, records) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || ts.len() != 16
        || u64::from_str_radix(ts, 16).is_err()
        || pid.parse::<u32>().is_err()
        || seq.parse::<u64>().is_err()
    {
        return None;
    }
    records.parse().ok()
}

/// `<base>.claim-<pid>-<ms>` → (base, pid, ms).
fn parse_claim(name: &str) -> Option<(&str, u32, u64)> {
    let at = name.rfind(CLAIM)?;
    let base = &name[..at];
    records_of(base)?;
    let (pid, ms) = name[at + CLAIM.len()..].split_once('-')?;
    Some((base, pid.parse().ok()?, ms.parse().ok()?))
}

fn parse_tmp(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TMP)?;
    rest.split('-').next()?.parse().ok()
}

fn claim_is_stale(pid: u32, claimed_ms: u64) -> bool {
    let age_ms = (now_us() / 1000).saturating_sub(claimed_ms);
    u128::from(age_ms) > STALE_CLAIM.as_millis() || process_is_gone(pid)
}

/// Whether process `pid` certainly no longer exists. Known only where `/proc` lists processes
/// (Linux); elsewhere stale claims wait for [`STALE_CLAIM`].
fn process_is_gone(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let proc_root = Path::new("/proc");
    proc_root.join("self").exists() && !proc_root.join(pid.to_string()).exists()
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Creates the folder (and its parents), readable by the user only: it holds trace content.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(dir: &Path, max: u64, key: Option<&str>) -> Spool {
        Spool::new(dir.to_path_buf(), max, key)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn written_batches_are_claimed_oldest_first_and_completed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let mut s = spool(&dir, 1 << 20, Some("key"));
        s.scan().unwrap();
        assert!(!s.has_batches(), "a missing folder is an empty spool");
        s.write(b"first", 3).unwrap();
        s.write(b"second", 5).unwrap();
        assert_eq!(s.backlog(), (2, 8));
        assert_eq!(names(&dir).len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.join(&names(&dir)[0]);
            assert_eq!(fs::metadata(file).unwrap().permissions().mode() & 0o077, 0);
            assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o077, 0);
        }

        // Another process with the same key sees them after a scan.
        let mut other = spool(&dir, 1 << 20, Some("key"));
        other.scan().unwrap();
        assert_eq!(other.backlog(), (2, 8));
        let Some(Next::Batch(claim)) = other.claim_next() else {
            panic!("a batch")
        };
        assert_eq!((claim.records, &claim.body[..]), (3, &b"first"[..]));
        // Claimed: the first process cannot take it, only the second file.
        let Some(Next::Batch(c2)) = s.claim_next() else {
            panic!("the other batch")
        };
        assert_eq!(&c2.body[..], b"second");
        assert!(s.claim_next().is_none());
        s.release(c2);
        other.complete(claim);
        other.scan().unwrap();
        assert_eq!(other.backlog(), (1, 5));
        let Some(Next::Batch(c)) = other.claim_next() else {
            panic!()
        };
        other.complete(c);
        assert!(names(&dir).is_empty());
    }

    #[test]
    fn other_keys_are_left_alone_and_damage_is_detected() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = spool(tmp.path(), 1 << 20, Some("a"));
        a.write(b"of a", 1).unwrap();
        let mut b = spool(tmp.path(), 1 << 20, None);
        b.scan().unwrap();
        assert!(b.claim_next().is_none());
        assert!(!b.has_batches());
        assert_eq!(names(tmp.path()).len(), 1, "put back");

        // Damage the file: its checksum no longer matches.
        let name = names(tmp.path()).remove(0);
        let path = tmp.path().join(&name);
        let mut data = fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&path, data).unwrap();
        a.scan().unwrap();
        assert!(matches!(a.claim_next(), Some(Next::Damaged { records: 1 })));
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn the_bound_evicts_oldest_first_and_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let body = vec![7u8; 100];
        let per_file = (HEADER_LEN + body.len()) as u64;
        let mut s = spool(tmp.path(), per_file * 3, None);
        for records in 1..=3 {
            let w = s.write(&body, records).unwrap();
            assert_eq!((w.evicted_files, w.evicted_records), (0, 0));
        }
        let w = s.write(&body, 4).unwrap();
        assert_eq!((w.evicted_files, w.evicted_records), (1, 1));
        assert_eq!(s.backlog(), (3, 2 + 3 + 4));
        assert!(
            s.write(&vec![0u8; 1000], 1).is_err(),
            "larger than the bound"
        );
        assert_eq!(s.backlog(), (3, 9));
    }

    #[test]
    fn stale_claims_and_temporary_files_of_dead_processes_are_cleaned() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = spool(tmp.path(), 1 << 20, None);
        s.write(b"x", 2).unwrap();
        let name = names(tmp.path()).remove(0);
        // A claim by a pid that does not exist, and a claim from long ago.
        fs::rename(
            tmp.path().join(&name),
            tmp.path()
                .join(format!("{name}.claim-4000000000-{}", now_us() / 1000)),
        )
        .unwrap();
        fs::write(tmp.path().join(".tmp-4000000000-1"), b"half").unwrap();
        fs::write(tmp.path().join("unrelated.txt"), b"kept").unwrap();
        let mut other = spool(tmp.path(), 1 << 20, None);
        other.scan().unwrap();
        if Path::new("/proc/self").exists() {
            assert_eq!(other.backlog(), (1, 2));
            assert_eq!(
                names(tmp.path()),
                vec![name.clone(), "unrelated.txt".into()]
            );
        }
        // A live claim (ours) is not touched.
        let Some(Next::Batch(c)) = other.claim_next() else {
            panic!()
        };
        let mut third = spool(tmp.path(), 1 << 20, None);
        third.scan().unwrap();
        assert!(!third.has_batches());
        other.release(c);
        third.scan().unwrap();
        assert!(third.has_batches());
    }

    #[test]
    fn each_endpoint_has_its_folder_in_a_shared_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let mut a = Spool::in_root(root, "http://127.0.0.1:1111", 1 << 20, Some("key"));
        a.write(b"for a", 2).unwrap();
        assert_eq!(a.dir(), endpoint_dir(root, "http://127.0.0.1:1111"));
        assert_eq!(a.root(), Some(root));
        assert_eq!(names(&endpoint_dir(root, "http://127.0.0.1:1111")).len(), 1);

        // Same root and key, another endpoint: nothing to replay.
        let mut b = Spool::in_root(root, "http://127.0.0.1:2222", 1 << 20, Some("key"));
        b.scan().unwrap();
        assert!(!b.has_batches());
        assert!(b.claim_next().is_none());
        // The endpoint's own next process finds it.
        let mut a2 = Spool::in_root(root, "http://127.0.0.1:1111", 1 << 20, Some("key"));
        a2.scan().unwrap();
        assert_eq!(a2.backlog(), (1, 2));
        assert_eq!(
            leftovers(root),
            Leftovers::default(),
            "nothing in the root itself"
        );
    }

    #[test]
    fn leftovers_are_the_batch_files_in_the_root_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert_eq!(leftovers(&root.join("missing")), Leftovers::default());
        let mut loose = spool(root, 1 << 20, None);
        loose.write(b"x", 3).unwrap();
        loose.write(b"y", 5).unwrap();
        let name = names(root).remove(0);
        fs::rename(
            root.join(&name),
            root.join(format!("{name}.claim-4000000000-1")),
        )
        .unwrap();
        fs::write(root.join("notes.txt"), b"kept").unwrap();
        Spool::in_root(root, "http://h:1", 1 << 20, None)
            .write(b"z", 7)
            .unwrap();
        assert_eq!(
            leftovers(root),
            Leftovers {
                files: 2,
                records: 8
            }
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!(records_of("0000018f00000000-12-3-1000.batch"), Some(1000));
        assert_eq!(
            records_of("0000018f00000000-12-3-1000.batch.claim-1-2"),
            None
        );
        assert_eq!(records_of("x-12-3-1000.batch"), None);
        assert_eq!(
            parse_claim("0000018f00000000-12-3-10.batch.claim-77-123"),
            Some(("0000018f00000000-12-3-10.batch", 77, 123))
        );
        assert_eq!(parse_tmp(".tmp-55-9"), Some(55));
    }
}
