//! The lifecycle of a checkout as one state machine over its three records:
//! session `open → complete | expired | cancelled`, payment `pending → processing → succeeded |
//! failed` (a declined payment may be tried again while the session is open), and order
//! `pending → paid | cancelled | expired`. Each transition checks where all three stand, so a paid,
//! cancelled or expired checkout can never be charged, and only one charge runs at a time.

use chrono::{DateTime, Utc};

use crate::order::{OrderStatus, PaymentStatus, SessionStatus};

/// Where a checkout's three records stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkout {
    /// The order.
    pub order: OrderStatus,
    /// Its payment.
    pub payment: PaymentStatus,
    /// Its page.
    pub session: SessionStatus,
    /// When the session runs out.
    pub expires_at: DateTime<Utc>,
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
    #[error("a payment for this checkout is already in progress")]
    InProgress,
}

/// How a charge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeEnd {
    /// The money moved.
    Succeeded,
    /// The provider said no; the consumer may try again.
    Failed,
}

impl Checkout {
    /// The state as the consumer should see it at `now`: an open session past its end is expired,
    /// whether or not the sweeper has written that yet.
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
            PaymentStatus::Succeeded => Err(Refused::Paid),
        }
    }

    /// Ends the running charge. A success pays the order and completes the session, even if the
    /// session's time ran out while the provider answered: the money has moved.
    pub fn end_charge(self, end: ChargeEnd) -> Result<Self, Refused> {
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
            ChargeEnd::Failed => Self { payment: PaymentStatus::Failed, ..self },
        })
    }

    /// Ends an open session early (the merchant or the consumer). Cancelling twice is not an error.
    pub fn cancel(self, now: DateTime<Utc>) -> Result<Self, Refused> {
        let current = self.at(now);
        match current.ended() {
            Some(Refused::Cancelled) => Ok(current),
            Some(refused) => Err(refused),
            None if current.payment == PaymentStatus::Processing => Err(Refused::InProgress),
            None => Ok(Self { order: OrderStatus::Cancelled, session: SessionStatus::Cancelled, ..current }),
        }
    }

    /// Marks a session past its end as expired (the sweeper).
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

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
    }

    fn open() -> Checkout {
        Checkout {
            order: OrderStatus::Pending,
            payment: PaymentStatus::Pending,
            session: SessionStatus::Open,
            expires_at: now() + Duration::minutes(30),
        }
    }

    #[test]
    fn a_successful_charge_pays_the_order_and_completes_the_session() {
        let paid = open().begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::Succeeded)).unwrap();
        assert_eq!(
            (paid.order, paid.payment, paid.session),
            (OrderStatus::Paid, PaymentStatus::Succeeded, SessionStatus::Complete)
        );
        assert_eq!(paid.begin_charge(now()), Err(Refused::Paid));
        assert_eq!(paid.cancel(now()), Err(Refused::Paid));
    }

    #[test]
    fn a_declined_charge_may_be_retried_while_the_session_is_open() {
        let declined = open().begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::Failed)).unwrap();
        assert_eq!((declined.order, declined.payment), (OrderStatus::Pending, PaymentStatus::Failed));
        let retried = declined.begin_charge(now()).and_then(|c| c.end_charge(ChargeEnd::Succeeded)).unwrap();
        assert_eq!(retried.order, OrderStatus::Paid);
    }

    #[test]
    fn only_one_charge_runs_at_a_time() {
        let charging = open().begin_charge(now()).unwrap();
        assert_eq!(charging.begin_charge(now()), Err(Refused::InProgress));
        assert_eq!(charging.cancel(now()), Err(Refused::InProgress));
        assert_eq!(open().end_charge(ChargeEnd::Succeeded), Err(Refused::InProgress));
    }

    #[test]
    fn an_expired_session_cannot_be_charged_or_cancelled() {
        let later = now() + Duration::minutes(31);
        assert_eq!(open().begin_charge(later), Err(Refused::Expired));
        assert_eq!(open().cancel(later), Err(Refused::Expired));
        let expired = open().expire(later).unwrap();
        assert_eq!((expired.order, expired.session), (OrderStatus::Expired, SessionStatus::Expired));
        assert_eq!(open().expire(now()), Err(Refused::InProgress));
    }

    #[test]
    fn a_charge_answered_after_the_end_still_counts() {
        let charging = open().begin_charge(now()).unwrap();
        assert_eq!(charging.at(now() + Duration::hours(1)).payment, PaymentStatus::Processing);
        let paid = charging.end_charge(ChargeEnd::Succeeded).unwrap();
        assert_eq!(paid.order, OrderStatus::Paid);
    }

    #[test]
    fn cancelling_is_idempotent_and_final() {
        let cancelled = open().cancel(now()).unwrap();
        assert_eq!((cancelled.order, cancelled.session), (OrderStatus::Cancelled, SessionStatus::Cancelled));
        assert_eq!(cancelled.cancel(now()), Ok(cancelled));
        assert_eq!(cancelled.begin_charge(now()), Err(Refused::Cancelled));
    }
}
