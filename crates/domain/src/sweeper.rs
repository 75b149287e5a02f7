//! The sweeper's use cases, run by every replica on a timer: resolve charges whose answer was lost
//! (asking the provider), give back stray charges, expire sessions past their end. Each change
//! applies only to the order's version it read, so replicas never fight.

use crate::order::{AttemptOutcome, ChargeEnd};
use crate::orders::{OrderError, Orders};
use crate::payment::{ChargeLookup, DeclineCode};
use crate::webhook::EventType;

/// How long a charge may stay `processing` before the provider is asked what became of it: well
/// past the provider call's own budget.
pub const STUCK_AFTER_SECONDS: i64 = 120;

/// Sessions expired in one transaction. One write each would wait its turn behind every create
/// in flight, so under a drop's load a backlog would drain at a few hundred a second; twenty at a
/// time are still a write of a millisecond or two, which the creates queued behind it barely
/// notice (fifty doubled their p99 on SQLite).
const EXPIRED_TOGETHER: usize = 20;

/// The sweeper.
#[derive(Clone, Debug)]
pub struct Sweeper {
    orders: Orders,
}

impl Sweeper {
    /// The sweeper's use cases over `orders`.
    pub fn new(orders: Orders) -> Self {
        Self { orders }
    }

    /// Resolves charges left `processing` for longer than any charge takes (their process died
    /// between asking the provider and recording its answer, or the provider is slow): asks the
    /// provider what became of each and records that, so a charge that went through is never
    /// lost and the consumer is never charged twice. A charge the provider is still answering is
    /// left alone. Then gives back stray charges whose refund failed earlier. Returns how many
    /// checkouts it changed.
    pub fn release_stuck_charges(&self, batch: i64) -> Result<usize, OrderError> {
        let now = self.orders.clock.now();
        let mut changed = 0;
        for record in self.orders.store.stuck_charges(now - chrono::Duration::seconds(STUCK_AFTER_SECONDS), batch)? {
            let attempt =
                record.last_attempt.as_ref().filter(|a| a.outcome == AttemptOutcome::Processing).map(|a| a.id.clone());
            let answer = match &attempt {
                Some(id) => match self.orders.provider.lookup(id) {
                    Ok(answer) => answer,
                    Err(error) => {
                        log::warn!("cannot ask the provider about charge {id} yet: {error}");
                        continue;
                    }
                },
                // Started before attempts were recorded up front: the provider cannot be asked.
                None => ChargeLookup::NotFound,
            };
            let (end, decline) = match answer {
                ChargeLookup::Pending => continue,
                ChargeLookup::Succeeded => (ChargeEnd::Succeeded, None),
                ChargeLookup::Declined(code) => (ChargeEnd::Declined, Some(code)),
                ChargeLookup::NotFound | ChargeLookup::Refunded => {
                    (ChargeEnd::NotCharged, Some(DeclineCode::ProcessingError))
                }
            };
            let version = record.version;
            if self.orders.settle(record, attempt.as_deref(), end, decline)?.version != version {
                changed += 1;
            }
        }
        for (record, attempt) in self.orders.store.stray_charges(batch)? {
            let version = record.version;
            if self.orders.give_back(record, &attempt)?.version != version {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Expires sessions past their end, a batch at a time; safe to run on several replicas at once:
    /// each change applies only to the order's version it read, so each order expires (and its
    /// event is written) once. Returns how many it expired.
    pub fn expire_due(&self, batch: i64) -> Result<usize, OrderError> {
        let now = self.orders.clock.now();
        let due = self.orders.store.due_for_expiry(now, batch)?;
        let moves: Vec<_> = due
            .iter()
            .filter_map(|record| {
                record.state.expire(now).ok().filter(|next| *next != record.state).map(|next| (record, next))
            })
            .collect();
        let mut expired = 0;
        for together in moves.chunks(EXPIRED_TOGETHER) {
            expired += self.orders.apply_each(together, &[EventType::OrderExpired])?;
        }
        Ok(expired)
    }
}
