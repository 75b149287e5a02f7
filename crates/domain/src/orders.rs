//! The merchant's order use cases (read, cancel) and the machinery every change of an order goes
//! through, shared with the checkout page ([`crate::page`]) and the sweeper ([`crate::sweeper`]):
//! a change is computed from the order as read and applied only to the version it was computed
//! from (see [`crate::order::OrderState`]); a charge that lands after its order moved on is
//! recorded, and pays the order or is given back.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::ids::{EventId, OrderId};
use crate::merchant::Caller;
use crate::order::{
    AttemptChange, AttemptOutcome, CancellationReason, ChargeEnd, Order, OrderState, OrderStatus, Refused, Transition,
};
use crate::payment::DeclineCode;
use crate::ports::{Clock, Envelopes, OrderStore, PaymentProvider, StoreError};
use crate::webhook::{EventType, NewEvent};

/// Failures of the page, order and sweeper use cases.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// No checkout behind that token or id (404).
    #[error("no such checkout")]
    NotFound,
    /// The provider may not charge in this mode (live orders refuse the sandbox).
    #[error("payments in this mode are not available with the configured provider")]
    ModeUnsupported,
    /// The checkout kept changing under a change (retrying later will see where it settled).
    #[error("the checkout kept changing while it was being updated")]
    Conflict,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many times a change is computed again when the order moved meanwhile.
const ROUNDS: usize = 3;

/// An event of `event_type` about `order` as it stands at `at`, its envelope written by
/// `envelopes`: what a change writes to the webhook outbox.
pub fn event(envelopes: &dyn Envelopes, event_type: EventType, order: &Order, at: DateTime<Utc>) -> NewEvent {
    let id = EventId::new();
    NewEvent {
        id,
        event_type,
        merchant_id: order.merchant_id,
        livemode: order.livemode,
        payload: envelopes.envelope(id, event_type, order, at),
        created_at: at,
    }
}

/// Orders: the merchant's use cases, and the changes the page and the sweeper make.
#[derive(Clone)]
pub struct Orders {
    pub(crate) store: Arc<dyn OrderStore>,
    pub(crate) provider: Arc<dyn PaymentProvider>,
    pub(crate) clock: Arc<dyn Clock>,
    envelopes: Arc<dyn Envelopes>,
    pub(crate) max_failed_attempts: i32,
}

impl std::fmt::Debug for Orders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orders").field("provider", &self.provider.name()).finish_non_exhaustive()
    }
}

impl Orders {
    /// Wires the use cases. A checkout closes after `max_failed_attempts` declined cards.
    pub fn new(
        store: Arc<dyn OrderStore>,
        provider: Arc<dyn PaymentProvider>,
        clock: Arc<dyn Clock>,
        envelopes: Arc<dyn Envelopes>,
        max_failed_attempts: i32,
    ) -> Self {
        Self { store, provider, clock, envelopes, max_failed_attempts: max_failed_attempts.max(1) }
    }

