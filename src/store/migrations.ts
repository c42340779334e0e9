/**
 * The schema of the embedded store, as an ordered list of migrations. Each
 * runs once, in its own transaction, and is recorded in `schema_migrations`.
 * Append new migrations at the end with the next version; never edit one that
 * has shipped, because databases in the field have already run it. `up` must
 * not contain BEGIN/COMMIT: the runner owns the transaction.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly up: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'audit_events',
    // A rowid table rather than WITHOUT ROWID: `data` holds statement text and
    // can be kilobytes, which WITHOUT ROWID tables store poorly. The triggers
    // make the table append-only for every connection, including the sqlite3
    // shell: rows are only ever added at the head of their chain, linked to it,
    // and never updated or deleted. They guard against mistakes; tampering by
    // someone with write access to the file is what the hash chain detects.
    up: `
CREATE TABLE audit_events (
  id INTEGER PRIMARY KEY,
  chain TEXT NOT NULL,
  seq INTEGER NOT NULL CHECK (seq >= 1),
  type TEXT NOT NULL,
  time TEXT NOT NULL,
  session_id TEXT,
  principal_issuer TEXT,
  subject TEXT,
  principal_kind TEXT,
  resource TEXT,
  data TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events (chain, seq);
CREATE INDEX audit_events_time ON audit_events (chain, time);
CREATE INDEX audit_events_session ON audit_events (chain, session_id, seq);
CREATE INDEX audit_events_subject ON audit_events (chain, subject, seq);
CREATE INDEX audit_events_resource ON audit_events (chain, resource, seq);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
  SELECT RAISE(ABORT, 'audit events are append-only: UPDATE is not allowed');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
  SELECT RAISE(ABORT, 'audit events are append-only: DELETE is not allowed');
END;

CREATE TRIGGER audit_events_append_at_head BEFORE INSERT ON audit_events
WHEN NEW.seq IS NOT coalesce((SELECT seq FROM audit_events WHERE chain = NEW.chain ORDER BY seq DESC LIMIT 1), 0) + 1
  OR NEW.prev_hash IS NOT coalesce(
    (SELECT hash FROM audit_events WHERE chain = NEW.chain AND seq = NEW.seq - 1),
    '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
  SELECT RAISE(ABORT, 'audit events are append-only: a new event must follow the head of its chain');
END;
`,
  },
];
