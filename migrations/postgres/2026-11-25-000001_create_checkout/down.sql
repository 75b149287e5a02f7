DROP TABLE payment_attempts;
DROP TABLE idempotency_keys;
DROP TABLE checkout_sessions;
DROP TABLE payments;
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE api_keys;
DROP TABLE merchants;