    /// The current time, for pages that show time left.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn shown(&self, mut record: Order) -> Order {
        record.state = record.state.at(self.clock.now());
        record
    }

    pub(crate) fn reload(&self, record: &Order) -> Result<Order, OrderError> {
        self.store.find_order(record.merchant_id, record.livemode, record.order_id)?.ok_or(OrderError::NotFound)
    }

    /// Applies `to` (with its attempt change and events) to `record` if its order has not moved
    /// on; the record as changed, or `None` if it had moved.
    pub(crate) fn apply(
        &self,
        record: &Order,
        to: OrderState,
        attempt: Option<AttemptChange<'_>>,
        events: &[EventType],
    ) -> Result<Option<Order>, OrderError> {
        let now = self.clock.now();
        let mut next = record.clone().moved_to(to, now);
        if let (Some(AttemptChange::End { id, outcome, decline_code }), Some(last)) =
            (attempt, next.last_attempt.as_mut())
        {
            if last.id == id {
                last.outcome = outcome;
                last.decline_code = decline_code;
            }
        }
        if let Some(AttemptChange::Begin(attempt)) = attempt {
            next.last_attempt = Some(attempt.clone());
        }
        let events: Vec<NewEvent> = events.iter().map(|&t| event(&*self.envelopes, t, &next, now)).collect();
        let change = Transition { version: record.version, from: record.state, to, attempt, events: &events, at: now };
        Ok(self.store.transition(record.order_id, change)?.then_some(next))
    }

    /// Moves each of `moves` (a record and where it goes, with no attempt change) and writes its
    /// `events`, all in one transaction, each only if its order has not moved on; how many moved.
    pub(crate) fn apply_each(&self, moves: &[(&Order, OrderState)], events: &[EventType]) -> Result<usize, OrderError> {
        let now = self.clock.now();
        let written: Vec<Vec<NewEvent>> = moves
            .iter()
            .map(|&(record, to)| {
                let next = record.clone().moved_to(to, now);
                events.iter().map(|&t| event(&*self.envelopes, t, &next, now)).collect()
            })
            .collect();
        let changes: Vec<(OrderId, Transition<'_>)> = moves
            .iter()
            .zip(&written)
            .map(|(&(record, to), events)| {
                let change =
                    Transition { version: record.version, from: record.state, to, attempt: None, events, at: now };
                (record.order_id, change)
            })
            .collect();
        Ok(self.store.transitions(&changes)?.into_iter().filter(|&applied| applied).count())
    }

    /// Records how the running charge `attempt` of `record` ended. If the order moved on meanwhile
    /// (only the stuck-charge job can move it while a charge runs), a success is still recorded:
    /// it pays the order if the order can still be paid, and is given back otherwise.
    pub(crate) fn settle(
        &self,
        record: Order,
        attempt: Option<&str>,
        end: ChargeEnd,
        decline: Option<DeclineCode>,
    ) -> Result<Order, OrderError> {
        let Ok(ended) = record.state.end_charge(end, self.max_failed_attempts) else {
            return self.landed(record, attempt, end);
        };
        let (outcome, events): (_, &[EventType]) = match end {
            ChargeEnd::Succeeded => (AttemptOutcome::Succeeded, &[EventType::OrderCompleted]),
            _ if ended.order == OrderStatus::Cancelled => {
                (AttemptOutcome::Failed, &[EventType::PaymentFailed, EventType::OrderCancelled])
            }
            _ => (AttemptOutcome::Failed, &[EventType::PaymentFailed]),
        };
        let change = attempt.map(|id| AttemptChange::End { id, outcome, decline_code: decline });
        match self.apply(&record, ended, change, events)? {
            Some(settled) => Ok(settled),
            None => {
                let current = self.reload(&record)?;
                self.landed(current, attempt, end)
            }
        }
    }

    /// A charge's end that found its checkout moved on. Only a success needs anything: it is
    /// recorded already (the stuck-charge job asked the provider), or it pays the checkout if that
    /// is still open and unpaid, or it is given back.
    pub(crate) fn landed(&self, mut record: Order, attempt: Option<&str>, end: ChargeEnd) -> Result<Order, OrderError> {
        let Some(id) = attempt.filter(|_| end == ChargeEnd::Succeeded) else {
            return Ok(record);
        };
        for _ in 0..ROUNDS {
            let ours = record.last_attempt.as_ref().filter(|a| a.id == id).map(|a| a.outcome);
            if matches!(
                ours,
                Some(AttemptOutcome::Succeeded | AttemptOutcome::RefundPending | AttemptOutcome::Refunded)
            ) {
                return Ok(record);
            }
            let paid = if ours == Some(AttemptOutcome::Processing) {
                record.state.end_charge(end, self.max_failed_attempts).ok()
            } else {
                record.state.charge_landed()
            };
            let change = |outcome| Some(AttemptChange::End { id, outcome, decline_code: None });
            let applied = match paid {
                Some(paid) => {
                    self.apply(&record, paid, change(AttemptOutcome::Succeeded), &[EventType::OrderCompleted])?
                }
                None => match self.apply(&record, record.state, change(AttemptOutcome::RefundPending), &[])? {
                    Some(pending) => return self.give_back(pending, id),
                    None => None,
                },
            };
            match applied {
                Some(settled) => return Ok(settled),
                None => record = self.reload(&record)?,
            }
        }
        Err(OrderError::Conflict)
    }

    /// Refunds a stray charge (`refund_pending`) through the provider and records it. If the
    /// provider cannot answer now, the charge stays `refund_pending` for the next sweep.
    pub(crate) fn give_back(&self, mut record: Order, attempt: &str) -> Result<Order, OrderError> {
        if let Err(error) = self.provider.refund(attempt) {
            log::warn!("refund of charge {attempt} failed, to be retried: {error}");
            return Ok(record);
        }
        for _ in 0..ROUNDS {
            let change = AttemptChange::End { id: attempt, outcome: AttemptOutcome::Refunded, decline_code: None };
            match self.apply(&record, record.state.refunded(), Some(change), &[EventType::PaymentRefunded])? {
                Some(refunded) => return Ok(refunded),
                None => record = self.reload(&record)?,
            }
        }
        Err(OrderError::Conflict)
    }

    /// Ends an open checkout early, once, however many requests race: the first cancel changes it
    /// and writes the event; the others answer the cancelled checkout.
    pub(crate) fn cancel(
        &self,
        mut record: Order,
        reason: CancellationReason,
    ) -> Result<Result<Order, (Order, Refused)>, OrderError> {
        for _ in 0..ROUNDS {
            if !record.merchant_active {
                return Ok(Err((self.shown(record), Refused::Unavailable)));
            }
            match record.state.cancel(self.clock.now(), reason) {
                Ok(cancelled) if cancelled == record.state => return Ok(Ok(record)),
                Ok(cancelled) => match self.apply(&record, cancelled, None, &[EventType::OrderCancelled])? {
                    Some(changed) => return Ok(Ok(changed)),
                    None => record = self.reload(&record)?,
                },
                Err(refused) => return Ok(Err((self.shown(record), refused))),
            }
        }
        Err(OrderError::Conflict)
    }

    /// A merchant's order, as of now; another merchant's or mode's order is not found.
    pub fn order(&self, caller: &Caller, order_id: OrderId) -> Result<Order, OrderError> {
        let record = self.store.find_order(caller.merchant_id, caller.livemode, order_id)?;
        record.map(|r| self.shown(r)).ok_or(OrderError::NotFound)
    }

    /// The merchant ends an open session early. Idempotent: cancelling a cancelled order answers
    /// it. Refused while a charge is being answered (that charge decides).
    pub fn cancel_order(
        &self,
        caller: &Caller,
        order_id: OrderId,
    ) -> Result<Result<Order, (Order, Refused)>, OrderError> {
        let record = self.store.find_order(caller.merchant_id, caller.livemode, order_id)?;
        self.cancel(record.ok_or(OrderError::NotFound)?, CancellationReason::RequestedByMerchant)
    }
}
