//! The open-file limit, and the connection cap that fits under it.
//!
//! Every connection holds a file descriptor. Past the process's soft `RLIMIT_NOFILE`, `accept`
//! fails with `EMFILE` and, worse, the store can no longer open its files. At start the soft
//! limit is raised toward the hard one, as far as the cap needs, and the cap is lowered to what
//! fits under the limit after [`FD_RESERVE`] descriptors kept for everything else.

use crate::conn::ConnLimits;

/// Descriptors kept for what is not a connection: the store's database, WAL and shared-memory
/// files for each of its SQLite connections and the temporary files of large sorts, the
/// runtime's event queue, the listener, stdio and the log.
pub const FD_RESERVE: u64 = 128;

/// The connection cap chosen at start, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub max_connections: usize,
    /// The soft open-file limit in force (`None`: unlimited or unknown).
    pub fd_limit: Option<u64>,
    /// The soft limit before it was raised, if it was.
    pub raised_from: Option<u64>,
}

/// Raises the soft open-file limit as far as `limits.max_connections` needs (and the hard limit
/// allows), and returns the cap that fits under it.
pub fn fit(limits: &ConnLimits) -> Fit {
    let wanted = limits.max_connections;
    let Some((soft, hard)) = current() else {
        return Fit {
            max_connections: wanted,
            fd_limit: None,
            raised_from: None,
        };
    };
    let needed = wanted as u64 + FD_RESERVE;
    let mut raised_from = None;
    let mut in_force = soft;
    if let Some(s) = soft
        && s < needed
    {
        let target = hard.map_or(needed, |h| h.min(needed));
        if target > s && raise(target, hard) {
            in_force = Some(target);
            raised_from = Some(s);
        }
    }
    Fit {
        max_connections: cap_under(wanted, in_force),
        fd_limit: in_force,
        raised_from,
    }
}

/// The most connections that fit under a soft limit of `fd_limit`, at most `wanted`.
fn cap_under(wanted: usize, fd_limit: Option<u64>) -> usize {
    match fd_limit {
        None => wanted,
        Some(limit) => {
            // A very low limit still serves a few connections: half of it goes to the reserve.
            let reserve = FD_RESERVE.min(limit / 2);
            let room = usize::try_from(limit - reserve).unwrap_or(usize::MAX);
            wanted.min(room).max(1)
        }
    }
}

#[cfg(unix)]
fn current() -> Option<(Option<u64>, Option<u64>)> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    Some((limit.current, limit.maximum))
}

#[cfg(not(unix))]
fn current() -> Option<(Option<u64>, Option<u64>)> {
    None
}

#[cfg(unix)]
fn raise(target: u64, hard: Option<u64>) -> bool {
    let new = rustix::process::Rlimit {
        current: Some(target),
        maximum: hard,
    };
    match rustix::process::setrlimit(rustix::process::Resource::Nofile, new) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, target, "cannot raise the open-file limit");
            false
        }
    }
}

#[cfg(not(unix))]
fn raise(_target: u64, _hard: Option<u64>) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_the_reserve() {
        assert_eq!(cap_under(1024, None), 1024);
        assert_eq!(cap_under(1024, Some(20_000)), 1024);
        assert_eq!(cap_under(1024, Some(1024)), 1024 - FD_RESERVE as usize);
        assert_eq!(cap_under(1024, Some(100)), 50);
        assert_eq!(cap_under(1024, Some(0)), 1);
    }

    #[test]
    fn a_small_cap_fits() {
        let limits = ConnLimits {
            max_connections: 10,
            ..ConnLimits::DEFAULT
        };
        assert_eq!(fit(&limits).max_connections, 10);
    }
}
