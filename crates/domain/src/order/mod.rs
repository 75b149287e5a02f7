//! The order: its lines, payment and checkout session, the statuses they move through, the state
//! machine that moves them ([`OrderState`]), and the record every change applies to ([`Order`]).

mod record;
mod state;

use serde::{Deserialize, Serialize};

pub use crate::claim::LineItem;
pub use record::{Attempt, AttemptChange, Order, Transition};
pub use state::{ChargeEnd, OrderState, Refused};

macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The stored (and wire) text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// From the stored text.
            pub fn from_stored(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

stored_enum!(
    /// Where an order stands.
    OrderStatus {
        /// Awaiting payment; holds its claim.
        Pending => "pending",
        /// Paid.
        Paid => "paid",
        /// Ended early by the merchant or the consumer.
        Cancelled => "cancelled",
        /// Its session ran out before payment.
        Expired => "expired",
    }
);

stored_enum!(
    /// Where a payment stands.
    PaymentStatus {
        /// Created with the order, awaiting the consumer.
        Pending => "pending",
        /// A charge is with the provider; no second one starts until it is answered.
        Processing => "processing",
        /// Captured.
        Succeeded => "succeeded",
        /// Declined or errored.
        Failed => "failed",
        /// A charge landed after the order ended (cancelled or expired) and was given back.
        Refunded => "refunded",
    }
);

stored_enum!(
    /// Why an order was cancelled.
    CancellationReason {
        /// The merchant cancelled it through the API.
        RequestedByMerchant => "requested_by_merchant",
        /// The consumer left the checkout page with its cancel link.
        Abandoned => "abandoned",
        /// Too many cards were declined: the checkout closed to stop card testing.
        TooManyFailedAttempts => "too_many_failed_attempts",
    }
);

stored_enum!(
    /// Where one charge attempt stands.
    AttemptOutcome {
        /// With the provider now; recorded before the provider is asked, so a charge whose process
        /// dies can still be looked up.
        Processing => "processing",
        /// The money moved and pays the order.
        Succeeded => "succeeded",
        /// Declined, or the provider could not take it: nothing was charged.
        Failed => "failed",
        /// The money moved after the order ended (or another charge paid it): it must go back.
        RefundPending => "refund_pending",
        /// Moved and given back.
        Refunded => "refunded",
    }
);

stored_enum!(
    /// Where a checkout session (the page behind `checkoutUrl`) stands.
    SessionStatus {
        /// Payable until it expires.
        Open => "open",
        /// Paid.
        Complete => "complete",
        /// Ran out.
        Expired => "expired",
        /// Ended early.
        Cancelled => "cancelled",
    }
);

stored_enum!(
    /// How the checkout page is shown.
    Mode {
        /// A full page the consumer is sent to.
        Hosted => "hosted",
        /// A page made to sit in the merchant's iframe.
        Embedded => "embedded",
    }
);

impl Mode {
    /// Where this mode's checkout page is served: `/c` (hosted) or `/embed` (embedded). A page's
    /// path is this, `/`, then its token; the routes, the page's own links and `checkoutUrl` all
    /// take it from here.
    pub fn page_path(self) -> &'static str {
        match self {
            Mode::Hosted => "/c",
            Mode::Embedded => "/embed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_stored_text() {
        for status in [OrderStatus::Pending, OrderStatus::Paid, OrderStatus::Cancelled, OrderStatus::Expired] {
            assert_eq!(OrderStatus::from_stored(status.as_str()), Some(status));
        }
        assert_eq!(Mode::from_stored("embedded"), Some(Mode::Embedded));
        assert_eq!(Mode::from_stored("popup"), None);
    }
}
