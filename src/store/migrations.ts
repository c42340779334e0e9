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
  {
    version: 2,
    name: 'approvals',
    // A request and each decision on it are separate append-only rows tied by
    // the request id; the state is computed from them, never stored. The
    // unique indexes make a replayed vote and a second use of a statement
    // approval fail inside the database, whichever process or connection
    // tries, so "runs exactly once" does not depend on one process's memory.
    up: `
CREATE TABLE approval_requests (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('statement', 'access')),
  rule TEXT NOT NULL,
  resource TEXT NOT NULL,
  requester_issuer TEXT NOT NULL,
  requester_subject TEXT NOT NULL,
  statement_hash TEXT,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX approval_requests_hash ON approval_requests (statement_hash, requester_issuer, requester_subject);
CREATE INDEX approval_requests_created ON approval_requests (created_at);
CREATE INDEX approval_requests_requester ON approval_requests (requester_issuer, requester_subject, kind);

CREATE TABLE approval_events (
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL REFERENCES approval_requests (id),
  type TEXT NOT NULL CHECK (type IN ('approve', 'deny', 'use', 'cancel', 'expire')),
  by_issuer TEXT,
  by_subject TEXT,
  by_kind TEXT,
  reason TEXT,
  time TEXT NOT NULL
);
CREATE INDEX approval_events_request ON approval_events (request_id, id);
CREATE UNIQUE INDEX approval_events_one_vote ON approval_events (request_id, by_issuer, by_subject) WHERE type IN ('approve', 'deny');
CREATE UNIQUE INDEX approval_events_one_use ON approval_events (request_id) WHERE type = 'use';
CREATE UNIQUE INDEX approval_events_one_end ON approval_events (request_id) WHERE type IN ('cancel', 'expire');

CREATE TRIGGER approval_requests_no_update BEFORE UPDATE ON approval_requests
BEGIN
  SELECT RAISE(ABORT, 'approval requests are append-only: UPDATE is not allowed');
END;
CREATE TRIGGER approval_requests_no_delete BEFORE DELETE ON approval_requests
BEGIN
  SELECT RAISE(ABORT, 'approval requests are append-only: DELETE is not allowed');
END;
CREATE TRIGGER approval_events_no_update BEFORE UPDATE ON approval_events
BEGIN
  SELECT RAISE(ABORT, 'approval events are append-only: UPDATE is not allowed');
END;
CREATE TRIGGER approval_events_no_delete BEFORE DELETE ON approval_events
BEGIN
  SELECT RAISE(ABORT, 'approval events are append-only: DELETE is not allowed');
END;
`,
  },
  {
    version: 3,
    name: 'audit_checkpoints',
    // Signed heads of the audit chains (src/audit/checkpoint.ts), append-only
    // like the events they vouch for. A copy in the store alone cannot catch a
    // rewrite of the store; the exported copy does (docs/audit.md).
    up: `
CREATE TABLE audit_checkpoints (
  id INTEGER PRIMARY KEY,
  chain TEXT NOT NULL,
  seq INTEGER NOT NULL CHECK (seq >= 1),
  hash TEXT NOT NULL,
  time TEXT NOT NULL,
  kid TEXT NOT NULL,
  jws TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_checkpoints_chain_seq ON audit_checkpoints (chain, seq);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
  SELECT RAISE(ABORT, 'audit checkpoints are append-only: UPDATE is not allowed');
END;

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
  SELECT RAISE(ABORT, 'audit checkpoints are append-only: DELETE is not allowed');
END;
`,
  },
];
