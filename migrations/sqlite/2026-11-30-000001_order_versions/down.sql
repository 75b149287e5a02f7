PRAGMA defer_foreign_keys = ON;

UPDATE webhook_deliveries SET status = 'failed' WHERE status = 'cancelled';
CREATE TABLE webhook_deliveries_after AS SELECT * FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
CREATE TABLE webhook_deliveries (
    event_id         TEXT NOT NULL REFERENCES webhook_events (id),
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  TIMESTAMP NOT NULL,
    leased_until     TIMESTAMP,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (endpoint_id, event_id)
);
INSERT INTO webhook_deliveries SELECT * FROM webhook_deliveries_after;
DROP TABLE webhook_deliveries_after;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

UPDATE payment_attempts SET outcome = 'failed' WHERE outcome = 'processing';
UPDATE payment_attempts SET outcome = 'succeeded' WHERE outcome IN ('refund_pending', 'refunded');
CREATE TABLE payment_attempts_after AS SELECT * FROM payment_attempts;
DROP TABLE payment_attempts;
CREATE TABLE payment_attempts (
    id            TEXT PRIMARY KEY NOT NULL,
    payment_id    TEXT NOT NULL REFERENCES payments (id),
    provider      TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    decline_code  TEXT,
    card_brand    TEXT NOT NULL,
    card_last4    TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL
);
INSERT INTO payment_attempts SELECT * FROM payment_attempts_after;
DROP TABLE payment_attempts_after;
CREATE INDEX payment_attempts_by_payment ON payment_attempts (payment_id, created_at);

UPDATE payments SET status = 'failed' WHERE status = 'refunded';
CREATE TABLE payments_after AS SELECT * FROM payments;
DROP TABLE payments;
CREATE TABLE payments (
    id           TEXT PRIMARY KEY NOT NULL,
    order_id     TEXT NOT NULL REFERENCES orders (id),
    amount       BIGINT NOT NULL CHECK (amount >= 0),
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed')),
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
INSERT INTO payments SELECT id, order_id, amount, currency, status, created_at, updated_at FROM payments_after;
DROP TABLE payments_after;
CREATE INDEX payments_by_order ON payments (order_id);

DROP INDEX orders_one_live_per_claim;
CREATE UNIQUE INDEX orders_one_live_per_claim ON orders (merchant_id, livemode, claim_id) WHERE status IN ('pending', 'paid');
ALTER TABLE orders DROP COLUMN cancellation_reason;
ALTER TABLE orders DROP COLUMN version;
