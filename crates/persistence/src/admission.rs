//! Admission control: a request that would wait longer than the queue timeout for a connection is
//! refused at once, instead of queueing and answering after the caller has given up.
//!
//! Each way to the database (the pool; on SQLite, also the writer) has a [`Gate`] that counts who
//! is inside (holding a connection or waiting for one) and keeps a moving average of how long a
//! connection is held. A newcomer that finds every connection taken has `ahead` callers queued in
//! front of it, served `capacity` at a time, so it can expect to wait about
//! `(ahead + 1) × hold ÷ capacity`; if that is longer than the timeout it is turned away before it
//! queues. The pool's and the writer's own timeouts (the same value) are the backstop for a wait
//! the estimate got wrong.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::RepoError;

/// One way to the database: how many callers it serves at once, and who is inside.
#[derive(Debug)]
pub(crate) struct Gate {
    name: &'static str,
    capacity: u32,
    timeout: Duration,
    /// Callers holding a connection or waiting for one.
    inside: AtomicU32,
    /// Moving average of how long a connection is held, in nanoseconds (0: nothing measured yet).
    hold_nanos: AtomicU64,
    /// Callers turned away since start.
    refused: AtomicU64,
}

/// A caller let in: leaving (dropping it) makes room, and its hold time, from [`Ticket::start`] to
/// the drop, feeds the average.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    started: Option<Instant>,
}

