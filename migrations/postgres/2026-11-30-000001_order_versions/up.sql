-- Money under concurrency. Every change of a checkout moves its order's version, and applies only to
-- the version it was computed from, so two racing changes (a charge and a cancel, two sweepers) can
-- never both win. Charges are recorded before the provider is asked, so one whose answer is lost
-- can be looked up; one that lands after its order ended is refunded.

ALTER TABLE orders ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN cancellation_reason TEXT
    CHECK (cancellation_reason IN ('requested_by_merchant', 'abandoned', 'too_many_failed_attempts'));

-- A claim backs at most one open or paid order across test and live mode.
DROP INDEX orders_one_live_per_claim;
CREATE UNIQUE INDEX orders_one_live_per_claim ON orders (merchant_id, claim_id) WHERE status IN ('pending', 'paid');

ALTER TABLE payments ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('pending', 'processing', 'succeeded', 'failed', 'refunded'));
-- Charges whose answer is overdue, for the job that asks the provider.
CREATE INDEX payments_processing ON payments (updated_at) WHERE status = 'processing';

ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_outcome_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_outcome_check
    CHECK (outcome IN ('processing', 'succeeded', 'failed', 'refund_pending', 'refunded'));
-- Stray charges waiting to be given back.
CREATE INDEX payment_attempts_refund_pending ON payment_attempts (created_at) WHERE outcome = 'refund_pending';

-- A delivery to an endpoint that was removed or disabled ends as cancelled.
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_status_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled'));
-- Each endpoint's pending deliveries in order: the dispatcher's head-of-line lookups.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, event_id) WHERE status = 'pending';
