//! The lifecycle of an order as one state machine over its three records: session `open →
//! complete | expired | cancelled`, payment `pending → processing → succeeded | failed` (a
//! declined payment may be tried again while the session is open; a charge that lands after the
//! order ended is `refunded`), and order `pending → paid | cancelled | expired`.
//!
//! Each transition checks where all three stand, so a paid, cancelled or expired checkout can never
//! be charged, and a charge in flight blocks every other change: cancel and expiry wait for the
//! provider's answer. Storage applies a transition only to the version of the order it was computed
//! from (see [`super::Transition`]), so two racing changes can never both win.

use chrono::{DateTime, Utc};

use super::{CancellationReason, OrderStatus, PaymentStatus, SessionStatus};

/// Where a checkout's three records stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderState {
    /// The order.
    pub order: OrderStatus,
    /// Its payment.
    pub payment: PaymentStatus,
    /// Its page.
    pub session: SessionStatus,
    /// When the session runs out.
    pub expires_at: DateTime<Utc>,
    /// Declined charges so far.
    pub failed_attempts: i32,
    /// Why the order was cancelled, once it was.
    pub cancellation: Option<CancellationReason>,
}

/// A transition that the current state does not allow; says what the state is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Already paid.
    #[error("this checkout is already paid")]
    Paid,
    /// Ended early.
    #[error("this checkout was cancelled")]
    Cancelled,
    /// Ran out.
    #[error("this checkout has expired")]
    Expired,
    /// A charge is being answered right now.
    #[error("a payment for this checkout is in progress")]
    InProgress,
    /// The merchant is suspended: its checkouts take no payment and change nothing until it is
    /// activated again.
    #[error("this checkout is unavailable")]
    Unavailable,
}

/// How a charge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeEnd {
    /// The money moved.
    Succeeded,
    /// The provider declined the card: counts towards the checkout's failed attempts.
    Declined,
    /// The provider never took the charge (it failed, or has no record of it): nothing moved and
    /// nothing counts.
    NotCharged,
}

impl OrderState {
    /// A new order's: pending, its payment pending, its session open until `expires_at`.
    pub fn opened(expires_at: DateTime<Utc>) -> Self {
        Self {
            order: OrderStatus::Pending,
            payment: PaymentStatus::Pending,
            session: SessionStatus::Open,
            expires_at,
            failed_attempts: 0,
            cancellation: None,
        }
    }

    /// The state as the consumer should see it at `now`: an open session past its end is expired,
    /// whether or not the sweeper has written that yet (unless a charge is still being answered).
    pub fn at(self, now: DateTime<Utc>) -> Self {
        if self.session == SessionStatus::Open && now >= self.expires_at && self.payment != PaymentStatus::Processing {
            Self { order: OrderStatus::Expired, session: SessionStatus::Expired, ..self }
        } else {
            self
        }
    }

    /// Why the checkout cannot be paid now, if it cannot: it ended, or a charge is running.
    pub fn refusal(self) -> Option<Refused> {
        self.ended().or((self.payment == PaymentStatus::Processing).then_some(Refused::InProgress))
    }

    fn ended(self) -> Option<Refused> {
        match self.session {
            SessionStatus::Complete => Some(Refused::Paid),
            SessionStatus::Cancelled => Some(Refused::Cancelled),
            SessionStatus::Expired => Some(Refused::Expired),
            SessionStatus::Open => None,
        }
    }

    /// Starts a charge: only on an open, unexpired session with no charge running.
    pub fn begin_charge(self, now: DateTime<Utc>) -> Result<Self, Refused> {
        let current = self.at(now);
        if let Some(refused) = current.ended() {
            return Err(refused);
        }
        if now >= current.expires_at {
            return Err(Refused::Expired);
        }
        match current.payment {
            PaymentStatus::Pending | PaymentStatus::Failed => {
                Ok(Self { payment: PaymentStatus::Processing, ..current })
            }
            PaymentStatus::Processing => Err(Refused::InProgress),
            PaymentStatus::Succeeded | PaymentStatus::Refunded => Err(Refused::Paid),
        }
    }

