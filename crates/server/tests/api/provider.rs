//! Test doubles for the server's adapters: a clock the test moves, and the sandbox provider behind
//! a gate that holds charges where a slow provider or a frozen process would.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::livemode::Livemode;
use domain::payment::{Charge, ChargeLookup, ChargeResult, ProviderError};
use domain::ports::Clock;
use domain::ports::PaymentProvider;
use sandbox::Sandbox;

/// Real time plus an offset the test moves forward.
#[derive(Debug, Default)]
pub struct TestClock {
    offset: Mutex<chrono::Duration>,
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap()
    }
}

impl TestClock {
    pub fn advance(&self, by: chrono::Duration) {
        *self.offset.lock().unwrap() += by;
    }

    /// Moves the clock to `at` (which may be before where it stands).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.offset.lock().unwrap() = at - Utc::now();
    }

    /// Back to real time.
    pub fn reset(&self) {
        *self.offset.lock().unwrap() = chrono::Duration::zero();
    }
}

/// Where the gate holds a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hold {
    /// Charges go straight through.
    #[default]
    Nothing,
    /// Before the sandbox sees the charge: a provider that has not answered yet.
    BeforeCharging,
    /// After the sandbox charged, before the answer is returned: a process frozen (or killed)
    /// between the provider's answer and recording it.
    AfterCharging,
}

#[derive(Debug, Default)]
struct Gate {
    hold: Hold,
    /// Charges waiting at the gate.
    waiting: usize,
    /// Charges let through so far by `release` or `drop_held`.
    released: u64,
    /// Whether the last of them was `drop_held`.
    dropped: bool,
    /// (payment id, attempt id) of every charge asked for.
    asked: Vec<(String, String)>,
}

/// The sandbox behind a gate.
#[derive(Debug, Default)]
pub struct GatedSandbox {
    pub sandbox: Sandbox,
    gate: Mutex<Gate>,
    changed: Condvar,
}

impl GatedSandbox {
    /// Holds every following charge at `hold` until `release`.
    pub fn hold(&self, hold: Hold) {
        self.gate.lock().unwrap().hold = hold;
    }

    /// Waits (bounded) until `count` charges are held at the gate.
    pub fn wait_for_held(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut gate = self.gate.lock().unwrap();
        while gate.waiting < count {
            let left = deadline.checked_duration_since(Instant::now()).expect("charges never reached the gate");
            gate = self.changed.wait_timeout(gate, left).unwrap().0;
        }
    }

    /// Lets every held charge through and stops holding.
    pub fn release(&self) {
        self.open(false);
    }

    /// Stops holding; charges held `BeforeCharging` never reach the sandbox: each fails as a call
    /// whose connection dropped would, with nothing charged. (The process that asked is as good
    /// as dead: whatever it records comes after the sweeper has dealt with its charge.)
    pub fn drop_held(&self) {
        self.open(true);
    }

    fn open(&self, dropped: bool) {
        let mut gate = self.gate.lock().unwrap();
        gate.hold = Hold::Nothing;
        gate.released += 1;
        gate.dropped = dropped;
        self.changed.notify_all();
    }

    /// Attempt ids the sandbox captured (and did not give back) for `payment_id`.
    pub fn captured_for(&self, payment_id: &str) -> Vec<String> {
        self.attempts_of(payment_id, self.sandbox.captured())
    }

    /// Attempt ids the sandbox refunded for `payment_id`.
    pub fn refunded_for(&self, payment_id: &str) -> Vec<String> {
        self.attempts_of(payment_id, self.sandbox.refunded())
    }

    fn attempts_of(&self, payment_id: &str, attempts: Vec<String>) -> Vec<String> {
        let gate = self.gate.lock().unwrap();
        let ours: Vec<&String> = gate.asked.iter().filter(|(p, _)| p == payment_id).map(|(_, a)| a).collect();
        attempts.into_iter().filter(|a| ours.contains(&a)).collect()
    }

    /// Holds the calling charge if the gate holds at `hold`; `true` if it was dropped.
    fn wait_at(&self, hold: Hold) -> bool {
        let mut gate = self.gate.lock().unwrap();
        if gate.hold != hold {
            return false;
        }
        let ticket = gate.released;
        gate.waiting += 1;
        self.changed.notify_all();
        // Bounded: a test that forgets to release fails instead of hanging.
        let deadline = Instant::now() + Duration::from_secs(60);
        while gate.released == ticket {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
            if left.is_zero() {
                break;
            }
            gate = self.changed.wait_timeout(gate, left).unwrap().0;
        }
        gate.waiting -= 1;
        gate.released != ticket && gate.dropped
    }
}

impl PaymentProvider for GatedSandbox {
    fn name(&self) -> &'static str {
        self.sandbox.name()
    }

    fn supports(&self, livemode: Livemode) -> bool {
        self.sandbox.supports(livemode)
    }

    fn charge(&self, charge: &Charge<'_>) -> Result<ChargeResult, ProviderError> {
        self.gate.lock().unwrap().asked.push((charge.payment_id.to_owned(), charge.attempt_id.to_owned()));
        if self.wait_at(Hold::BeforeCharging) {
            return Err(ProviderError("the connection dropped before the provider answered".into()));
        }
        let result = self.sandbox.charge(charge);
        // Charged already: a drop here could not undo it, so the answer comes back either way.
        self.wait_at(Hold::AfterCharging);
        result
    }

    fn lookup(&self, attempt_id: &str) -> Result<ChargeLookup, ProviderError> {
        self.sandbox.lookup(attempt_id)
    }

    fn refund(&self, attempt_id: &str) -> Result<(), ProviderError> {
        self.sandbox.refund(attempt_id)
    }
}
