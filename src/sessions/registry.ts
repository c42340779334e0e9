import { principalKey } from '../identity/principal.js';
import type { Session } from './session.js';

/**
 * Every live session, with the counts the admission limits need. The
 * registry is the one place that lists, re-authorizes and terminates
 * sessions, whatever protocol they speak.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  private readonly perResource = new Map<string, number>();
  private readonly perPrincipal = new Map<string, number>();

  add(s: Session): void {
    this.sessions.set(s.id, s);
    bump(this.perResource, s.resource, 1);
    bump(this.perPrincipal, `${s.resource}\u0000${principalKey(s.principal)}`, 1);
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

  countForResource(resource: string): number {
    return this.perResource.get(resource) ?? 0;
  }

  countForPrincipal(resource: string, p: Session['principal']): number {
    return this.perPrincipal.get(`${resource}\u0000${principalKey(p)}`) ?? 0;
  }
}

function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n <= 0) m.delete(key);
  else m.set(key, n);
}
