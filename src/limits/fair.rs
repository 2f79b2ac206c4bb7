//! A budget shared fairly between client addresses ([`FairShare`]): so many units (bytes of
//! upload bodies, file views in progress) across the instance, granted first come, first
//! served. One client address holds its share (a client that holds nothing may always take its
//! turn); past it, its requests queue like anyone else's and let other clients' requests go
//! first, and are granted only while no other client waits and a share's worth stays free for
//! whoever comes next. So a client alone uses most of the budget (many people behind one
//! address are served in turn), and one address that floods or stalls never holds the last
//! share nor keeps another waiting for more than the units in front of it.
//!
//! A request waits at most its queue time, then is refused; a request whose future is dropped
//! (its connection closed) leaves the queue at once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

/// No room came free within the queue time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

/// A budget of units shared between client addresses. Cheap to clone.
#[derive(Clone)]
pub struct FairShare {
    state: Arc<Mutex<State>>,
    capacity: u64,
    share: u64,
}

struct Waiter {
    ticket: u64,
    client: Option<IpAddr>,
    units: u64,
    granted: oneshot::Sender<()>,
}

struct State {
    free: u64,
    held: HashMap<IpAddr, u64>,
    queue: VecDeque<Waiter>,
    next_ticket: u64,
}

impl State {
    /// Whether `client` may take `units` more now, if they fit: it holds nothing yet (a
    /// request bigger than a share must still have its turn), it stays within its share, or
    /// no other client waits and a share's worth stays free for whoever comes next.
    fn within_share(&self, client: Option<IpAddr>, units: u64, share: u64) -> bool {
        let Some(client) = client else { return true };
        let held = self.held.get(&client).copied().unwrap_or(0);
        if held == 0 || held + units <= share {
            return true;
        }
        let others_wait = self
            .queue
            .iter()
            .any(|waiter| waiter.client != Some(client));
        !others_wait && self.free.saturating_sub(units) >= share
    }

    fn take(&mut self, client: Option<IpAddr>, units: u64) {
        self.free -= units;
        if let Some(client) = client {
            *self.held.entry(client).or_default() += units;
        }
    }

    fn give_back(&mut self, client: Option<IpAddr>, units: u64) {
        self.free += units;
        if let Some(client) = client {
            if let Some(held) = self.held.get_mut(&client) {
                *held = held.saturating_sub(units);
                if *held == 0 {
                    self.held.remove(&client);
                }
            }
        }
    }

    /// Grants waiting requests in order: the first one within its share (or alone) is granted
    /// if its units fit; if they do not, no later request goes before it.
    fn dispatch(&mut self, share: u64) {
        loop {
            let Some(at) = (0..self.queue.len()).find(|&at| {
                let waiter = &self.queue[at];
                self.within_share(waiter.client, waiter.units, share)
            }) else {
                return;
            };
            if self.queue[at].units > self.free {
                return;
            }
            let waiter = self.queue.remove(at).expect("found above");
            self.take(waiter.client, waiter.units);
            if waiter.granted.send(()).is_err() {
                // Its request is gone (it gave up in the same moment): the units come back.
                self.give_back(waiter.client, waiter.units);
            }
        }
    }
}

/// Units held, given back when dropped.
pub struct Held {
    state: Arc<Mutex<State>>,
    client: Option<IpAddr>,
    units: u64,
    share: u64,
}

impl Held {
    /// The units held.
    pub fn units(&self) -> u64 {
        self.units
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.give_back(self.client, self.units);
        state.dispatch(self.share);
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request's place in the queue, until it takes up its units. Dropped before that (a
/// timeout, or the request's future dropped when its connection closed), it leaves the queue,
/// or, if its units were granted in the meantime, gives them back.
struct Ticket<'a> {
    budget: &'a FairShare,
    ticket: u64,
    client: Option<IpAddr>,
    units: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.budget.state);
        let queued = state.queue.len();
        state.queue.retain(|waiter| waiter.ticket != self.ticket);
        if state.queue.len() == queued {
            // Granted (under this lock, so nothing else saw it): the units come back.
            state.give_back(self.client, self.units);
        }
        // A request that left may have been what kept others back.
        state.dispatch(self.budget.share);
    }
}

