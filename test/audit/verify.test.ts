import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { CompactSign } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { buildCheckpoint, signCheckpoint, verifyCheckpoint } from '../../src/audit/checkpoint.js';
import { CheckpointWriter, exportLine } from '../../src/audit/checkpoint-writer.js';
import { canonicalJson, eventHash, GENESIS_HASH } from '../../src/audit/hash-chain.js';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store.js';
import { verifyAuditStore, type VerifyReport } from '../../src/audit/verify.js';
import { trustedKeys } from '../../src/audit/verify-keys.js';
import { Keyring } from '../../src/keys/keyring.js';
import { createLogger } from '../../src/observability/log.js';
import { runCli } from '../cli/run-cli.js';
import { startGateway } from '../support/gateway.js';
import { statementEvent } from './sample-events.js';
import type { EventRow } from '../../src/audit/event-row.js';

// The CLI test starts Node processes that compile TypeScript; on a busy machine that takes a while.
vi.setConfig({ testTimeout: 90_000 });

const log = createLogger('silent');
let dir: string;
let storePath: string;
let exportFile: string;
let keyring: Keyring;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-verify-'));
  storePath = join(dir, 'sluice.db');
  exportFile = join(dir, 'export', 'checkpoints.jsonl');
  keyring = await Keyring.load({ previous: [] }, dir);
  await buildStore();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Chain "main": 10 events, checkpoints at 6 and 10 (in the table and the
 * export file). Chain "standby": 3 events, no checkpoint.
 */
async function buildStore(): Promise<void> {
  const store = SqliteAuditStore.open({ path: storePath, synchronous: 'normal' });
  const writer = CheckpointWriter.open({ path: storePath, synchronous: 'normal', key: keyring.current, intervalSeconds: 60, exportFile, log });
  for (let i = 1; i <= 6; i++) await store.append([statementEvent(i)]);
  expect(await writer.checkpoint()).toMatchObject({ chain: 'main', seq: 6 });
  await store.append([7, 8, 9, 10].map((i) => statementEvent(i)));
  await writer.stop();
  await store.close();
  const standby = SqliteAuditStore.open({ path: storePath, synchronous: 'normal', chain: 'standby' });
  await standby.append([statementEvent(100), statementEvent(101), statementEvent(102)]);
  await standby.close();
}

function verify(opts: { exportFiles?: string[]; keys?: Keyring[] } = {}): Promise<VerifyReport> {
  const keys = (opts.keys ?? [keyring]).flatMap((k) => k.jwks().keys);
  return verifyAuditStore({ storePath, jwks: { keys }, exportFiles: opts.exportFiles ?? [exportFile] });
}

/** A connection of someone with write access to the file: the append-only triggers dropped. */
function tamper(sql: (db: Database.Database) => void): void {
  const db = new Database(storePath);
  for (const t of ['audit_events_no_update', 'audit_events_no_delete', 'audit_events_append_at_head', 'audit_checkpoints_no_delete']) {
    db.exec(`DROP TRIGGER ${t}`);
  }
  sql(db);
  db.close();
}

/** A stored row with its rowid, as the rewrite below reads it. */
type Row = EventRow & { id: number };

/** Rewrites chain "main" as a careful attacker would: every prev_hash and hash recomputed. */
function recomputeHashes(db: Database.Database): void {
  const rows = db.prepare("SELECT * FROM audit_events WHERE chain = 'main' ORDER BY seq").all() as Row[];
  const update = db.prepare('UPDATE audit_events SET prev_hash = ?, hash = ? WHERE id = ?');
  let prev = GENESIS_HASH;
  for (const r of rows) {
    const data = JSON.parse(r.data) as Record<string, unknown>;
    const hash = eventHash(prev, {
      seq: r.seq,
      chain: r.chain,
      type: r.type as never,
      time: r.time,
      data,
      ...(r.session_id !== null ? { sessionId: r.session_id } : {}),
      ...(r.principal_issuer !== null ? { principal: { issuer: r.principal_issuer, subject: r.subject as string, kind: r.principal_kind as 'person' } } : {}),
      ...(r.resource !== null ? { resource: r.resource } : {}),
    });
    update.run(prev, hash, r.id);
    prev = hash;
  }
}

const editEvent4 = (db: Database.Database) =>
  db.prepare("UPDATE audit_events SET data = json_set(data, '$.sql', 'SELECT 1') WHERE chain = 'main' AND seq = 4").run();

