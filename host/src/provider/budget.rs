//! A bounded set of connections shared fairly between client addresses.
//!
//! At most `capacity` connections hold a [`Ticket`] at once. When the budget is full, a new
//! connection takes the place of another one, which is *evicted* (its [`Ticket::evicted`]
//! resolves and its task closes it):
//!
//! - a connection from a **trusted** source (an address that completed an mTLS handshake, its
//!   client certificate verified, within [`TRUSTED_FOR`]: Gatekeeper) evicts the oldest
//!   connection of the heaviest untrusted source, however few that one holds; failing that, the
//!   oldest of a trusted source holding more than its own; failing that, its own oldest;
//! - a connection from an untrusted source evicts the oldest connection of the heaviest
//!   untrusted source holding more than it does, or else its own oldest: it never evicts a
//!   trusted source's connection, and is refused only when trusted sources hold every slot and
//!   it holds none.
//!
//! So clients that never authenticated, from however many addresses, cannot keep Gatekeeper's
//! new handshakes out (each one takes an untrusted slot), and a client sharing Gatekeeper's
//! address (a node's SNAT, a sidecar in front of the provider) must open `capacity` connections
//! within one of Gatekeeper's handshakes to push it out. Without mTLS nobody is trusted, and the
//! fairness between addresses is all there is: an attacker with about as many addresses as the
//! budget has slots, churning them faster than an honest client completes its handshake, can
//! still push it out (see docs/hardening.md).
//!
//! A source is an IP address (IPv4-mapped IPv6 addresses count as their IPv4 address). IPv6
//! addresses are not grouped by prefix: in a cluster's pod network one /64 commonly holds every
//! pod of a node, or of many nodes (Calico, Cilium), Gatekeeper's included.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The budget; shared by a listener's accept loop and its connections' tasks.
#[derive(Debug)]
pub(super) struct SourceBudget {
    capacity: usize,
    state: Mutex<State>,
}

/// How long a source stays trusted after its last authenticated handshake.
pub(super) const TRUSTED_FOR: Duration = Duration::from_secs(600);
/// Trusted sources remembered at most (Gatekeeper runs a few pods).
const MAX_TRUSTED: usize = 256;

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    total: usize,
    /// Each source's connections, oldest first.
    sources: HashMap<Source, VecDeque<Entry>>,
    /// Sources that completed an authenticated handshake, and when they last did.
    trusted: HashMap<Source, Instant>,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    evict: oneshot::Sender<()>,
}

/// Where connections come from, as far as fairness is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Source(IpAddr);

impl Source {
    pub(super) fn of(ip: IpAddr) -> Self {
        Self(ip.to_canonical())
    }
}

/// Why a connection was not given a ticket: the budget is full, trusted sources hold every
/// slot, and its source is not trusted.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refused;

/// One connection's place in the budget, given back when dropped.
#[derive(Debug)]
pub(super) struct Ticket {
    budget: Arc<SourceBudget>,
    source: Source,
    id: u64,
    /// `None` once the eviction was seen.
    evicted: Option<oneshot::Receiver<()>>,
}

/// What [`SourceBudget::admit`] did to make room, besides admitting.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// There was room.
    Free,
    /// Another connection (perhaps of the same source) was evicted for this one.
    Evicted,
}

impl SourceBudget {
    /// A budget of `capacity` connections (at least 1).
    pub(super) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// A ticket for a connection from `ip`, evicting another connection if the budget is full
    /// (the module's documentation says which).
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(Ticket, Admission), Refused> {
        let source = Source::of(ip);
        // The lock only guards plain data; a poisoned lock still holds a consistent state.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut admission = Admission::Free;
        if state.total >= self.capacity {
            let victim = state.victim(source, Instant::now()).ok_or(Refused)?;
            state.evict_oldest(victim);
            admission = Admission::Evicted;
        }
        let id = state.next_id;
        state.next_id += 1;
        let (evict, evicted) = oneshot::channel();
        state.sources.entry(source).or_default().push_back(Entry { id, evict });
        state.total += 1;
        Ok((
            Ticket {
                budget: Arc::clone(self),
                source,
                id,
                evicted: Some(evicted),
            },
            admission,
        ))
    }

    /// Tickets held now.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

impl State {
    fn is_trusted(&self, source: Source, now: Instant) -> bool {
        self.trusted
            .get(&source)
            .is_some_and(|at| now.saturating_duration_since(*at) < TRUSTED_FOR)
    }

