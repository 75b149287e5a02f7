-- Money under concurrency. Every change of a checkout moves its order's version, and applies only to
-- the version it was computed from, so two racing changes (a charge and a cancel, two sweepers) can
-- never both win. Charges are recorded before the provider is asked, so one whose answer is lost
-- can be looked up; one that lands after its order ended is refunded.
--
-- SQLite cannot change a CHECK constraint in place: the three tables whose statuses grow are
-- rebuilt. Foreign keys are checked at commit, once every row is back in its new table.
PRAGMA defer_foreign_keys = ON;

ALTER TABLE orders ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN cancellation_reason TEXT
    CHECK (cancellation_reason IN ('requested_by_merchant', 'abandoned', 'too_many_failed_attempts'));

-- A claim backs at most one open or paid order across test and live mode.
DROP INDEX orders_one_live_per_claim;
CREATE UNIQUE INDEX orders_one_live_per_claim ON orders (merchant_id, claim_id) WHERE status IN ('pending', 'paid');

CREATE TABLE payments_before AS SELECT * FROM payments;
DROP TABLE payments;
CREATE TABLE payments (
    id               TEXT PRIMARY KEY NOT NULL,
    order_id         TEXT NOT NULL REFERENCES orders (id),
    amount           BIGINT NOT NULL CHECK (amount >= 0),
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed', 'refunded')),
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    failed_attempts  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO payments (id, order_id, amount, currency, status, created_at, updated_at)
    SELECT id, order_id, amount, currency, status, created_at, updated_at FROM payments_before;
DROP TABLE payments_before;
CREATE INDEX payments_by_order ON payments (order_id);
-- Charges whose answer is overdue, for the job that asks the provider.
CREATE INDEX payments_processing ON payments (updated_at) WHERE status = 'processing';

CREATE TABLE payment_attempts_before AS SELECT * FROM payment_attempts;
DROP TABLE payment_attempts;
CREATE TABLE payment_attempts (
    id            TEXT PRIMARY KEY NOT NULL,
    payment_id    TEXT NOT NULL REFERENCES payments (id),
    provider      TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('processing', 'succeeded', 'failed', 'refund_pending', 'refunded')),
    decline_code  TEXT,
    card_brand    TEXT NOT NULL,
    card_last4    TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL
);
INSERT INTO payment_attempts SELECT * FROM payment_attempts_before;
DROP TABLE payment_attempts_before;
CREATE INDEX payment_attempts_by_payment ON payment_attempts (payment_id, created_at);
-- Stray charges waiting to be given back.
CREATE INDEX payment_attempts_refund_pending ON payment_attempts (created_at) WHERE outcome = 'refund_pending';

-- A delivery to an endpoint that was removed or disabled ends as cancelled.
CREATE TABLE webhook_deliveries_before AS SELECT * FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
CREATE TABLE webhook_deliveries (
    event_id         TEXT NOT NULL REFERENCES webhook_events (id),
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  TIMESTAMP NOT NULL,
    leased_until     TIMESTAMP,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (endpoint_id, event_id)
);
INSERT INTO webhook_deliveries SELECT * FROM webhook_deliveries_before;
DROP TABLE webhook_deliveries_before;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
-- Each endpoint's pending deliveries in order: the dispatcher's head-of-line lookups.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, event_id) WHERE status = 'pending';
