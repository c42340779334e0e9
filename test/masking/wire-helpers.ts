import { serialize } from 'pg-protocol';
import { expect } from 'vitest';
import { openSession, type BackendMessage, type Session } from '../support/raw-client.js';
import type { MaskingFixture } from './fixture.js';

/** Opens a raw protocol session on the fixture's `orders` resource, as the masked CI machine unless told otherwise. */
export function openAs(f: MaskingFixture, grant = 'read', token = f.tokens.ci): Promise<Session> {
  return openSession(f.t.host, f.t.port, { user: grant, database: 'orders' }, token);
}

/** Sends frontend messages in one write and reads the answers up to ReadyForQuery. */
/** Runs `body` on a session opened by `opening`, and closes the session whatever happens. */
export async function withSession<T>(opening: Promise<Session>, body: (s: Session) => Promise<T>): Promise<T> {
  const s = await opening;
  try {
    return await body(s);
  } finally {
    s.client.destroy();
  }
}

export async function roundTrip(s: Session, ...msgs: Buffer[]): Promise<BackendMessage[]> {
  s.client.write(Buffer.concat(msgs));
  return s.client.until('Z', 20_000);
}

/** The fields of every DataRow, as the bytes sent (null for SQL NULL). */
export function dataRows(msgs: readonly BackendMessage[]): (Buffer | null)[][] {
  return msgs
    .filter((m) => m.type === 'D')
    .map((m) => {
      const n = m.payload.readUInt16BE(0);
      const out: (Buffer | null)[] = [];
      let pos = 2;
      for (let i = 0; i < n; i++) {
        const len = m.payload.readInt32BE(pos);
        pos += 4;
        if (len < 0) out.push(null);
        else {
          out.push(m.payload.subarray(pos, pos + len));
          pos += len;
        }
      }
      return out;
    });
}

/** The fields of every DataRow decoded as utf8. */
export function textRows(msgs: readonly BackendMessage[]): (string | null)[][] {
  return dataRows(msgs).map((r) => r.map((v) => (v === null ? null : v.toString('utf8'))));
}

/** Everything a client could read from raw messages, decoded both as utf8 and as latin1 (binary fields survive the latter). */
export function wireText(msgs: readonly BackendMessage[]): string {
  const all = Buffer.concat(msgs.map((m) => m.payload));
  return `${all.toString('utf8')}\n${all.toString('latin1')}`;
}

/** The session still answers a plain query. */
export async function expectUsable(s: Session): Promise<void> {
  const after = await roundTrip(s, serialize.query('select 1 as ok'));
  expect(textRows(after)).toEqual([['1']]);
}