    /// Whose oldest connection makes room for one from `source`; `None`: refuse it.
    fn victim(&self, source: Source, now: Instant) -> Option<Source> {
        let own = self.sources.get(&source).map_or(0, VecDeque::len);
        // The source holding the most among those `trusted` (or not) says, the one holding
        // the oldest ticket among equals.
        let heaviest = |trusted: bool| {
            self.sources
                .iter()
                .filter(|(other, _)| self.is_trusted(**other, now) == trusted)
                .filter_map(|(other, entries)| Some((*other, entries.len(), entries.front()?.id)))
                .max_by_key(|&(_, held, oldest)| (held, std::cmp::Reverse(oldest)))
        };
        let untrusted = heaviest(false);
        let others = if self.is_trusted(source, now) {
            untrusted.map(|(victim, ..)| victim).or(heaviest(true)
                .filter(|&(_, held, _)| held > own)
                .map(|(victim, ..)| victim))
        } else {
            untrusted.filter(|&(_, held, _)| held > own).map(|(victim, ..)| victim)
        };
        others.or((own > 0).then_some(source))
    }

    fn evict_oldest(&mut self, source: Source) {
        let Some(entries) = self.sources.get_mut(&source) else {
            return;
        };
        if let Some(entry) = entries.pop_front() {
            self.total -= 1;
            // The connection may have ended already; then nobody listens.
            let _ = entry.evict.send(());
        }
        if entries.is_empty() {
            self.sources.remove(&source);
        }
    }
}

impl Ticket {
    /// Marks the connection's source trusted: it completed an authenticated handshake (with
    /// mTLS, a client certificate of the client CA verified).
    pub(super) fn trust_source(&self) {
        let now = Instant::now();
        let mut state = self.budget.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.trusted.len() >= MAX_TRUSTED && !state.trusted.contains_key(&self.source) {
            state
                .trusted
                .retain(|_, at| now.saturating_duration_since(*at) < TRUSTED_FOR);
            if state.trusted.len() >= MAX_TRUSTED
                && let Some(stalest) = state.trusted.iter().min_by_key(|(_, at)| **at).map(|(s, _)| *s)
            {
                state.trusted.remove(&stalest);
            }
        }
        state.trusted.insert(self.source, now);
    }

    /// Resolves when the connection was evicted to make room for another source's.
    pub(super) async fn evicted(&mut self) {
        if let Some(evicted) = self.evicted.as_mut() {
            // The sender is dropped without sending only when the entry is gone, which happens
            // only by eviction (the budget outlives its tickets).
            let _ = evicted.await;
            self.evicted = None;
        }
    }

    /// Whether the connection was evicted already.
    #[cfg(test)]
    pub(super) fn was_evicted(&mut self) -> bool {
        let Some(evicted) = self.evicted.as_mut() else {
            return true;
        };
        if matches!(evicted.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
            return false;
        }
        self.evicted = None;
        true
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.budget.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entries) = state.sources.get_mut(&self.source) else {
            return;
        };
        let Some(at) = entries.iter().position(|entry| entry.id == self.id) else {
            // Evicted: already counted out.
            return;
        };
        entries.remove(at);
        if entries.is_empty() {
            state.sources.remove(&self.source);
        }
        state.total -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn tickets_are_given_back_when_dropped() {
        let budget = SourceBudget::new(2);
        let (a, _) = budget.admit(ip("10.0.0.1")).expect("room");
        let (b, _) = budget.admit(ip("10.0.0.1")).expect("room");
        assert_eq!(budget.held(), 2);
        drop(a);
        drop(b);
        assert_eq!(budget.held(), 0);
        assert!(budget.state.lock().expect("lock").sources.is_empty());
    }

    #[tokio::test]
    async fn a_full_budget_evicts_the_heaviest_sources_oldest_connection_for_another_source() {
        let budget = SourceBudget::new(3);
        let (mut first, _) = budget.admit(ip("10.0.0.1")).expect("room");
        let (mut second, _) = budget.admit(ip("10.0.0.1")).expect("room");
        let (mut other, _) = budget.admit(ip("10.0.0.2")).expect("room");
        // A new source evicts 10.0.0.1's oldest.
        let (_honest, admission) = budget.admit(ip("10.0.0.3")).expect("evicts");
        assert_eq!(admission, Admission::Evicted);
        assert!(first.was_evicted());
        first.evicted().await;
        assert!(!second.was_evicted() && !other.was_evicted());
        assert_eq!(budget.held(), 3);
        // Dropping an evicted ticket does not count it out twice.
        drop(first);
        assert_eq!(budget.held(), 3);
        // Sources now hold one each: a source among the heaviest takes its own oldest's place,
        // never an equal's.
        let (_again, admission) = budget.admit(ip("10.0.0.2")).expect("its own place");
        assert_eq!(admission, Admission::Evicted);
        assert!(other.was_evicted() && !second.was_evicted());
        assert_eq!(budget.held(), 3);
    }

