//! The descriptors the provider's connection budgets need, against the process's limit.
//!
//! Every budget of the provider (established sessions, pending handshakes, side-port
//! connections, evaluations reaching registries) holds at most its count of descriptors, so their
//! sum bounds what clients can make it open. That bound only protects the HTTPS port if the
//! process may open that many: at start-up the soft `RLIMIT_NOFILE` is raised up to the hard
//! limit when it is lower than the sum (as Go programs do), and a limit still lower is logged.

/// Descriptors beyond the budgets: listeners, the runtime, files, logs.
const SPARE: u64 = 64;

/// Raises the soft descriptor limit to at least `budgets` plus a spare, as far as the hard limit
/// allows; warns when it stays below.
pub(super) fn ensure(budgets: u64) {
    let needed = budgets.saturating_add(SPARE);
    match raise(needed) {
        Ok(limit) if limit >= needed => tracing::debug!(limit, needed, "descriptor limit"),
        Ok(limit) => tracing::warn!(
            limit,
            needed,
            "the descriptor limit (ulimit -n) is below what the connection budgets may hold: clients \
             filling them could leave the provider unable to accept Gatekeeper's connections; raise \
             the limit or lower --max-connections, --max-pending-handshakes or --max-metrics-connections"
        ),
        Err(error) => tracing::warn!(%error, "cannot read the descriptor limit"),
    }
}

/// The soft limit after raising it towards `needed` (never above the hard limit).
#[cfg(unix)]
fn raise(needed: u64) -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the rlimit it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let current = widen(limit.rlim_cur);
    if current >= needed || limit.rlim_cur >= limit.rlim_max {
        return Ok(current);
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the rlimit it is given, which lives for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    tracing::info!(
        from = current,
        to = widen(raised.rlim_cur),
        "raised the descriptor limit"
    );
    Ok(widen(raised.rlim_cur))
}

/// `rlim_t` is `u64` on 64-bit Linux, narrower elsewhere.
#[cfg(unix)]
#[allow(clippy::useless_conversion)]
fn widen(limit: libc::rlim_t) -> u64 {
    u64::from(limit)
}

#[cfg(not(unix))]
fn raise(_needed: u64) -> std::io::Result<u64> {
    Ok(u64::MAX)
}
