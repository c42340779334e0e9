import { createServer, type Server, type Socket } from 'node:net';
import { parseHostPort } from '../../config/load.js';
import { errorResponse } from './codec/backend-serializer.js';
import { CancelKeys } from './cancel-keys.js';
import type { PostgresAdapterContext } from './context.js';
import type { PostgresSession } from './session-relay.js';
import { runStartup } from './startup.js';

/**
 * The PostgreSQL listener: accepts TCP connections, caps how many may sit
 * unauthenticated, and tracks sessions for graceful shutdown.
 */
export class PostgresListener {
  private readonly server: Server;
  private readonly cancelKeys = new CancelKeys();
  private readonly sessions = new Set<PostgresSession>();
  private unauthenticated = 0;

  constructor(private readonly ctx: PostgresAdapterContext) {
    this.server = createServer({ noDelay: true, pauseOnConnect: false }, (s) => this.accept(s));
    this.server.on('error', (err) => ctx.log.error({ err: err.message }, 'postgres listener error'));
  }

  listen(hostPort: string): Promise<{ host: string; port: number }> {
    const { host, port } = parseHostPort(hostPort);
    return new Promise((resolveAddr, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.removeListener('error', reject);
        const a = this.server.address();
        if (typeof a === 'object' && a) resolveAddr({ host: a.address, port: a.port });
      });
    });
  }

  /** Stops accepting; open sessions keep running until `drain` ends them. */
  stopAccepting(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }

  /** Waits up to `graceMs` for sessions to end by themselves, then terminates the rest. */
  async drain(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const s of this.sessions) {
      s.terminate({ code: 'gateway_shutdown', sqlstate: '57P01', message: 'Sluice is shutting down; reconnect in a moment' });
    }
  }


  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    const max = this.ctx.state().config.server.postgres.max_unauthenticated;
    if (this.unauthenticated >= max) {
      this.ctx.metrics.refusals.labels('postgres', 'too_many_unauthenticated').inc();
      socket.end(errorResponse({ severity: 'FATAL', code: '53300', message: 'too many connections are authenticating; try again shortly' }));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    this.unauthenticated++;
    let counted = true;
    const uncount = () => {
      if (counted) {
        counted = false;
        this.unauthenticated--;
      }
    };
    runStartup(socket, {
      ctx: this.ctx,
      cancelKeys: this.cancelKeys,
      onSession: (s, reservation) => {
        uncount();
        this.sessions.add(s);
        this.ctx.registry.add(s, reservation);
        this.ctx.metrics.sessionsActive.labels('postgres').inc();
        this.ctx.metrics.sessionsOpened.labels('postgres', s.resource, s.grant).inc();
      },
      onSessionClosed: (s) => {
        this.sessions.delete(s);
        this.ctx.registry.remove(s);
        this.ctx.metrics.sessionsActive.labels('postgres').dec();
      },
    })
      .catch((err) => this.ctx.log.error({ err: String(err) }, 'startup failed unexpectedly'))
      .finally(uncount);
  }
}