    /// Gatekeeper's address, once it completed an mTLS handshake, takes the place of a client
    /// that never did, whatever each holds; such clients never take its places.
    #[test]
    fn a_trusted_source_evicts_untrusted_ones_and_is_never_evicted_by_them() {
        let budget = SourceBudget::new(4);
        let (gatekeeper, _) = budget.admit(ip("10.0.0.1")).expect("room");
        gatekeeper.trust_source();
        let (mut gatekeeper_pending, _) = budget.admit(ip("10.0.0.1")).expect("room");
        let (mut gatekeeper_second, _) = budget.admit(ip("10.0.0.1")).expect("room");
        drop(gatekeeper);
        let mut attackers: Vec<Ticket> = (2..4)
            .map(|n| budget.admit(ip(&format!("10.0.0.{n}"))).expect("room").0)
            .collect();
        assert_eq!(budget.held(), 4);
        // Untrusted sources, holding fewer than Gatekeeper, cannot take its places: they evict
        // one another or are refused.
        let (_third, admission) = budget.admit(ip("10.0.0.9")).expect("the heaviest untrusted");
        assert_eq!(admission, Admission::Evicted);
        assert!(attackers[0].was_evicted() && !attackers[1].was_evicted());
        let (_fourth, admission) = budget.admit(ip("10.0.0.10")).expect("an untrusted place");
        assert_eq!(admission, Admission::Evicted);
        assert!(!gatekeeper_pending.was_evicted() && !gatekeeper_second.was_evicted());
        // Gatekeeper, holding the most, still evicts an untrusted client.
        let (_new, admission) = budget.admit(ip("10.0.0.1")).expect("evicts an untrusted one");
        assert_eq!(admission, Admission::Evicted);
        assert!(!gatekeeper_pending.was_evicted() && !gatekeeper_second.was_evicted());
        // Only trusted connections left, and one untrusted: a new untrusted source holding
        // nothing is refused only when trusted sources hold every slot.
        let (_last, _) = budget.admit(ip("10.0.0.1")).expect("evicts the last untrusted one");
        assert_eq!(budget.admit(ip("10.0.0.11")).map(|_| ()), Err(Refused));
        // A source sharing Gatekeeper's address takes the oldest of its own.
        let (_shared, admission) = budget.admit(ip("10.0.0.1")).expect("its own oldest");
        assert_eq!(admission, Admission::Evicted);
        assert!(gatekeeper_pending.was_evicted() && !gatekeeper_second.was_evicted());
    }

    #[test]
    fn trust_expires_and_is_bounded() {
        let budget = SourceBudget::new(1);
        let (ticket, _) = budget.admit(ip("10.0.0.1")).expect("room");
        ticket.trust_source();
        let later = Instant::now() + TRUSTED_FOR;
        let state = budget.state.lock().expect("lock");
        assert!(state.is_trusted(Source::of(ip("10.0.0.1")), Instant::now()));
        assert!(!state.is_trusted(Source::of(ip("10.0.0.1")), later));
        drop(state);
        drop(ticket);
        for n in 0..(MAX_TRUSTED + 10) {
            let (ticket, _) = budget
                .admit(ip(&format!("10.1.{}.{}", n / 256, n % 256)))
                .expect("room");
            ticket.trust_source();
        }
        assert_eq!(budget.state.lock().expect("lock").trusted.len(), MAX_TRUSTED);
    }

    #[test]
    fn among_equally_heavy_sources_the_oldest_connection_goes_first() {
        let budget = SourceBudget::new(3);
        let mut tickets: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|a| budget.admit(ip(a)).expect("room").0)
            .collect();
        // A source holding nothing evicts the oldest of the sources holding one each.
        let (_new, admission) = budget.admit(ip("10.0.0.4")).expect("evicts");
        assert_eq!(admission, Admission::Evicted);
        let evicted: Vec<bool> = tickets.iter_mut().map(Ticket::was_evicted).collect();
        assert_eq!(evicted, [true, false, false]);
    }

    #[test]
    fn each_ipv6_address_is_a_source_and_mapped_ipv4_is_ipv4() {
        // A pod network puts a node's pods (or many nodes') in one /64.
        assert_ne!(
            Source::of(ip("2001:db8:1:2:aaaa::1")),
            Source::of(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_eq!(Source::of(ip("::ffff:10.0.0.1")), Source::of(ip("10.0.0.1")));
        let budget = SourceBudget::new(1);
        let (mut held, _) = budget.admit(ip("2001:db8:1:2::1")).expect("room");
        assert!(budget.admit(ip("2001:db8:1:2::99")).is_ok());
        assert!(held.was_evicted());
    }
}
