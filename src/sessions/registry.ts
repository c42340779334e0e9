import { principalKey, type PrincipalRef } from '../identity/principal.js';
import type { Session } from './session.js';

/** A counted place for a session that is still being opened. */
export interface Reservation {
  /** Gives the place back; a no-op once the session was added. */
  release(): void;
}

export type ReserveResult = { ok: true; reservation: Reservation } | { ok: false; limit: 'resource' | 'principal' };

/**
 * Every live session, with the counts the admission limits need. A session
 * takes its place in the counts (reserve) before its backend connection is
 * opened, so concurrent connects cannot overshoot a limit. The registry is
 * the one place that lists, re-authorizes and terminates sessions, whatever
 * protocol they speak.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  private readonly perResource = new Map<string, number>();
  private readonly perPrincipal = new Map<string, number>();
  private readonly adopted = new WeakSet<Reservation>();

  reserve(resource: string, principal: PrincipalRef, limits: { maxSessions: number; maxPerPrincipal: number }): ReserveResult {
    const pk = `${resource}\u0000${principalKey(principal)}`;
    if ((this.perResource.get(resource) ?? 0) >= limits.maxSessions) return { ok: false, limit: 'resource' };
    if ((this.perPrincipal.get(pk) ?? 0) >= limits.maxPerPrincipal) return { ok: false, limit: 'principal' };
    bump(this.perResource, resource, 1);
    bump(this.perPrincipal, pk, 1);
    let released = false;
    const reservation: Reservation = {
      release: () => {
        if (released || this.adopted.has(reservation)) return;
        released = true;
        bump(this.perResource, resource, -1);
        bump(this.perPrincipal, pk, -1);
      },
    };
    return { ok: true, reservation };
  }

  /** Registers a session whose place was reserved; its counts now go with the session. */
  add(s: Session, reservation: Reservation): void {
    this.adopted.add(reservation);
    this.sessions.set(s.id, s);
  }

  remove(s: Session): void {
    if (!this.sessions.delete(s.id)) return;
    bump(this.perResource, s.resource, -1);
    bump(this.perPrincipal, `${s.resource}\u0000${principalKey(s.principal)}`, -1);
  }

  get(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  list(): Session[] {
    return [...this.sessions.values()];
  }

  get size(): number {
    return this.sessions.size;
  }
}

function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n <= 0) m.delete(key);
  else m.set(key, n);
}
