import { CompactSign, compactVerify, createLocalJWKSet, type JWK } from 'jose';
import type { SigningKey } from '../keys/keyring.js';
import { canonicalJson } from './hash-chain.js';

/** The head of one audit chain at a moment: event `seq` has hash `hash`. */
export interface Checkpoint {
  readonly chain: string;
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
}

export interface SignedCheckpoint extends Checkpoint {
  /** Key id (JWK thumbprint) of the key that signed it. */
  readonly kid: string;
  /** Compact JWS whose payload is the canonical JSON of the Checkpoint. */
  readonly jws: string;
}

/**
 * `typ` of a checkpoint JWS. Checkpoints are signed with the key that also
 * signs Sluice's tokens, so each side insists on its own type: a token is
 * never accepted as a checkpoint, and a checkpoint (no iss, aud or exp) is
 * never accepted as a token.
 */
export const CHECKPOINT_TYP = 'sluice-checkpoint+jws';

const ALGORITHMS = ['EdDSA', 'ES256'];
const HASH = /^[0-9a-f]{64}$/;
const CHAIN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

export function buildCheckpoint(head: { chain: string; seq: number; hash: string }, now: Date = new Date()): Checkpoint {
  const checkpoint = { chain: head.chain, seq: head.seq, hash: head.hash, time: now.toISOString() };
  if (!isCheckpoint(checkpoint)) throw new TypeError(`buildCheckpoint: not a chain head: ${JSON.stringify(head)}`);
  return checkpoint;
}

export async function signCheckpoint(checkpoint: Checkpoint, key: SigningKey): Promise<SignedCheckpoint> {
  const body = { chain: checkpoint.chain, seq: checkpoint.seq, hash: checkpoint.hash, time: checkpoint.time };
  const jws = await new CompactSign(new TextEncoder().encode(canonicalJson(body)))
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: CHECKPOINT_TYP })
    .sign(key.privateKey);
  return { ...body, kid: key.kid, jws };
}

export type CheckpointRefusal = 'malformed' | 'wrong_type' | 'unknown_key' | 'bad_signature';

export type CheckpointVerification =
  | { readonly ok: true; readonly checkpoint: Checkpoint; readonly kid: string }
  | { readonly ok: false; readonly reason: CheckpointRefusal; readonly message: string };

/**
 * Verifies a checkpoint JWS against the public keys Sluice publishes (its
 * JWKS, current and previous keys). Only the signed payload is trusted;
 * copies of its fields kept next to it must be compared by the caller.
 * Never throws: anything that is not a valid checkpoint is refused.
 */
export async function verifyCheckpoint(jws: string, jwks: { keys: JWK[] }): Promise<CheckpointVerification> {
  if (typeof jws !== 'string' || jws.split('.').length !== 3) {
    return refuse('malformed', 'not a compact JWS');
  }
  let result: Awaited<ReturnType<typeof compactVerify>>;
  try {
    result = await compactVerify(jws, createLocalJWKSet(jwks), { algorithms: ALGORITHMS });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_JWKS_NO_MATCHING_KEY' || code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') {
      return refuse('unknown_key', 'signed by a key that is not among the trusted keys (current signing key and keys.previous)');
    }
    if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') return refuse('bad_signature', 'the signature does not verify: the checkpoint was altered or forged');
    if (code === 'ERR_JOSE_ALG_NOT_ALLOWED') return refuse('malformed', 'signed with an algorithm Sluice does not use');
    return refuse('malformed', 'not a well-formed checkpoint JWS');
  }
  if (result.protectedHeader.typ !== CHECKPOINT_TYP) {
    return refuse('wrong_type', `signed by a Sluice key but its type is not ${CHECKPOINT_TYP}: it is not a checkpoint`);
  }
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(result.payload));
  } catch {
    return refuse('malformed', 'the signed payload is not JSON');
  }
  if (!isCheckpoint(payload) || Object.keys(payload).length !== 4) {
    return refuse('malformed', 'the signed payload is not a checkpoint {chain, seq, hash, time}');
  }
  const { chain, seq, hash, time } = payload;
  return { ok: true, checkpoint: { chain, seq, hash, time }, kid: String(result.protectedHeader.kid ?? '') };
}

function isCheckpoint(v: unknown): v is Checkpoint {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const c = v as Record<string, unknown>;
  return (
    typeof c.chain === 'string' &&
    CHAIN.test(c.chain) &&
    Number.isSafeInteger(c.seq) &&
    (c.seq as number) >= 1 &&
    typeof c.hash === 'string' &&
    HASH.test(c.hash) &&
    typeof c.time === 'string' &&
    ISO_TIME.test(c.time) &&
    !Number.isNaN(Date.parse(c.time))
  );
}

function refuse(reason: CheckpointRefusal, message: string): CheckpointVerification {
  return { ok: false, reason, message };
}