describe('verifyAuditStore', () => {
  it('finds a clean store intact, with every chain and checkpoint', async () => {
    const r = await verify();
    expect(r.findings).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.chains).toEqual([
      expect.objectContaining({ chain: 'main', verified: 10, lastSeq: 10, intact: true }),
      expect.objectContaining({ chain: 'standby', verified: 3, lastSeq: 3, intact: true }),
    ]);
    expect(r.checkpoints).toEqual({ store: 2, exported: 2, matched: 4 });
  });

  it('reports an edited data field at its seq', async () => {
    tamper(editEvent4);
    const r = await verify();
    expect(r.ok).toBe(false);
    expect(r.findings).toEqual([
      { kind: 'edited', chain: 'main', seq: 4, message: 'event 4 was edited: its content no longer matches its hash' },
    ]);
    expect(r.chains[0]).toMatchObject({ chain: 'main', verified: 3, intact: false });
    expect(r.chains[1]).toMatchObject({ chain: 'standby', intact: true });
  });

  it('reports data that is no longer JSON as edited', async () => {
    tamper((db) => db.prepare("UPDATE audit_events SET data = '{oops' WHERE chain = 'standby' AND seq = 2").run());
    const r = await verify();
    expect(r.findings).toEqual([{ kind: 'edited', chain: 'standby', seq: 2, message: 'event 2 was edited: its data is no longer JSON' }]);
  });

  it('reports a deleted event', async () => {
    tamper((db) => db.prepare("DELETE FROM audit_events WHERE chain = 'main' AND seq = 5").run());
    const r = await verify();
    expect(r.findings).toEqual([
      { kind: 'deleted', chain: 'main', seq: 5, message: 'event 5 was deleted: the next event in the store is 6' },
    ]);
  });

  it('reports two events whose seqs were swapped as reordered', async () => {
    tamper((db) => {
      const set = db.prepare("UPDATE audit_events SET seq = ? WHERE chain = 'main' AND seq = ?");
      set.run(1003, 3);
      set.run(3, 4);
      set.run(4, 1003);
    });
    const r = await verify();
    expect(r.findings).toEqual([
      {
        kind: 'reordered',
        chain: 'main',
        seq: 3,
        message: 'event 3 was moved: it was written right after the event now numbered 4, not after event 2: events were reordered',
      },
    ]);
  });

  it('reports rows whose whole content was swapped as reordered', async () => {
    tamper((db) => {
      const ids = db.prepare("SELECT id FROM audit_events WHERE chain = 'main' AND seq IN (3, 4) ORDER BY seq").pluck().all() as number[];
      const cols = 'seq, type, time, session_id, principal_issuer, subject, principal_kind, resource, data, prev_hash, hash';
      db.exec(`CREATE TEMP TABLE swap AS SELECT id, ${cols} FROM audit_events WHERE id IN (${ids.join(',')})`);
      db.prepare("UPDATE audit_events SET seq = seq + 1000 WHERE id IN (?, ?)").run(...ids);
      for (const [to, from] of [[ids[0], ids[1]], [ids[1], ids[0]]]) {
        db.prepare(`UPDATE audit_events SET (${cols}) = (SELECT ${cols} FROM swap WHERE id = ?) WHERE id = ?`).run(from, to);
      }
    });
    const r = await verify();
    expect(r.findings).toEqual([{ kind: 'reordered', chain: 'main', seq: 4, message: 'event 4 is stored before event 3: events were reordered' }]);
  });

  it('reports a truncated tail through the checkpoints that signed it', async () => {
    tamper((db) => db.prepare("DELETE FROM audit_events WHERE chain = 'main' AND seq > 7").run());
    const r = await verify();
    expect(r.chains[0]).toMatchObject({ chain: 'main', verified: 7, lastSeq: 7, intact: true });
    expect(r.findings).toHaveLength(2);
    for (const [f, source] of [[r.findings[0], 'store'], [r.findings[1], `${exportFile}:2`]] as const) {
      expect(f).toMatchObject({ kind: 'truncated', chain: 'main', seq: 10, source });
      expect(f.message).toMatch(/^chain "main" ends at event 7, but .* signed event 10 \(.*\): events 8 to 10 were deleted from the end$/);
    }
  });

  it('catches a rewrite with recomputed hashes only through the exported checkpoints', async () => {
    tamper((db) => {
      editEvent4(db);
      recomputeHashes(db);
      db.exec('DELETE FROM audit_checkpoints');
    });
    const withoutExport = await verify({ exportFiles: [] });
    expect(withoutExport.ok).toBe(true);

    const r = await verify();
    expect(r.ok).toBe(false);
    const mismatches = r.findings.filter((f) => f.kind === 'checkpoint_mismatch');
    expect(mismatches.map((f) => [f.seq, f.source])).toEqual([
      [6, `${exportFile}:1`],
      [10, `${exportFile}:2`],
    ]);
    expect(mismatches[0].message).toMatch(
      new RegExp(`^the checkpoint at ${exportFile}:1 signed event 6 of chain "main" with hash [0-9a-f]{16}… \\(.*\\), but the store has [0-9a-f]{16}…: the chain up to event 6 was rewritten$`),
    );
    expect(r.findings.filter((f) => f.kind === 'checkpoint_missing').map((f) => f.seq)).toEqual([6, 10]);
  });

  it('reports a rewrite the store checkpoints still reveal', async () => {
    tamper((db) => {
      editEvent4(db);
      recomputeHashes(db);
    });
    const r = await verify({ exportFiles: [] });
    expect(r.findings.map((f) => [f.kind, f.seq, f.source])).toEqual([
      ['checkpoint_mismatch', 6, 'store'],
      ['checkpoint_mismatch', 10, 'store'],
    ]);
  });

  it('refuses a checkpoint signed by another key, and accepts one signed by a previous key it is given', async () => {
    const otherDir = mkdtempSync(join(tmpdir(), 'sluice-other-'));
    try {
      const other = await Keyring.load({ previous: [] }, otherDir);
      const forged = await signCheckpoint(buildCheckpoint({ chain: 'main', seq: 10, hash: headHash() }), other.current);
      appendFileSync(exportFile, exportLine(forged));
      const r = await verify();
      expect(r.findings).toEqual([
        {
          kind: 'checkpoint_invalid',
          source: `${exportFile}:3`,
          message: `the checkpoint at ${exportFile}:3 is refused: signed by a key that is not among the trusted keys (current signing key and keys.previous)`,
        },
      ]);
      expect((await verify({ keys: [keyring, other] })).ok).toBe(true);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('refuses a JWS of another type signed by the right key, a broken signature, and altered plain fields', async () => {
    const token = await new CompactSign(new TextEncoder().encode(canonicalJson({ chain: 'main', seq: 10, hash: headHash(), time: new Date().toISOString() })))
      .setProtectedHeader({ alg: keyring.current.alg, kid: keyring.current.kid, typ: 'JWT' })
      .sign(keyring.current.privateKey);
    const [line1, line2] = readFileSync(exportFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    const [h, p, s] = line2.jws.split('.');
    const brokenSig = `${h}.${p}.${s[0] === 'A' ? 'B' : 'A'}${s.slice(1)}`;
    appendFileSync(exportFile, [
      JSON.stringify({ jws: token }),
      JSON.stringify({ ...line2, jws: brokenSig }),
      JSON.stringify({ ...line1, hash: 'f'.repeat(64) }),
      'not json',
    ].join('\n') + '\n');
    const r = await verify();
    expect(r.findings.map((f) => [f.kind, f.source, f.message.replace(/^.* is refused: /, '')])).toEqual([
      ['checkpoint_invalid', `${exportFile}:6`, `${exportFile}:6 is not a checkpoint line: the export file was altered`],
      ['checkpoint_invalid', `${exportFile}:3`, 'signed by a Sluice key but its type is not sluice-checkpoint+jws: it is not a checkpoint'],
      ['checkpoint_invalid', `${exportFile}:4`, 'the signature does not verify: the checkpoint was altered or forged'],
      ['checkpoint_invalid', `${exportFile}:5`, `the checkpoint at ${exportFile}:5 shows hash "${'f'.repeat(64)}" but signed "${line1.hash}": its plain fields were altered`],
    ]);
  });

  it('reads the keys of a configuration without creating any', async () => {
    expect(await trustedKeys({ previous: [] }, dir)).toEqual({ keys: [expect.objectContaining({ kid: keyring.current.kid, x: keyring.current.publicJwk.x })] });
    const empty = mkdtempSync(join(tmpdir(), 'sluice-nokeys-'));
    try {
      expect(await trustedKeys({ previous: [] }, empty)).toEqual({ keys: [] });
      expect(readdirSync(empty)).toEqual([]);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('CheckpointWriter', () => {
  it('writes nothing when the head did not move, also after a restart', async () => {
    const writer = CheckpointWriter.open({ path: storePath, synchronous: 'normal', key: keyring.current, intervalSeconds: 60, exportFile, log });
    expect(await writer.checkpoint()).toBeUndefined();
    const store = SqliteAuditStore.open({ path: storePath, synchronous: 'normal' });
    await store.append([statementEvent(11)]);
    await store.close();
    const written = await writer.checkpoint();
    expect(written).toMatchObject({ chain: 'main', seq: 11, kid: keyring.current.kid });
    await writer.stop();
    expect(readFileSync(exportFile, 'utf8').trim().split('\n')).toHaveLength(3);
    expect((await verify()).ok).toBe(true);
  });

  it('keeps the checkpoint table append-only', () => {
    const db = new Database(storePath);
    try {
      expect(() => db.exec("UPDATE audit_checkpoints SET hash = 'x'")).toThrow(/append-only: UPDATE is not allowed/);
      expect(() => db.exec('DELETE FROM audit_checkpoints')).toThrow(/append-only: DELETE is not allowed/);
    } finally {
      db.close();
    }
  });
});

describe('the gateway', () => {
  it('checkpoints its chain when it stops, to the store and the export file', async () => {
    let file = '';
    const t = await startGateway((cfg) => {
      file = join(cfg.store.data_dir as string, 'export', 'checkpoints.jsonl');
      cfg.store.checkpoints = { interval: '1h', export: { file } };
    });
    try {
      await t.gw.stop(0);
      const r = await verifyAuditStore({ storePath: join(t.dir, 'sluice.db'), jwks: t.gw.keyring.jwks(), exportFiles: [file] });
      expect(r.findings).toEqual([]);
      expect(r.checkpoints).toEqual({ store: 1, exported: 1, matched: 2 });
      expect(t.logs.some((l) => l.includes('audit checkpoint written'))).toBe(true);
    } finally {
      await t.stop();
    }
  });
});

describe('verifyCheckpoint', () => {
  it('never throws on arbitrary input and refuses it', async () => {
    const jwks = keyring.jwks();
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.base64String().map((s) => `${s}.${s}.${s}`)), async (input) => {
        const v = await verifyCheckpoint(input, jwks);
        expect(v.ok).toBe(false);
      }),
    );
  });

  it('refuses every single-character change to a checkpoint, or reads the same checkpoint', async () => {
    const signed = await signCheckpoint(buildCheckpoint({ chain: 'main', seq: 10, hash: headHash() }), keyring.current);
    const jwks = keyring.jwks();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
    await fc.assert(
      fc.asyncProperty(fc.nat(signed.jws.length - 1), fc.constantFrom(...alphabet), async (at, ch) => {
        fc.pre(signed.jws[at] !== ch);
        const v = await verifyCheckpoint(signed.jws.slice(0, at) + ch + signed.jws.slice(at + 1), jwks);
        if (v.ok) expect(v.checkpoint).toEqual({ chain: signed.chain, seq: signed.seq, hash: signed.hash, time: signed.time });
      }),
      { numRuns: 300 },
    );
  });
});

describe('sluice audit verify', () => {
  it('exits 0 on an intact log, 1 on a tampered one, 2 on usage errors', async () => {
    const configFile = join(dir, 'sluice.yaml');
    writeFileSync(configFile, stringify({ server: { tls: { self_signed: true } }, store: { data_dir: dir, checkpoints: { export: { file: exportFile } } } }));

    const clean = await runCli(['audit', 'verify', '--config', configFile]);
    expect(clean.stderr).toBe('');
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/^chain "main": 10 events intact, head 10 [0-9a-f]{16}…\n/);
    expect(clean.stdout).toContain('checkpoints: 4 of 4 signed and matching (2 in the store, 2 exported)\nOK: the audit log is intact\n');

    tamper(editEvent4);
    const tampered = await runCli(['audit', 'verify', '--store', storePath, '--checkpoints', exportFile, '--json']);
    expect(tampered.code).toBe(1);
    const report = JSON.parse(tampered.stdout) as VerifyReport;
    expect(report.findings).toEqual([{ kind: 'edited', chain: 'main', seq: 4, message: 'event 4 was edited: its content no longer matches its hash' }]);

    const missing = await runCli(['audit', 'verify', '--store', join(dir, 'nope.db')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^sluice: cannot open the store .*nope\.db .*\[store_unreadable\]\n$/);

    const unknown = await runCli(['audit', 'verify', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--bogus'");
  });
});

function headHash(): string {
  const db = new Database(storePath, { readonly: true });
  try {
    return db.prepare("SELECT hash FROM audit_events WHERE chain = 'main' ORDER BY seq DESC LIMIT 1").pluck().get() as string;
  } finally {
    db.close();
  }
}

