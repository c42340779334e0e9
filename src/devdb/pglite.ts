import { mkdirSync } from 'node:fs';
import { SluiceError } from '../errors.js';

/** An embedded PostgreSQL (PGlite, compiled to WASM) served on a loopback TCP port. */
export interface EmbeddedDatabase {
  readonly host: string;
  readonly port: number;
  exec(sql: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * For machines without PostgreSQL binaries: the quick start's demo database
 * runs in-process. PGlite is single-user (every login is the superuser and
 * queries are serialised), so it demonstrates Sluice, not least privilege.
 */
export async function startEmbeddedDatabase(dataDir: string, port: number): Promise<EmbeddedDatabase> {
  let pglite: typeof import('@electric-sql/pglite');
  let socket: typeof import('@electric-sql/pglite-socket');
  try {
    pglite = await import('@electric-sql/pglite');
    socket = await import('@electric-sql/pglite-socket');
  } catch {
    throw new SluiceError(
      'devdb_no_postgres',
      'the quick start needs a demo database: install PostgreSQL (apt-get install postgresql) or the optional @electric-sql/pglite packages (npm install)',
    );
  }
  mkdirSync(dataDir, { recursive: true });
  const db = await pglite.PGlite.create(dataDir);
  const server = new socket.PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 32 });
  await server.start();
  return {
    host: '127.0.0.1',
    port,
    exec: async (sql) => {
      await db.exec(sql);
    },
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}