    /// Ends the running charge. A success pays the order and completes the session, even if the
    /// session's time ran out while the provider answered: the money has moved. The
    /// `max_failed`-th declined card closes the checkout for good (cancelled, so that nobody can
    /// test cards on it).
    pub fn end_charge(self, end: ChargeEnd, max_failed: i32) -> Result<Self, Refused> {
        if self.payment != PaymentStatus::Processing {
            return Err(self.ended().unwrap_or(Refused::InProgress));
        }
        Ok(match end {
            ChargeEnd::Succeeded => Self {
                order: OrderStatus::Paid,
                payment: PaymentStatus::Succeeded,
                session: SessionStatus::Complete,
                ..self
            },
            ChargeEnd::Declined if self.failed_attempts + 1 >= max_failed => Self {
                order: OrderStatus::Cancelled,
                payment: PaymentStatus::Failed,
                session: SessionStatus::Cancelled,
                failed_attempts: self.failed_attempts + 1,
                cancellation: Some(CancellationReason::TooManyFailedAttempts),
                ..self
            },
            ChargeEnd::Declined => {
                Self { payment: PaymentStatus::Failed, failed_attempts: self.failed_attempts + 1, ..self }
            }
            ChargeEnd::NotCharged => Self { payment: PaymentStatus::Failed, ..self },
        })
    }

    /// A successful charge that could not be recorded as the end of a running charge (the checkout
    /// moved on while the provider answered): it pays the checkout if the session is still open and
    /// unpaid; otherwise `None`, and the money must go back.
    pub fn charge_landed(self) -> Option<Self> {
        // A payment that is `processing` belongs to another charge running now: that one decides.
        let unpaid = matches!(self.payment, PaymentStatus::Pending | PaymentStatus::Failed);
        (self.session == SessionStatus::Open && unpaid).then_some(Self {
            order: OrderStatus::Paid,
            payment: PaymentStatus::Succeeded,
            session: SessionStatus::Complete,
            ..self
        })
    }

    /// After a stray charge was given back: the payment of an order that nothing paid says
    /// `refunded`; a paid order stays paid (its own charge stands).
    pub fn refunded(self) -> Self {
        match self.payment {
            PaymentStatus::Succeeded => self,
            _ => Self { payment: PaymentStatus::Refunded, ..self },
        }
    }

    /// Ends an open session early (the merchant or the consumer). Cancelling twice is not an
    /// error; cancelling while a charge is answered is refused (`InProgress`): that charge decides.
    pub fn cancel(self, now: DateTime<Utc>, reason: CancellationReason) -> Result<Self, Refused> {
        let current = self.at(now);
        match current.ended() {
            Some(Refused::Cancelled) => Ok(current),
            Some(refused) => Err(refused),
            None if current.payment == PaymentStatus::Processing => Err(Refused::InProgress),
            None => Ok(Self {
                order: OrderStatus::Cancelled,
                session: SessionStatus::Cancelled,
                cancellation: Some(reason),
                ..current
            }),
        }
    }