impl FairShare {
    /// A budget of `capacity` units, of which one client address holds at most `share` while
    /// other clients wait.
    pub fn new(capacity: u64, share: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                free: capacity,
                held: HashMap::new(),
                queue: VecDeque::new(),
                next_ticket: 0,
            })),
            capacity,
            share: share.max(1),
        }
    }

    /// All the units.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// One client's share while others wait.
    pub fn share(&self) -> u64 {
        self.share
    }

    /// Units free right now.
    pub fn free(&self) -> u64 {
        lock(&self.state).free
    }

    /// Requests waiting right now.
    pub fn waiting(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// `units` for `client` (`None`: counted for no client), waiting at most `queue` for them.
    /// More than the whole budget is refused at once.
    pub async fn acquire(
        &self,
        client: Option<IpAddr>,
        units: u64,
        queue: Duration,
    ) -> Result<Held, NoRoom> {
        if units > self.capacity {
            return Err(NoRoom);
        }
        let held = |units| Held {
            state: Arc::clone(&self.state),
            client,
            units,
            share: self.share,
        };
        let (granted, wait) = oneshot::channel();
        let ticket = {
            let mut state = lock(&self.state);
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.queue.push_back(Waiter {
                ticket,
                client,
                units,
                granted,
            });
            state.dispatch(self.share);
            ticket
        };
        let ticket = Ticket {
            budget: self,
            ticket,
            client,
            units,
        };
        match tokio::time::timeout(queue, wait).await {
            Ok(Ok(())) => {
                // The units are taken up: from now on `Held` gives them back.
                std::mem::forget(ticket);
                Ok(held(units))
            }
            // Out of the queue, or its units given back if they came at the last moment.
            _ => Err(NoRoom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    const QUEUE: Duration = Duration::from_secs(2);

    #[tokio::test(start_paused = true)]
    async fn a_client_alone_may_use_all_but_the_last_share() {
        let budget = FairShare::new(100, 25);
        let a = budget.acquire(ip(1), 60, QUEUE).await.expect("alone");
        let b = budget.acquire(ip(1), 15, QUEUE).await.expect("still alone");
        assert_eq!(budget.free(), 25);
        let started = tokio::time::Instant::now();
        assert_eq!(budget.acquire(ip(1), 1, QUEUE).await.err(), Some(NoRoom));
        assert_eq!(started.elapsed(), QUEUE, "it waited, then was refused");
        // The last share is anyone else's.
        let c = budget
            .acquire(ip(2), 25, QUEUE)
            .await
            .expect("another client");
        drop((a, b, c));
        assert_eq!(budget.free(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn past_its_share_a_client_queues_and_others_go_first() {
        let budget = FairShare::new(4, 1);
        // Client 1 alone takes all but the last share; client 3 takes that one.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(budget.acquire(ip(1), 1, QUEUE).await.expect("alone"));
        }
        let last = budget
            .acquire(ip(3), 1, QUEUE)
            .await
            .expect("the last share");
        // Client 1 asks for more, then client 2: both wait; the next unit goes to client 2,
        // although client 1 asked first (client 1 is past its share while 2 waits), and
        // client 1's only once a share is free besides.
        let more = budget.acquire(ip(1), 1, QUEUE);
        let other = budget.acquire(ip(2), 1, QUEUE);
        let release = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            held.pop();
            tokio::time::sleep(Duration::from_millis(100)).await;
            held.pop();
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(last);
        };
        let started = tokio::time::Instant::now();
        let (more, other, ()) = tokio::join!(
            async {
                let granted = more.await;
                (granted, started.elapsed())
            },
            async {
                let granted = other.await;
                (granted, started.elapsed())
            },
            release
        );
        assert!(other.0.is_ok() && more.0.is_ok());
        assert_eq!(
            other.1,
            Duration::from_millis(100),
            "the other client first"
        );
        assert_eq!(
            more.1,
            Duration::from_millis(300),
            "then client 1, a share left"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_its_queue_time_then_is_refused_and_leaves_no_trace() {
        let budget = FairShare::new(10, 10);
        let held = budget.acquire(ip(1), 10, QUEUE).await.expect("room");
        let started = tokio::time::Instant::now();
        assert_eq!(budget.acquire(ip(2), 5, QUEUE).await.err(), Some(NoRoom));
        assert_eq!(started.elapsed(), QUEUE);
        assert_eq!(budget.waiting(), 0);
        // More than the budget: at once.
        assert_eq!(budget.acquire(ip(2), 11, QUEUE).await.err(), Some(NoRoom));
        assert_eq!(started.elapsed(), QUEUE);
        drop(held);
        assert_eq!(budget.free(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_request_leaves_the_queue_and_lets_the_next_one_in() {
        let budget = FairShare::new(10, 10);
        let held = budget.acquire(ip(1), 8, QUEUE).await.expect("room");
        // A big request waits at the head; a small one behind it does not pass it...
        let mut big = Box::pin(budget.acquire(ip(2), 5, QUEUE));
        let waited = tokio::time::timeout(Duration::from_millis(1), &mut big).await;
        assert!(waited.is_err(), "the big request waits");
        let small = budget.acquire(ip(3), 2, Duration::from_millis(10)).await;
        assert_eq!(
            small.err(),
            Some(NoRoom),
            "no passing the head of the queue"
        );
        // ...until the big one's connection closes (its future dropped).
        drop(big);
        assert_eq!(budget.waiting(), 0);
        let small = budget.acquire(ip(3), 2, QUEUE).await;
        assert!(small.is_ok());
        drop(held);
    }
}
