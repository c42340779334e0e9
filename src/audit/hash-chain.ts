import { createHash } from 'node:crypto';
import type { AuditEvent } from '../events/types.js';

/** prevHash of the first event of every chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** The fields an event hash covers: everything but the hashes themselves. */
export type HashedFields = Pick<
  AuditEvent,
  'seq' | 'chain' | 'type' | 'time' | 'sessionId' | 'principal' | 'resource' | 'data'
>;

/**
 * Canonical JSON: the value JSON.stringify would produce, with object keys
 * sorted by UTF-16 code units (as RFC 8785 does) and no whitespace, at every
 * depth. Parsing the output and canonicalising again gives the same text,
 * which is what lets a verifier recompute hashes from stored JSON.
 * Throws TypeError for values JSON cannot represent (BigInt, cycles, a bare
 * undefined/function/symbol).
 */
export function canonicalJson(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  const text = write(value, '', undefined);
  if (text === undefined) throw new TypeError(`canonicalJson: a ${typeof value} has no JSON representation`);
  return text;
}

// `ancestors` is created on the first object, so scalars cost no allocation.
function write(input: unknown, key: string | number, ancestors: Set<object> | undefined): string | undefined {
  let value = input;
  if (value !== null && (typeof value === 'object' || typeof value === 'bigint')) {
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') value = toJSON.call(value, String(key));
  }
  if (value instanceof Number) value = Number(value);
  else if (value instanceof String) value = String(value);
  else if (value instanceof Boolean) value = value.valueOf();
  else if (value instanceof BigInt) value = value.valueOf();
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      throw new TypeError('canonicalJson: BigInt has no JSON representation');
    case 'object':
      break;
    default:
      return undefined;
  }
  if (value === null) return 'null';
  ancestors ??= new Set();
  if (ancestors.has(value)) throw new TypeError('canonicalJson: value contains a cycle');
  ancestors.add(value);
  let out: string;
  if (Array.isArray(value)) {
    out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += write(value[i], i, ancestors) ?? 'null';
    }
    out += ']';
  } else {
    out = '{';
    let first = true;
    const record = value as Record<string, unknown>;
    for (const k of Object.keys(record).sort()) {
      const v = write(record[k], k, ancestors);
      if (v === undefined) continue;
      if (!first) out += ',';
      out += JSON.stringify(k) + ':' + v;
      first = false;
    }
    out += '}';
  }
  ancestors.delete(value);
  return out;
}

/**
 * canonicalJson({seq, chain, type, time, sessionId, principal, resource, data})
 * built field by field in sorted key order, so the store can reuse the data
 * JSON it stores instead of serialising it twice. `dataJson` must be
 * canonicalJson(e.data).
 */
export function canonicalEventBody(e: HashedFields, dataJson: string = canonicalJson(e.data)): string {
  let s = '{"chain":' + canonicalJson(e.chain) + ',"data":' + dataJson;
  if (e.principal !== undefined) s += ',"principal":' + canonicalJson(e.principal);
  if (e.resource !== undefined) s += ',"resource":' + canonicalJson(e.resource);
  s += ',"seq":' + canonicalJson(e.seq);
  if (e.sessionId !== undefined) s += ',"sessionId":' + canonicalJson(e.sessionId);
  return s + ',"time":' + canonicalJson(e.time) + ',"type":' + canonicalJson(e.type) + '}';
}

/** sha256 hex over prevHash followed by the canonical JSON of the hashed fields. */
export function eventHash(prevHash: string, e: HashedFields, dataJson?: string): string {
  return createHash('sha256').update(prevHash).update(canonicalEventBody(e, dataJson)).digest('hex');
}

export type ChainBreak = 'missing' | 'out_of_order' | 'wrong_chain' | 'prev_hash_mismatch' | 'hash_mismatch';

export type ChainVerification =
  | { readonly ok: true; readonly count: number; readonly lastSeq: number; readonly headHash: string }
  | { readonly ok: false; readonly seq: number; readonly reason: ChainBreak; readonly message: string };

/** Where verification starts: the last event already known to be good. */
export interface ChainAnchor {
  readonly seq: number;
  readonly hash: string;
}

/**
 * Checks events of one chain in the order given, from genesis or from
 * `anchor`, and reports the first sequence number where the chain breaks:
 * an event whose content no longer matches its hash (edited), a gap
 * (deleted), a sequence number out of place (reordered), or an event that
 * does not link to its predecessor. Events cut off the end leave a valid
 * shorter chain: compare `lastSeq`/`headHash` with a copy kept elsewhere to
 * detect that.
 */
export function verifyChain(events: Iterable<AuditEvent>, anchor?: ChainAnchor): ChainVerification {
  let expectedSeq = (anchor?.seq ?? 0) + 1;
  let prevHash = anchor?.hash ?? GENESIS_HASH;
  let chain: string | undefined;
  let count = 0;
  for (const e of events) {
    const seq = e.seq;
    if (chain === undefined) chain = e.chain;
    else if (e.chain !== chain) {
      return broken(seq, 'wrong_chain', `event ${seq} belongs to chain "${e.chain}", not "${chain}"`);
    }
    if (seq !== expectedSeq) {
      return seq > expectedSeq
        ? broken(expectedSeq, 'missing', `event ${expectedSeq} is missing: the next event present is ${seq}`)
        : broken(seq, 'out_of_order', `event ${seq} appears where event ${expectedSeq} was expected`);
    }
    if (e.prevHash !== prevHash) {
      return broken(seq, 'prev_hash_mismatch', `event ${seq} does not link to event ${seq - 1}: one of them was altered`);
    }
    let hash: string;
    try {
      hash = eventHash(e.prevHash, e);
    } catch {
      hash = '';
    }
    if (hash !== e.hash) {
      return broken(seq, 'hash_mismatch', `event ${seq} does not match its hash: its content was altered`);
    }
    prevHash = e.hash;
    expectedSeq++;
    count++;
  }
  return { ok: true, count, lastSeq: expectedSeq - 1, headHash: prevHash };
}

function broken(seq: number, reason: ChainBreak, message: string): ChainVerification {
  return { ok: false, seq, reason, message };
}
