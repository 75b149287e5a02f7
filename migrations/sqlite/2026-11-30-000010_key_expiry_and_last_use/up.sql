-- A rolled key keeps working until expires_at; last_used_at is written in batches by each replica
-- (never on a request's own path), so it may lag by up to one sweep interval.
ALTER TABLE api_keys ADD COLUMN expires_at TIMESTAMP;
ALTER TABLE api_keys ADD COLUMN last_used_at TIMESTAMP;