impl Gate {
    pub(crate) fn new(name: &'static str, capacity: u32, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            name,
            capacity: capacity.max(1),
            timeout,
            inside: AtomicU32::new(0),
            hold_nanos: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// How long a caller may wait for a connection.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Lets the caller in, or refuses it at once when its wait would exceed the timeout.
    pub(crate) fn enter(self: &Arc<Self>) -> Result<Ticket, RepoError> {
        let ahead = self.inside.fetch_add(1, Ordering::AcqRel);
        let ticket = Ticket { gate: self.clone(), started: None };
        if let Some(wait) = self.expected_wait(ahead) {
            if wait > self.timeout {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(RepoError::Unavailable(format!(
                    "the {} queue is full: {} callers ahead would take about {} ms, more than the {} ms allowed \
                     (CHECKOUT_QUEUE_TIMEOUT_MS)",
                    self.name,
                    ahead,
                    wait.as_millis(),
                    self.timeout.as_millis()
                )));
            }
        }
        Ok(ticket)
    }

    /// The wait of a caller that finds `ahead` others inside, if it has to queue at all.
    fn expected_wait(&self, ahead: u32) -> Option<Duration> {
        let queued = ahead.checked_sub(self.capacity)?;
        let hold = self.hold_nanos.load(Ordering::Relaxed);
        let nanos = u128::from(queued + 1) * u128::from(hold) / u128::from(self.capacity);
        Some(Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }

    /// Folds one hold time into the average (weight 1/16: it follows a change of load within
    /// a few dozen requests and is not thrown by one slow one).
    fn record(&self, held: Duration) {
        let sample = u64::try_from(held.as_nanos()).unwrap_or(u64::MAX);
        let old = self.hold_nanos.load(Ordering::Relaxed);
        let new = if old == 0 { sample } else { old - old / 16 + sample / 16 };
        // A lost update under contention loses one sample, not the average.
        self.hold_nanos.store(new, Ordering::Relaxed);
    }

    /// Callers being served now.
    pub(crate) fn serving(&self) -> u32 {
        self.inside.load(Ordering::Relaxed).min(self.capacity)
    }

    /// Callers waiting now (beyond those being served).
    pub(crate) fn queued(&self) -> u32 {
        self.inside.load(Ordering::Relaxed).saturating_sub(self.capacity)
    }

    /// Callers turned away since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Ticket {
    /// Marks the moment the caller got its connection.
    pub(crate) fn start(&mut self) {
        self.started = Some(Instant::now());
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(started) = self.started {
            self.gate.record(started.elapsed());
        }
        self.gate.inside.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Connections handed out in the order they were asked for. r2d2 lets a caller that arrives as a
/// connection comes back take it before one that has been waiting, so under a saturated pool a
/// waiter can lose that race again and again (seconds, at the tail); callers take a permit here
/// first, one per connection, first come first served.
#[derive(Debug)]
pub(crate) struct Fifo {
    state: Mutex<Queue>,
}

#[derive(Debug)]
struct Queue {
    free: u32,
    waiting: VecDeque<Arc<Turn>>,
}

/// One waiter's turn: set when a permit is handed to it.
#[derive(Debug, Default)]
struct Turn {
    given: Mutex<bool>,
    ready: Condvar,
}

/// A permit to take a connection; handed on to the next waiter when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    fifo: Arc<Fifo>,
}

impl Fifo {
    pub(crate) fn new(permits: u32) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(Queue { free: permits.max(1), waiting: VecDeque::new() }) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A permit, after everyone who asked before; `None` if none came within `wait`.
    pub(crate) fn acquire(self: &Arc<Self>, wait: Duration) -> Option<Permit> {
        let turn = {
            let mut queue = self.lock();
            if queue.free > 0 && queue.waiting.is_empty() {
                queue.free -= 1;
                return Some(Permit { fifo: self.clone() });
            }
            let turn = Arc::new(Turn::default());
            queue.waiting.push_back(turn.clone());
            turn
        };
        let deadline = Instant::now() + wait;
        let mut given = turn.given.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while !*given {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(given);
                let mut queue = self.lock();
                // Handed a permit just now after all: keep it.
                if *turn.given.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
                    return Some(Permit { fifo: self.clone() });
                }
                queue.waiting.retain(|w| !Arc::ptr_eq(w, &turn));
                return None;
            }
            given = turn.ready.wait_timeout(given, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        Some(Permit { fifo: self.clone() })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut queue = self.fifo.lock();
        match queue.waiting.pop_front() {
            Some(next) => {
                *next.given.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
                next.ready.notify_one();
            }
            None => queue.free += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(gate: &Arc<Gate>, held: Duration) {
        let mut ticket = gate.enter().unwrap();
        ticket.start();
        ticket.started = Some(Instant::now() - held);
    }

    #[test]
    fn callers_within_capacity_never_wait_and_are_always_let_in() {
        let gate = Gate::new("pool", 2, Duration::from_millis(10));
        served(&gate, Duration::from_secs(5));
        let tickets: Vec<_> = (0..2).map(|_| gate.enter().unwrap()).collect();
        assert_eq!(gate.inside.load(Ordering::Relaxed), 2);
        drop(tickets);
        assert_eq!(gate.inside.load(Ordering::Relaxed), 0);
        assert_eq!(gate.refused(), 0);
    }

    #[test]
    fn a_caller_whose_wait_would_exceed_the_timeout_is_refused_at_once() {
        // Two connections held 10 ms each: the queue drains at one caller per 5 ms.
        let gate = Gate::new("pool", 2, Duration::from_millis(102));
        served(&gate, Duration::from_millis(10));
        let mut inside = Vec::new();
        // Two holding, then twenty queued: the last of them expects 100 ms and is still let in;
        // the next would expect 105 ms.
        for _ in 0..22 {
            inside.push(gate.enter().unwrap());
        }
        let error = gate.enter().unwrap_err();
        assert!(error.to_string().contains("the pool queue is full"), "{error}");
        assert!(error.to_string().contains("CHECKOUT_QUEUE_TIMEOUT_MS"), "{error}");
        assert_eq!(gate.refused(), 1);
        assert_eq!(gate.inside.load(Ordering::Relaxed), 22, "a refused caller leaves no trace inside");
        // Once the queue moves, callers are let in again.
        inside.truncate(10);
        assert!(gate.enter().is_ok());
    }

    #[test]
    fn the_average_follows_the_hold_times() {
        let gate = Gate::new("writer", 1, Duration::from_secs(1));
        served(&gate, Duration::from_millis(8));
        let first = gate.hold_nanos.load(Ordering::Relaxed);
        assert!((7_900_000..9_000_000).contains(&first), "{first}");
        for _ in 0..200 {
            served(&gate, Duration::from_millis(1));
        }
        let later = gate.hold_nanos.load(Ordering::Relaxed);
        assert!((900_000..1_200_000).contains(&later), "{later}");
    }

    #[test]
    fn permits_go_to_waiters_in_the_order_they_asked() {
        let fifo = Fifo::new(1);
        let held = fifo.acquire(Duration::ZERO).expect("a free permit");
        assert!(fifo.acquire(Duration::from_millis(20)).is_none(), "none free: the wait runs out");
        let order = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|scope| {
            for i in 0..4 {
                let (mine, order) = (fifo.clone(), order.clone());
                scope.spawn(move || {
                    let permit = mine.acquire(Duration::from_secs(30)).expect("a turn");
                    order.lock().unwrap().push(i);
                    drop(permit);
                });
                // The next waiter asks only once this one is queued.
                while fifo.lock().waiting.len() < i + 1 {
                    std::thread::yield_now();
                }
            }
            drop(held);
        });
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
        assert_eq!(fifo.lock().free, 1, "every permit came back");
    }
}
