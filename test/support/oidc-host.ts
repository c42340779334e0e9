import { generateKeyPair, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** What an in-process OpenID provider runs on: a loopback HTTP server (503 until a handler is set) and an RS256 signing key. */
export interface ProviderHost {
  readonly issuer: string;
  readonly signingJwk: Record<string, unknown>;
  handle(handler: RequestHandler): void;
  close(): Promise<void>;
}

export async function startProviderHost(): Promise<ProviderHost> {
  const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: 2048 });
  const signingJwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: `rs256-${randomBytes(4).toString('hex')}` };
  let handler: RequestHandler = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server: Server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    issuer: `http://127.0.0.1:${port}`,
    signingJwk,
    handle: (h) => {
      handler = h;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Per-provider in-memory storage for oidc-provider. It has a built-in one
 * too, but that warns on every start; this one also has the lookups the
 * device flow and interactions need (by user code, by uid). With
 * `clientFor`, every client id exists, with the metadata it returns.
 */
export function memoryAdapter(clientFor?: (id: string) => Record<string, unknown>): new (model: string) => object {
  const store = new Map<string, { payload: Record<string, unknown>; expiresAt?: number }>();
  const read = (key: string): Record<string, unknown> | undefined => {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  };
  return class MemoryAdapter {
    constructor(readonly model: string) {}
    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number) {
      store.set(`${this.model}:${id}`, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
    }
    async find(id: string) {
      if (this.model === 'Client' && clientFor) return clientFor(id);
      return read(`${this.model}:${id}`);
    }
    async findByUserCode(userCode: string) {
      return this.#findBy('userCode', userCode);
    }
    async findByUid(uid: string) {
      return this.#findBy('uid', uid);
    }
    #findBy(field: string, value: string) {
      for (const key of store.keys()) {
        if (!key.startsWith(`${this.model}:`)) continue;
        const payload = read(key);
        if (payload?.[field] === value) return payload;
      }
      return undefined;
    }
    async consume(id: string) {
      const payload = read(`${this.model}:${id}`);
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      store.delete(`${this.model}:${id}`);
    }
    async revokeByGrantId(grantId: string) {
      for (const [key, entry] of store) if (entry.payload.grantId === grantId) store.delete(key);
    }
  };
}
