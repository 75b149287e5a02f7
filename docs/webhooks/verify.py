"""Verify a Fanfare webhook delivery before trusting it.

Use the raw request body (bytes, exactly as received: parse the JSON only after verifying) and the
endpoint's signing secret (whsec_...). During a secret rotation a delivery carries two signatures;
either one proves it. Deliveries older than five minutes are refused, so a captured one cannot be
replayed later.
"""

import hashlib
import hmac
import time

TOLERANCE_SECONDS = 300


def verify(secret, timestamp, signature_header, body, now=None):
    """True when the delivery is authentic and fresh.

    secret: the endpoint's whsec_... secret (str)
    timestamp: the X-Fanfare-Timestamp header (str, unix seconds)
    signature_header: the X-Fanfare-Signature header (str, "sha256=<hex>[, sha256=<hex>]")
    body: the raw request body (bytes)
    """
    now = time.time() if now is None else now
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - sent) > TOLERANCE_SECONDS:
        return False
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    expected = "sha256=" + mac.hexdigest()
    return any(hmac.compare_digest(expected, s.strip()) for s in signature_header.split(","))
