// The seed's POST /checkout schema written with Valibot, run over a generated corpus of bodies.
//
// Prints one JSON document on stdout: for each body (base64 of the bytes sent), the issues of
//   - `seed`: Valibot itself, as the original service validated;
//   - `documented`: the same schema with the deliberate exceptions of docs/input-rules.md written
//     as Valibot actions (`expected` always a string; return URLs http(s) with a valid host and at
//     most 2,048 long; no control characters or lone surrogates in idempotencyKey),
// and which exceptions the body touches. Each issue field is given as its JSON.stringify text, so
// the Rust side compares exactly what JavaScript would have sent. `documented` must equal `seed`
// for every body that touches no exception: the script exits non-zero otherwise.
//
// The Rust test (crates/server/tests/api/valibot.rs) posts every body to the service and compares.
import * as v from "valibot";

// Node 20 and 22's `URL.canParse` (which Valibot's `url` calls) turns wrong once it is hot: after a
// few thousand calls it answers `false` for hosts with non-ASCII letters (`https://bücher.example/`)
// that `new URL` parses (fixed in Node 24). The reference is the URL standard, so ask `new URL`.
URL.canParse = (input, base) => {
  try {
    new URL(input, base);
    return true;
  } catch {
    return false;
  }
};

// ---- the schemas ---------------------------------------------------------------------------

const seed = v.object({
  checkoutClaim: v.string(),
  mode: v.picklist(["hosted", "embedded"]),
  successUrl: v.pipe(v.string(), v.url()),
  cancelUrl: v.pipe(v.string(), v.url()),
  idempotencyKey: v.pipe(v.string(), v.minLength(1), v.maxLength(255)),
});

const URL_EXPECTED = "http(s) URL";
const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const HOST = new RegExp(`^${LABEL}(\\.${LABEL})*$`);

/// A URL `new URL` parses that is http(s) with a host that is a DNS name (labels not starting or
/// ending with a hyphen) or an IP address, with no user name or password and not port 0.
function isWebUrl(input) {
  const url = new URL(input);
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  if (url.username !== "" || url.password !== "" || url.port === "0") return false;
  const host = url.hostname;
  return host.startsWith("[") || (host.length <= 253 && HOST.test(host));
}

/// The length rule counted once more on the URL as the parser writes it (percent-encoded), when
/// nothing else was wrong: what redirects carry.
function encodedMaxLength(max) {
  return {
    kind: "validation",
    type: "max_length",
    reference: encodedMaxLength,
    async: false,
    expects: `<=${max}`,
    requirement: max,
    "~run"(dataset, config) {
      if (dataset.typed && !dataset.issues && URL.canParse(dataset.value)) {
        const length = new URL(dataset.value).href.length;
        if (length > max) v._addIssue(this, "length", dataset, config, { received: `${length}` });
      }
      return dataset;
    },
  };
}

/// The tightening of return URLs, as a Valibot action: only URLs that `url()` accepts are judged.
function webUrl() {
  return {
    kind: "validation",
    type: "url",
    reference: webUrl,
    async: false,
    expects: URL_EXPECTED,
    requirement: (input) => !URL.canParse(input) || isWebUrl(input),
    "~run"(dataset, config) {
      if (dataset.typed && !this.requirement(dataset.value)) v._addIssue(this, "URL", dataset, config);
      return dataset;
    },
  };
}

const KEY_CHARACTERS = /^[^\u0000-\u001F\uD800-\uDFFF]*$/u;
const returnUrl = v.pipe(v.string(), v.url(), webUrl(), v.maxLength(2048), encodedMaxLength(2048));
const documented = v.object({
  checkoutClaim: v.string(),
  mode: v.picklist(["hosted", "embedded"]),
  successUrl: returnUrl,
  cancelUrl: returnUrl,
  idempotencyKey: v.pipe(v.string(), v.minLength(1), v.maxLength(255), v.regex(KEY_CHARACTERS)),
});

/// Which deliberate exceptions a parsed body touches.
function exceptions(body) {
  const found = [];
  if (!body || typeof body !== "object") return found;
  for (const key of ["successUrl", "cancelUrl"]) {
    const value = body[key];
    if (typeof value !== "string") continue;
    if (URL.canParse(value) && !isWebUrl(value)) found.push(`${key}: not an http(s) URL with a valid host`);
    if (value.length > 2048) found.push(`${key}: longer than 2048`);
    if (URL.canParse(value) && new URL(value).href.length > 2048) found.push(`${key}: longer than 2048 once encoded`);
  }
  const key = body.idempotencyKey;
  if (typeof key === "string" && !KEY_CHARACTERS.test(key)) found.push("idempotencyKey: control character or lone surrogate");
  return found;
}

