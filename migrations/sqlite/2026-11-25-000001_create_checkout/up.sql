-- The checkout data model. Times are UTC. Amounts are integer minor units.

CREATE TABLE merchants (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  TIMESTAMP NOT NULL
);

-- Secret keys are stored as the SHA-256 of the secret, never the secret.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    livemode     BOOLEAN NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP
);
CREATE INDEX api_keys_by_merchant ON api_keys (merchant_id);

CREATE TABLE orders (
    id               TEXT PRIMARY KEY NOT NULL,
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    livemode         BOOLEAN NOT NULL,
    claim_id         TEXT NOT NULL,
    claim_issuer     TEXT NOT NULL,
    consumer_id      TEXT NOT NULL,
    experience_id    TEXT,
    distribution_id  TEXT,
    currency         TEXT NOT NULL,
    amount_total     BIGINT NOT NULL CHECK (amount_total >= 0),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'cancelled', 'expired')),
    expires_at       TIMESTAMP NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
-- A claim backs at most one order that is open or paid: the database, not the application,
-- enforces it. Only an expired or cancelled order frees its claim for another.
CREATE UNIQUE INDEX orders_one_live_per_claim ON orders (merchant_id, livemode, claim_id) WHERE status IN ('pending', 'paid');
CREATE INDEX orders_by_merchant ON orders (merchant_id, created_at);

CREATE TABLE order_items (
    order_id     TEXT NOT NULL REFERENCES orders (id),
    position     INTEGER NOT NULL,
    sku          TEXT NOT NULL,
    name         TEXT NOT NULL,
    quantity     BIGINT NOT NULL CHECK (quantity > 0),
    unit_amount  BIGINT NOT NULL CHECK (unit_amount >= 0),
    amount       BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (order_id, position)
);

CREATE TABLE payments (
    id           TEXT PRIMARY KEY NOT NULL,
    order_id     TEXT NOT NULL REFERENCES orders (id),
    amount       BIGINT NOT NULL CHECK (amount >= 0),
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed')),
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX payments_by_order ON payments (order_id);

-- The page behind checkoutUrl. Only the hash of its token is stored.
CREATE TABLE checkout_sessions (
    order_id     TEXT PRIMARY KEY NOT NULL REFERENCES orders (id),
    token_hash   TEXT NOT NULL UNIQUE,
    mode         TEXT NOT NULL CHECK (mode IN ('hosted', 'embedded')),
    success_url  TEXT NOT NULL,
    cancel_url   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'complete', 'expired', 'cancelled')),
    expires_at   TIMESTAMP NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);

-- Due sessions, for the sweeper that expires them.
CREATE INDEX checkout_sessions_open_by_expiry ON checkout_sessions (expires_at) WHERE status = 'open';

-- Every charge tried, with what the provider said. Never the card number: brand and last four only.
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
CREATE INDEX payment_attempts_by_payment ON payment_attempts (payment_id, created_at);

-- One record per (merchant, mode, key): the primary key is what makes a checkout happen once.
CREATE TABLE idempotency_keys (
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    livemode         BOOLEAN NOT NULL,
    idempotency_key  TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (merchant_id, livemode, idempotency_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Webhooks. A signing secret is never stored: it is derived from the server's secret, the endpoint
-- id and the secret's version, and shown once.
CREATE TABLE webhook_endpoints (
    id                TEXT PRIMARY KEY NOT NULL,
    merchant_id       TEXT NOT NULL REFERENCES merchants (id),
    livemode          BOOLEAN NOT NULL,
    url               TEXT NOT NULL,
    event_types       TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('enabled', 'disabled', 'removed')),
    disabled_reason   TEXT,
    secret_version    INTEGER NOT NULL,
    previous_until    TIMESTAMP,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_by_merchant ON webhook_endpoints (merchant_id, livemode, status);

-- The outbox: written in the same transaction as the change that causes the event.
CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY NOT NULL,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    livemode     BOOLEAN NOT NULL,
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL
);

-- One row per event and endpoint; ids are time-ordered, so per endpoint they leave in order.
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
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
