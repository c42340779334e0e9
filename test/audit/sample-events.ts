import type { AuditEvent, AuditEventInput } from '../../src/events/types.js';
import { eventHash, GENESIS_HASH } from '../../src/audit/hash-chain.js';

/** A realistic statement event; `i` varies session, subject and text. */
export function statementEvent(i: number, overrides: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    type: 'statement.started',
    time: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
    sessionId: `sess-${i % 3}`,
    principal: { issuer: 'https://idp.example.com', subject: `user-${i % 4}`, kind: 'person' },
    resource: i % 2 === 0 ? 'orders' : 'billing',
    data: { sql: `SELECT * FROM customers WHERE id = ${i}`, grant: 'read', n: i },
    ...overrides,
  };
}

/** Builds a valid chain in memory, the way the store does. */
export function buildChain(inputs: readonly AuditEventInput[], chain = 'main'): AuditEvent[] {
  let prevHash = GENESIS_HASH;
  return inputs.map((input, i) => {
    const fields = { ...input, seq: i + 1, chain };
    const hash = eventHash(prevHash, fields);
    const event: AuditEvent = { ...fields, prevHash, hash };
    prevHash = hash;
    return event;
  });
}
