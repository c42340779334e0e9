import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClient } from '../support/clients.js';
import { startGateway, type TestGateway } from '../support/gateway.js';

let t: TestGateway;
beforeAll(async () => {
  t = await startGateway();
});
afterAll(async () => {
  await t?.stop();
});

describe('credentials in statements never reach the audit log', () => {
  it('redacts a token and a private key in statement text and bind parameters, masked session or not', async () => {
    const token = await t.token('alice', ['dba']);
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const c = await pgClient(t, 'read', token);
    try {
      const simple = await c.query(`SELECT length('${token}') AS n`);
      expect(simple.rows[0].n).toBe(token.length);
      await c.query('SELECT length($1::text) AS a, length($2::text) AS b', [token, pem]);
    } finally {
      await c.end();
    }
    for (let i = 0; i < 100 && t.gw.store.query({ types: ['statement.started'], text: 'length(', limit: 10 }).length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    const started = t.gw.store.query({ types: ['statement.started'], text: 'length(', limit: 10 });
    expect(started).toHaveLength(2);
    const all = JSON.stringify(t.gw.store.query({ limit: 1000 }));
    expect(all).not.toContain(token);
    expect(all).not.toContain(token.split('.')[1]!);
    expect(all).not.toContain(pem.split('\n')[1]!);
    expect(started[0]!.data.text).toBe("SELECT length('[masked:jwt]') AS n");
    expect(started[1]!.data.params).toEqual(['[masked:jwt]', '[masked:private_key]\n']);
    expect(t.logs.join('')).not.toContain(token);
  });
});