/// An issue as the service writes it: these fields, each as JSON text; a missing `path` (an issue
/// about the whole body) is written `[]`, and a `url` issue's `expected` is a string.
function project(issue) {
  const fields = { kind: issue.kind, type: issue.type };
  if (issue.input !== undefined) fields.input = issue.input;
  fields.expected = issue.expected ?? (issue.type === "url" ? URL_EXPECTED : null);
  fields.received = issue.received;
  fields.message = issue.message;
  fields.path = issue.path ?? [];
  return Object.fromEntries(Object.entries(fields).map(([k, value]) => [k, JSON.stringify(value)]));
}

function issuesOf(schema, body) {
  const result = v.safeParse(schema, body);
  return result.success ? null : result.issues.map(project);
}

// ---- the corpus ----------------------------------------------------------------------------

// A small deterministic generator (mulberry32), so every run sends the same corpus.
let state = 0x5eed;
function random() {
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];
const str = (text) => JSON.stringify(text);
const nestedArrays = (depth) => "[".repeat(depth) + "]".repeat(depth);
const nestedObjects = (depth) => '{"a":'.repeat(depth) + "1" + "}".repeat(depth);

// JSON texts of values that are not strings: numbers JavaScript prints its own way, and shapes.
const notStrings = [
  "42", "-0", "0", "0.0", "1e-6", "1E-7", "0.000001", "1.5e-7", "9007199254740993", "-9007199254740993",
  "1e400", "-1e400", "1e21", "1e20", "123456789012345678901234", "0.1", "5e-324", "-5.5e-300",
  "1.7976931348623157e308", "2.5e+25", "100", "-1", "true", "false", "null", "[]", '[1,"a",null]', "{}",
  '{"a":{"b":[1,2.50]}}', nestedArrays(200), nestedArrays(999), nestedObjects(300),
];

// JSON texts of odd strings, written with escapes where JavaScript needs them.
const oddStrings = [
  '""', '"a"', '" "', '"\\u0000"', '"a\\u0000b"', '"\\u001f"', '"\\t"', '"\\n"', '"\\u007f"', '"\\u0085"',
  '"\\ud800"', '"\\udc00x"', '"x\\ud83d"', '"\\ud83d\\ude00"', '"😀"', '"é"', '"e\\u0301"', '"\\u2028"',
  '"\\u202e\\u2066evil"', '"\\ufeff"', '"\\"quoted\\""', '"back\\\\slash"', '"<script>"', '"ünïcödé"',
  '"中文"', '"\\u200b"',
];

const urls = [
  "abc", "", "https://shop.example/ok", "http://shop.example", "HTTPS://SHOP.EXAMPLE", "ftp://files.example/x",
  "javascript:alert(1)", "mailto:a@b.example", "data:text/html,hi", "https://x.example;script-src-elem",
  "https://x.example;frame-ancestors *", "https://x_y.example/", "https://bücher.example/", "https://[::1]:8443/",
  "http://127.0.0.1:4000/", "https://a b.example", " https://shop.example/ ", "https://shop.example/\u0000",
  "https://sh\u0000op.example", "https:///nohost", "https://", "//shop.example", "/relative", "https://shop.example:99999",
  "https://shop.example:443/x", "https://user:pw@shop.example/", "https://shop.example/{ORDER_ID}",
  "https://%41.example", "https://xn--bcher-kva.example/", "http://0x7f.1/", "https://shop.example./",
  "https://-a.example/", "https://a..b/", "https://*.example/", "https://ex%2Fample/", "https://0/",
  "https://999.999.999.999/", "https://[::g]/", "https://shop.example#frag", "https://shop.example/?q=\"'<>",
  "https://shop.example/\u202eevil", "http://localhost:3000/return", "https://shop.example/😀",
  "https://shop.example/" + "a".repeat(2027), "https://shop.example/" + "a".repeat(2028),
  "https://shop.example/" + "😀".repeat(1013), "https://shop.example/" + "😀".repeat(1014),
  "https://ex\tample.com/", "https://shop.example\\path", "https:shop.example", "HTTP://[0:0::1]",
  "https://xn--.example/", "https://a.example:0/", "https://" + "a".repeat(64) + ".example/",
].map(str).concat(['"https://shop.example/\\ud800"', '"https://\\ud800.example/"', '"https://shop.example/\\u0000x"']);

