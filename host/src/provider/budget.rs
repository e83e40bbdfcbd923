//! A bounded set of connections shared fairly between client addresses.
//!
//! At most `capacity` connections hold a [`Ticket`] at once. When the budget is full, a new
//! connection from a source holding fewer tickets than the heaviest source takes the place of
//! that heaviest source's oldest connection, which is *evicted* (its [`Ticket::evicted`]
//! resolves and its task closes it); a connection from a source already among the heaviest is
//! refused. So a single address (or a few) can never keep another one out: an honest client
//! arriving while an attacker fills the budget always gets a slot. Only an attacker with about as
//! many sources as the budget has slots, churning them faster than an honest client completes
//! its handshake or request, can still push it out (see docs/hardening.md).
//!
//! A source is an IPv4 address, or an IPv6 /64 (one host commonly holds a whole /64); IPv4-mapped
//! IPv6 addresses count as their IPv4 address.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// The budget; shared by a listener's accept loop and its connections' tasks.
#[derive(Debug)]
pub(super) struct SourceBudget {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    total: usize,
    /// Each source's connections, oldest first.
    sources: HashMap<Source, VecDeque<Entry>>,
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
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let [a, b, c, d, ..] = v6.segments();
                Self(IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0)))
            }
        }
    }
}

/// Why a connection was not given a ticket: the budget is full and its source is among the
/// heaviest.
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
    /// The oldest connection of the heaviest source was evicted for this one.
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

    /// A ticket for a connection from `ip`, evicting the heaviest source's oldest connection if
    /// the budget is full and `ip`'s source holds fewer tickets than that one.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(Ticket, Admission), Refused> {
        let source = Source::of(ip);
        // The lock only guards plain data; a poisoned lock still holds a consistent state.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut admission = Admission::Free;
        if state.total >= self.capacity {
            let own = state.sources.get(&source).map_or(0, VecDeque::len);
            let heaviest = state
                .sources
                .iter()
                .filter_map(|(source, entries)| Some((*source, entries.len(), entries.front()?.id)))
                // The most tickets; among equals, the one holding the oldest ticket.
                .max_by_key(|&(_, held, oldest)| (held, std::cmp::Reverse(oldest)));
            match heaviest {
                Some((victim, held, _)) if held > own => {
                    state.evict_oldest(victim);
                    admission = Admission::Evicted;
                }
                _ => return Err(Refused),
            }
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
        // The heaviest source cannot take more.
        assert_eq!(budget.admit(ip("10.0.0.1")).map(|_| ()), Err(Refused));
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
        // Sources now hold one each: equals refuse one another.
        assert_eq!(budget.admit(ip("10.0.0.2")).map(|_| ()), Err(Refused));
        drop(second);
        assert!(budget.admit(ip("10.0.0.2")).is_ok());
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
    fn an_ipv6_slash_64_is_one_source_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            Source::of(ip("2001:db8:1:2:aaaa::1")),
            Source::of(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(Source::of(ip("2001:db8:1:2::1")), Source::of(ip("2001:db8:1:3::1")));
        assert_eq!(Source::of(ip("::ffff:10.0.0.1")), Source::of(ip("10.0.0.1")));
        let budget = SourceBudget::new(1);
        let _held = budget.admit(ip("2001:db8:1:2::1")).expect("room");
        assert_eq!(budget.admit(ip("2001:db8:1:2::99")).map(|_| ()), Err(Refused));
    }
}
