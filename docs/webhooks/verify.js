// Verify a Fanfare webhook delivery before trusting it (Node.js, no dependencies).
//
// Use the raw request body (a Buffer, exactly as received: parse the JSON only after verifying)
// and the endpoint's signing secret (whsec_...). During a secret rotation a delivery carries two
// signatures; either one proves it. Deliveries older than five minutes are refused, so a captured
// one cannot be replayed later.
//
//   const { verify } = require("./verify");
//   // Express: app.post("/hooks", express.raw({ type: "application/json" }), (req, res) => {
//   //   if (!verify(WHSEC, req.get("X-Fanfare-Timestamp"), req.get("X-Fanfare-Signature"), req.body)) {
//   //     return res.sendStatus(400);
//   //   }
//   //   const event = JSON.parse(req.body); ... res.sendStatus(200);
//   // });
"use strict";

const crypto = require("node:crypto");

const TOLERANCE_SECONDS = 300;

/**
 * True when the delivery is authentic and fresh.
 * @param {string} secret the endpoint's whsec_... secret
 * @param {string} timestamp the X-Fanfare-Timestamp header (unix seconds)
 * @param {string} signatureHeader the X-Fanfare-Signature header ("sha256=<hex>[, sha256=<hex>]")
 * @param {Buffer|string} body the raw request body
 * @param {number} [now] unix seconds (default: the clock)
 */
function verify(secret, timestamp, signatureHeader, body, now) {
  const current = now === undefined ? Date.now() / 1000 : now;
  if (!/^\d+$/.test(String(timestamp)) || Math.abs(current - Number(timestamp)) > TOLERANCE_SECONDS) {
    return false;
  }
  const raw = Buffer.isBuffer(body) ? body : Buffer.from(String(body), "utf8");
  const mac = crypto.createHmac("sha256", secret);
  mac.update(`${timestamp}.`);
  mac.update(raw);
  const expected = Buffer.from(`sha256=${mac.digest("hex")}`);
  return String(signatureHeader || "")
    .split(",")
    .map((s) => Buffer.from(s.trim()))
    .some((given) => given.length === expected.length && crypto.timingSafeEqual(given, expected));
}

module.exports = { verify, TOLERANCE_SECONDS };
