//! Test or live: every key, order, idempotency record and webhook belongs to one mode.

use serde::Serialize;

/// Test or live: keys, orders and idempotency records of one never see the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Livemode {
    /// Sandbox data, made with `sk_test_…` keys.
    Test,
    /// Real money, made with `sk_live_…` keys.
    Live,
}

impl Livemode {
    /// `true` for live mode, as stored.
    pub fn is_live(self) -> bool {
        self == Livemode::Live
    }

    /// From the stored flag.
    pub fn from_live(live: bool) -> Self {
        if live {
            Livemode::Live
        } else {
            Livemode::Test
        }
    }
}
