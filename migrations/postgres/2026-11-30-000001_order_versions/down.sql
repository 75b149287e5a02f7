DROP INDEX webhook_deliveries_pending;
UPDATE webhook_deliveries SET status = 'failed' WHERE status = 'cancelled';
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_status_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'failed'));

DROP INDEX payment_attempts_refund_pending;
UPDATE payment_attempts SET outcome = 'failed' WHERE outcome = 'processing';
UPDATE payment_attempts SET outcome = 'succeeded' WHERE outcome IN ('refund_pending', 'refunded');
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_outcome_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_outcome_check CHECK (outcome IN ('succeeded', 'failed'));

DROP INDEX payments_processing;
UPDATE payments SET status = 'failed' WHERE status = 'refunded';
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('pending', 'processing', 'succeeded', 'failed'));
ALTER TABLE payments DROP COLUMN failed_attempts;

DROP INDEX orders_one_live_per_claim;
CREATE UNIQUE INDEX orders_one_live_per_claim ON orders (merchant_id, livemode, claim_id) WHERE status IN ('pending', 'paid');
ALTER TABLE orders DROP COLUMN cancellation_reason;
ALTER TABLE orders DROP COLUMN version;
