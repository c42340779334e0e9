import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { SluiceError } from '../../../errors.js';

const pbkdf2Async = promisify(pbkdf2);

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

/** A SCRAM exchange failed or the server did not prove it knows the password. */
export class ScramError extends SluiceError {
  constructor(message: string) {
    super('scram_failed', message);
    this.name = 'ScramError';
  }
}

export interface ScramOptions {
  password: string;
  /** PostgreSQL ignores the SCRAM user name (the startup user counts), so libpq sends an empty one. */
  username?: string;
  /** Fixed client nonce, for test vectors only. */
  nonce?: string;
  /** A hostile server could ask for billions of PBKDF2 rounds; PostgreSQL's default is 4096. */
  maxIterations?: number;
}

/**
 * SCRAM-SHA-256 client (RFC 5802, RFC 7677) without channel binding (gs2
 * header `n,,`). It verifies the server's signature, so a server that does
 * not know the password cannot pass as authenticated.
 */
export class ScramClient {
  private readonly password: string;
  private readonly clientNonce: string;
  private readonly clientFirstBare: string;
  private readonly maxIterations: number;
  private expectedServerSignature: Buffer | undefined;
  private state: 'initial' | 'first-sent' | 'final-sent' | 'verified' = 'initial';

  constructor(opts: ScramOptions) {
    this.password = opts.password;
    this.clientNonce = opts.nonce ?? randomBytes(18).toString('base64');
    this.clientFirstBare = `n=${escapeName(opts.username ?? '')},r=${this.clientNonce}`;
    this.maxIterations = opts.maxIterations ?? 1_000_000;
  }

  get verified(): boolean {
    return this.state === 'verified';
  }

  /** The client-first-message, sent in SASLInitialResponse. */
  clientFirst(): Buffer {
    if (this.state !== 'initial') throw new ScramError('client-first-message sent twice');
    this.state = 'first-sent';
    return Buffer.from(`n,,${this.clientFirstBare}`, 'utf8');
  }

  /** Takes the server-first-message (SASLContinue) and returns the client-final-message. */
  async clientFinal(serverFirstBytes: Buffer): Promise<Buffer> {
    if (this.state !== 'first-sent') throw new ScramError('unexpected server-first-message');
    const serverFirst = serverFirstBytes.toString('utf8');
    const attrs = parseAttributes(serverFirst);
    if (attrs.has('m')) throw new ScramError('server requires an unsupported SCRAM extension');
    const nonce = attrs.get('r');
    const saltB64 = attrs.get('s');
    const iterText = attrs.get('i');
    if (!nonce || !saltB64 || !iterText) throw new ScramError('server-first-message lacks nonce, salt or iteration count');
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length || !/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce)) {
      throw new ScramError('server nonce does not extend the client nonce');
    }
    if (!isBase64(saltB64)) throw new ScramError('server salt is not base64');
    if (!/^[1-9][0-9]{0,9}$/.test(iterText)) throw new ScramError('server iteration count is invalid');
    const iterations = Number(iterText);
    if (iterations > this.maxIterations) throw new ScramError(`server asks for ${iterations} iterations, above the limit of ${this.maxIterations}`);

    const salted = await pbkdf2Async(saslprep(this.password), Buffer.from(saltB64, 'base64'), iterations, 32, 'sha256');
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i] ^ clientSignature[i];
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    this.state = 'final-sent';
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }

  /** Checks the server-final-message (SASLFinal); throws unless the server proved knowledge of the password. */
  verifyServerFinal(serverFinalBytes: Buffer): void {
    if (this.state !== 'final-sent' || !this.expectedServerSignature) throw new ScramError('unexpected server-final-message');
    const attrs = parseAttributes(serverFinalBytes.toString('utf8'));
    const err = attrs.get('e');
    if (err !== undefined) throw new ScramError(`server reports SCRAM error "${err.slice(0, 64)}"`);
    const v = attrs.get('v');
    if (!v || !isBase64(v)) throw new ScramError('server-final-message lacks a signature');
    const got = Buffer.from(v, 'base64');
    if (got.length !== this.expectedServerSignature.length || !timingSafeEqual(got, this.expectedServerSignature)) {
      throw new ScramError('server signature does not match: the server does not know the password');
    }
    this.state = 'verified';
  }
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

function parseAttributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    if (!/^[A-Za-z]=/.test(part)) throw new ScramError('malformed SCRAM message');
    const key = part[0];
    if (out.has(key)) throw new ScramError('malformed SCRAM message');
    out.set(key, part.slice(2));
  }
  return out;
}

function isBase64(s: string): boolean {
  return s.length > 0 && /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s);
}

function escapeName(name: string): string {
  return name.replaceAll('=', '=3D').replaceAll(',', '=2C');
}

/** RFC 3454 C.1.2 (non-ASCII spaces), mapped to U+0020. */
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
/** RFC 3454 B.1 ("commonly mapped to nothing"). */
// eslint-disable-next-line no-misleading-character-class
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;
/** The prohibited output (RFC 4013 2.3) that can occur after mapping: control, private-use, non-character, surrogate and bidi-control code points. */
const PROHIBITED = /[\u0000-\u001F\u007F-\u009F\u06DD\u070F\u180E\u200E\u200F\u2028-\u202E\u206A-\u206F\uD800-\uDFFF\uE000-\uF8FF\uFDD0-\uFDEF\uFFF9-\uFFFF]/;

/**
 * SASLprep as PostgreSQL's server applies it to the stored verifier: ASCII
 * passwords are used as they are, others are mapped and NFKC-normalised, and
 * a password whose prepared form would be prohibited is used raw (PostgreSQL
 * does the same, so both sides agree).
 */
export function saslprep(password: string): string {
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const prepared = password.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
  if (prepared === '' || PROHIBITED.test(prepared)) return password;
  return prepared;
}