const modes = ["hosted", "embedded", "popup", "Hosted", "hosted ", "", "embedded\u0000"].map(str);
const keys = [
  "", "k", "k-1", "k".repeat(255), "k".repeat(256), "k".repeat(1000), "😀".repeat(127), "😀".repeat(128),
  "é".repeat(255), "e\u0301".repeat(128), "tab\tkey", "a\u0000b", "\u001f", "\u007f", "\u0085", "\u202ertl",
].map(str).concat(['"\\ud800"', '"k\\udfff"']);
const claims = ["eyJ.a.b", "", "not-a-jws", "x"].map(str).concat(['"\\u0000"', '"\\ud800"']);

const valid = {
  checkoutClaim: str("eyJhbGciOiJFZERTQSJ9.e30.c2ln"),
  mode: str("hosted"),
  successUrl: str("https://shop.example/ok"),
  cancelUrl: str("https://shop.example/cancel"),
  idempotencyKey: str("key-1"),
};
const pools = {
  checkoutClaim: claims,
  mode: modes,
  successUrl: urls,
  cancelUrl: urls,
  idempotencyKey: keys,
};
const extras = ['"extra":1', '"1":"one"', '"0":[]', '"__proto__":{"mode":"hosted"}', '"nested":' + nestedArrays(50), '"":null'];

function objectText(fields) {
  return "{" + fields.map(([k, value]) => `${str(k)}:${value}`).join(",") + "}";
}

function generated() {
  const fields = [];
  for (const key of Object.keys(valid)) {
    const roll = random();
    if (roll < 0.1) continue;
    const pool = roll < 0.3 ? [valid[key]] : roll < 0.85 ? pools[key] : notStrings.concat(oddStrings);
    fields.push([key, pick(pool)]);
  }
  if (random() < 0.3) fields.sort(() => random() - 0.5);
  let text = objectText(fields);
  if (random() < 0.25) text = text.slice(0, -1) + (fields.length ? "," : "") + pick(extras) + "}";
  if (random() < 0.1) text = " \n\t" + text.replace(/,/g, " ,\r\n ") + " ";
  return text;
}

const texts = [];
// Every odd value of each field in an otherwise valid body, then bodies that are not objects, then
// random mixtures.
for (const [key, pool] of Object.entries(pools)) {
  for (const value of pool.concat(notStrings)) {
    texts.push(objectText(Object.entries(valid).map(([k, ok]) => [k, k === key ? value : ok])));
  }
  texts.push(objectText(Object.entries(valid).filter(([k]) => k !== key)));
}
texts.push(
  ...notStrings, ...oddStrings, "[1,2]", '[{"mode":"hosted"}]', '{"mode":"popup","mode":"hosted"}',
  '{"1":1,"mode":"popup","0":2}', '{"idempotencyKey":"a","idempotencyKey":5}', nestedArrays(1000),
  objectText(Object.entries(valid)).replace('"mode":"hosted"', '"mode":"hosted","mode":"popup"'),
);
for (let i = 0; i < 250; i++) texts.push(generated());

const bodies = texts.map((text) => Buffer.from(text, "utf8"));
// Byte-level oddities: a byte-order mark, and bytes that are not UTF-8 (read as U+FFFD).
bodies.push(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"mode":"popup"}')]));
bodies.push(Buffer.concat([Buffer.from('{"mode":"po'), Buffer.from([0xff, 0xc3]), Buffer.from('pup","idempotencyKey":"k\xff"}', "latin1")]));

// ---- the run -------------------------------------------------------------------------------

const decoder = new TextDecoder("utf-8");
const results = [];
const broken = [];
for (const bytes of bodies) {
  const body = JSON.parse(decoder.decode(bytes));
  const valibot = issuesOf(seed, body);
  const ours = issuesOf(documented, body);
  const touched = exceptions(body);
  if (touched.length === 0 && JSON.stringify(valibot) !== JSON.stringify(ours)) broken.push(bytes.toString("utf8"));
  results.push({ body: bytes.toString("base64"), valibot, documented: ours, exceptions: touched });
}
if (broken.length) {
  console.error("the documented schema differs from Valibot's outside its exceptions:\n" + broken.join("\n"));
  process.exit(1);
}
process.stdout.write(JSON.stringify({ valibot: "1.5.0", results }));