    /// Marks a session past its end as expired (the sweeper, or a new order for the same claim).
    /// Never while a charge is being answered.
    pub fn expire(self, now: DateTime<Utc>) -> Result<Self, Refused> {
        let current = self.at(now);
        match current.session {
            SessionStatus::Expired => Ok(current),
            _ => Err(current.ended().unwrap_or(Refused::InProgress)),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    const MAX: i32 = 5;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
    }

    fn open() -> OrderState {
        OrderState {
            order: OrderStatus::Pending,
            payment: PaymentStatus::Pending,
            session: SessionStatus::Open,
            expires_at: now() + Duration::minutes(30),
            failed_attempts: 0,
            cancellation: None,
        }
    }

    fn statuses(c: OrderState) -> (OrderStatus, PaymentStatus, SessionStatus) {
        (c.order, c.payment, c.session)
    }

    #[test]
    fn a_successful_charge_pays_the_order_and_completes_the_session() {
        let paid = open().begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::Succeeded, MAX)).unwrap();
        assert_eq!(statuses(paid), (OrderStatus::Paid, PaymentStatus::Succeeded, SessionStatus::Complete));
        assert_eq!(paid.begin_charge(now()), Err(Refused::Paid));
        assert_eq!(paid.cancel(now(), CancellationReason::RequestedByMerchant), Err(Refused::Paid));
    }

    #[test]
    fn a_declined_charge_may_be_retried_while_the_session_is_open() {
        let declined = open().begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::Declined, MAX)).unwrap();
        assert_eq!(
            (declined.order, declined.payment, declined.failed_attempts),
            (OrderStatus::Pending, PaymentStatus::Failed, 1)
        );
        let retried = declined.begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::Succeeded, MAX)).unwrap();
        assert_eq!(retried.order, OrderStatus::Paid);
    }

    #[test]
    fn the_last_allowed_decline_closes_the_checkout_for_good() {
        let mut state = open();
        for _ in 0..MAX - 1 {
            state = state.begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::Declined, MAX)).unwrap();
            assert_eq!(state.session, SessionStatus::Open);
        }
        let closed = state.begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::Declined, MAX)).unwrap();
        assert_eq!(statuses(closed), (OrderStatus::Cancelled, PaymentStatus::Failed, SessionStatus::Cancelled));
        assert_eq!(closed.cancellation, Some(CancellationReason::TooManyFailedAttempts));
        assert_eq!(closed.failed_attempts, MAX);
        assert_eq!(closed.begin_charge(now()), Err(Refused::Cancelled));
    }

    #[test]
    fn a_charge_the_provider_never_took_does_not_count_as_a_decline() {
        let failed = open().begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::NotCharged, 1)).unwrap();
        assert_eq!(
            (failed.session, failed.payment, failed.failed_attempts),
            (SessionStatus::Open, PaymentStatus::Failed, 0)
        );
    }

    #[test]
    fn a_running_charge_blocks_every_other_change() {
        let charging = open().begin_charge(now()).unwrap();
        assert_eq!(charging.begin_charge(now()), Err(Refused::InProgress));
        assert_eq!(charging.cancel(now(), CancellationReason::Abandoned), Err(Refused::InProgress));
        let later = now() + Duration::hours(1);
        assert_eq!(charging.expire(later), Err(Refused::InProgress), "a charge in flight outlives the session");
        assert_eq!(open().end_charge(ChargeEnd::Succeeded, MAX), Err(Refused::InProgress));
    }

    #[test]
    fn an_expired_session_cannot_be_charged_or_cancelled() {
        let later = now() + Duration::minutes(31);
        assert_eq!(open().begin_charge(later), Err(Refused::Expired));
        assert_eq!(open().cancel(later, CancellationReason::Abandoned), Err(Refused::Expired));
        let expired = open().expire(later).unwrap();
        assert_eq!((expired.order, expired.session), (OrderStatus::Expired, SessionStatus::Expired));
        assert_eq!(open().expire(now()), Err(Refused::InProgress));
    }

    #[test]
    fn a_charge_answered_after_the_end_still_counts() {
        let charging = open().begin_charge(now()).unwrap();
        assert_eq!(charging.at(now() + Duration::hours(1)).payment, PaymentStatus::Processing);
        let paid = charging.end_charge(ChargeEnd::Succeeded, MAX).unwrap();
        assert_eq!(paid.order, OrderStatus::Paid);
    }

    #[test]
    fn a_charge_that_lands_late_pays_an_open_checkout_and_is_given_back_otherwise() {
        let failed = open().begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::NotCharged, MAX)).unwrap();
        assert_eq!(
            failed.charge_landed().map(statuses),
            Some((OrderStatus::Paid, PaymentStatus::Succeeded, SessionStatus::Complete))
        );
        let cancelled = failed.cancel(now(), CancellationReason::RequestedByMerchant).unwrap();
        assert_eq!(cancelled.charge_landed(), None);
        assert_eq!(cancelled.refunded().payment, PaymentStatus::Refunded);
        let paid = open().begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::Succeeded, MAX)).unwrap();
        assert_eq!(paid.charge_landed(), None, "a second charge never pays an order twice");
        assert_eq!(paid.refunded(), paid, "the order's own charge stands");
    }

    #[test]
    fn cancelling_is_idempotent_and_final_and_keeps_the_first_reason() {
        let cancelled = open().cancel(now(), CancellationReason::RequestedByMerchant).unwrap();
        assert_eq!((cancelled.order, cancelled.session), (OrderStatus::Cancelled, SessionStatus::Cancelled));
        assert_eq!(cancelled.cancel(now(), CancellationReason::Abandoned), Ok(cancelled));
        assert_eq!(cancelled.cancellation, Some(CancellationReason::RequestedByMerchant));
        assert_eq!(cancelled.begin_charge(now()), Err(Refused::Cancelled));
    }
}
