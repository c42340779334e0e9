import { createHmac, timingSafeEqual } from 'node:crypto';
import { SluiceError } from '../../errors.js';

/**
 * Webhook signatures: `X-Sluice-Signature: t=<unix seconds>,v1=<hex>` where
 * hex is HMAC-SHA256(secret, "<t>.<raw body>"). The timestamp is signed with
 * the body so a captured request cannot be replayed outside the tolerance
 * window. During a secret rotation a sender may put several v1 entries in one
 * header; a receiver accepts the request when any of them matches.
 */
export const SIGNATURE_HEADER = 'X-Sluice-Signature';

const TIMESTAMP = /^(0|[1-9][0-9]{0,14})$/;
const V1 = /^[0-9a-f]{64}$/;
const KEY = /^[a-z][a-z0-9]*$/;
// A real header is about 80 characters; the cap keeps a hostile one from costing many HMAC comparisons.
const MAX_HEADER_LENGTH = 4096;

function mac(secret: string, timestamp: string, body: string): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest();
}

/** The X-Sluice-Signature value for `body` sent at `timestamp` (unix seconds). */
export function signWebhook(secret: string, body: string, timestamp: number): string {
  if (secret.length === 0) throw new SluiceError('webhook_secret_empty', 'a webhook signing secret must not be empty; set a random value of 32 or more characters');
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new SluiceError('webhook_timestamp_invalid', 'a webhook signature timestamp must be a non-negative whole number of seconds');
  }
  const t = String(timestamp);
  return `t=${t},v1=${mac(secret, t, body).toString('hex')}`;
}

/**
 * Whether `header` is a valid signature of `body` (the raw request body,
 * exactly as received) under `secret`, made within `toleranceSeconds` of
 * `now` (unix seconds) in either direction. Malformed headers, unknown
 * formats and stale or future timestamps are refused; never throws.
 */
export function verifyWebhookSignature(secret: string, body: string, header: string, now: number, toleranceSeconds = 300): boolean {
  if (typeof header !== 'string' || typeof body !== 'string' || typeof secret !== 'string') return false;
  if (secret.length === 0 || header.length === 0 || header.length > MAX_HEADER_LENGTH) return false;
  if (!Number.isFinite(now) || !Number.isFinite(toleranceSeconds) || toleranceSeconds < 0) return false;
  let timestamp: string | undefined;
  const candidates: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return false;
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (!KEY.test(key)) return false;
    if (key === 't') {
      if (timestamp !== undefined || !TIMESTAMP.test(value)) return false;
      timestamp = value;
    } else if (key === 'v1') {
      if (!V1.test(value)) return false;
      candidates.push(Buffer.from(value, 'hex'));
    }
    // Other keys are later signature schemes: ignored, so a sender can add one before receivers understand it.
  }
  if (timestamp === undefined || candidates.length === 0) return false;
  if (Math.abs(now - Number(timestamp)) > toleranceSeconds) return false;
  const expected = mac(secret, timestamp, body);
  let matched = false;
  // Every candidate is compared, so the time taken does not reveal which entry matched.
  for (const c of candidates) matched = timingSafeEqual(c, expected) || matched;
  return matched;
}
