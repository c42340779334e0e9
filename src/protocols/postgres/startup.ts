import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { AuthenticationError, SluiceError } from '../../errors.js';
import type { AuditEventInput } from '../../events/types.js';
import { principalRef, type Principal } from '../../identity/principal.js';
import { accessGrantsOf, authorizeSession } from '../../runtime/authorize-session.js';
import { connectBackend, type BackendConnection, type BackendTarget } from './backend/connect.js';
import { backendTarget } from './backend/target.js';
import { sendCancel } from './backend/cancel.js';
import { authenticationCleartextPassword, authenticationOk, backendKeyData, errorResponse, parameterStatus, readyForQuery } from './codec/backend-serializer.js';
import { ProtocolError } from './codec/errors.js';
import { FrameReader } from './codec/frame-reader.js';
import { parsePassword, parseStartupPacket } from './codec/frontend-parser.js';
import { FE } from './codec/message-types.js';
import type { Reservation } from '../../sessions/registry.js';
import type { CancelEntry, CancelKeys } from './cancel-keys.js';
import type { PostgresAdapterContext } from './context.js';
import { Incoming } from './incoming.js';
import { PostgresSession } from './session-relay.js';
import { checkStartupParams, type StartupRequest } from './startup-params.js';
import { typeOidsByName } from './type-oids.js';
import { maskingPlanFor } from '../../masking/rules.js';
import type { GatewayState } from '../../runtime/state.js';
import type { ActiveAccess } from '../../approvals/service.js';
import { SessionMasker } from './masking/session-masker.js';

/** A refusal sent to the client as a FATAL ErrorResponse and recorded as session.refused. */
class Refusal extends SluiceError {
  constructor(
    code: string,
    readonly sqlstate: string,
    message: string,
  ) {
    super(code, message);
  }
}

/** PostgreSQL's own bound on an authentication message (PG_MAX_AUTH_TOKEN_LENGTH); identity tokens are far smaller. */
const MAX_TOKEN_BYTES = 65_535;

export interface StartupDeps {
  readonly ctx: PostgresAdapterContext;
  readonly cancelKeys: CancelKeys;
  readonly onSession: (s: PostgresSession, reservation: Reservation) => void;
  readonly onSessionClosed: (s: PostgresSession) => void;
}

/**
 * Runs the startup phase of one client connection: TLS negotiation, the
 * startup packet, the token as password, authorization, the backend
 * connection, and Sluice's own AuthenticationOk/BackendKeyData. On success it
 * hands the connection to a PostgresSession; on failure the client gets a
 * FATAL ErrorResponse naming the check that failed, never the token.
 */
export async function runStartup(raw: Socket, deps: StartupDeps): Promise<void> {
  const { ctx } = deps;
  const cfg = ctx.state().config.server.postgres;
  const reader = new FrameReader({ maxMessageBytes: cfg.max_message_bytes, maxStartupBytes: cfg.max_startup_bytes });
  const incoming = new Incoming(reader, cfg.max_startup_bytes + MAX_TOKEN_BYTES);
  const clientAddress = `${raw.remoteAddress ?? '?'}:${raw.remotePort ?? 0}`;
  let socket: Socket = raw;
  let tls = false;
  let principal: Principal | undefined;
  let request: StartupRequest | undefined;
  let backend: BackendConnection | undefined;
  let reservation: Reservation | undefined;
  incoming.attach(raw);
  // Also bounds the TLS handshake, during which no read is pending on `incoming`.
  const deadline = new AbortController();
  const timer = setTimeout(() => {
    const err = new Refusal('auth_timeout', '08P01', `authentication did not finish within ${cfg.auth_timeout} s`);
    deadline.abort(err);
    incoming.abort(err);
  }, cfg.auth_timeout * 1000);
  timer.unref();

  try {
    let params: Array<[string, string]> | undefined;
    while (!params) {
      const packet = parseStartupPacket(await incoming.nextStartup());
      switch (packet.kind) {
        case 'ssl': {
          if (tls) throw new ProtocolError('ssl_request_repeated', 'SSLRequest received inside TLS');
          if (reader.buffered > 0) {
            // Bytes behind SSLRequest would be read as if they came through TLS (CVE-2021-23214).
            throw new ProtocolError('ssl_request_trailing_data', 'data received after SSLRequest before the TLS handshake');
          }
          const secureContext = ctx.state().tls;
          if (!secureContext) {
            raw.write('N');
            break;
          }
          incoming.detach();
          raw.write('S');
          socket = await upgrade(raw, secureContext, deadline.signal);
          tls = true;
          incoming.attach(socket);
          break;
        }
        case 'gssenc':
          if (reader.buffered > 0) throw new ProtocolError('gssenc_trailing_data', 'data received after GSSENCRequest');
          socket.write('N');
          break;
        case 'cancel': {
          const entry = deps.cancelKeys.lookup(packet.pid, packet.secret);
          clearTimeout(timer);
          incoming.detach();
          socket.end();
          if (!entry) {
            ctx.metrics.refusals.labels('postgres', 'cancel_key_unknown').inc();
            ctx.log.debug({ clientAddress }, 'cancel request with an unknown key ignored');
            return;
          }
          // A statement waiting for approval is not running on the backend: the wait itself is what gets cancelled.
          if (entry.session?.cancelHeld()) return;
          await sendCancel(entry.target, entry.backendKey).catch((err: Error) => ctx.log.warn({ err: err.message }, 'cancel request to the backend failed'));
          return;
        }
        case 'startup':
          params = packet.params;
          break;
      }
    }

    if (!tls && !ctx.state().config.server.postgres.allow_plaintext) {
      throw new Refusal('tls_required', '28000', 'Sluice accepts tokens only over TLS: connect with sslmode=require (or verify-full)');
    }
    const checked = checkStartupParams(params);
    if (!checked.ok) throw new Refusal(checked.code, checked.sqlstate, checked.message);
    request = checked.request;

    socket.write(authenticationCleartextPassword());
    const frame = await incoming.nextFrame();
    if (frame.type !== FE.Password) throw new ProtocolError('password_expected', 'expected a password message with the token');
    const token = parsePassword(frame.payload);
    if (!token) throw new Refusal('token_missing', '28000', 'no token given: pass your identity token as the password (PGPASSWORD)');

    const state = ctx.state();
    try {
      principal = await state.authenticator.authenticate(token);
    } catch (err) {
      if (err instanceof AuthenticationError) throw new Refusal(err.code, '28000', `authentication failed: ${err.message}`);
      throw err;
    }
    let active = readActiveAccess(ctx, principal, request.resource);
    const authorized = authorizeSession(state, principal, request.resource, request.grant, Math.floor(Date.now() / 1000), accessGrantsOf(active));
    if (!authorized.ok) throw new Refusal(authorized.code, authorized.sqlstate, authorized.message);
    const { resource, credential } = authorized;
    const reserved = ctx.registry.reserve(resource.name, principal, {
      maxSessions: resource.limits.max_sessions,
      maxPerPrincipal: resource.limits.max_sessions_per_principal,
    });
    if (!reserved.ok) {
      throw reserved.limit === 'resource'
        ? new Refusal('resource_session_limit', '53300', `resource "${resource.name}" has reached its limit of ${resource.limits.max_sessions} sessions; try again later`)
        : new Refusal(
            'principal_session_limit',
            '53300',
            `you have reached the limit of ${resource.limits.max_sessions_per_principal} sessions on resource "${resource.name}"; close some and try again`,
          );
    }
    reservation = reserved.reservation;

    const target = backendTarget(resource, credential, state.backendCas.get(resource.name));
    const t0 = performance.now();
    try {
      backend = await connectBackend(target, request.forwarded);
    } catch (err) {
      ctx.log.error({ resource: resource.name, code: (err as SluiceError).code, err: (err as Error).message }, 'backend connection failed');
      throw new Refusal('backend_unavailable', '08001', `Sluice could not connect to resource "${resource.name}"; try again later or tell the Sluice operator`);
    }
    ctx.metrics.backendConnect.labels(resource.name).observe((performance.now() - t0) / 1000);
    // Until the session takes the socket over, a reset must not surface as an unhandled 'error'.
    backend.socket.on('error', () => undefined);

    // The client may have left (or the deadline passed) while the token was checked and the backend connected.
    incoming.throwIfFailed();
    // A reload during all that did not see this session yet: hold it to the configuration now in force.
    const current = ctx.state();
    let decided = authorized;
    if (current !== state) {
      active = readActiveAccess(ctx, principal, resource.name);
      const again = authorizeSession(current, principal, resource.name, request.grant, Math.floor(Date.now() / 1000), accessGrantsOf(active));
      if (!again.ok) throw new Refusal(again.code, again.sqlstate, again.message);
      decided = again;
    }
    const id = randomUUID();
    const endsAt = decided.endsAt !== undefined ? new Date(decided.endsAt * 1000) : undefined;
    const access = active.find((a) => a.requestId === decided.accessRequest);
    try {
      // The use of a time-boxed grant is on record before the session it opens.
      if (access) await ctx.approvals.accessUsed(access, id, principalRef(principal), resource.name);
      await ctx.events.record([
        {
          type: 'session.opened',
          time: new Date().toISOString(),
          sessionId: id,
          principal: principalRef(principal),
          resource: resource.name,
          data: {
            grant: request.grant,
            policy: decided.policy,
            ...(access ? { accessRequest: access.requestId } : {}),
            groups: principal.groups,
            clientAddress,
            tls,
            applicationName: request.applicationName,
            tokenExpiresAt: new Date(principal.expiresAt * 1000).toISOString(),
            ...(endsAt ? { endsAt: endsAt.toISOString() } : {}),
          },
        },
      ]);
    } catch {
      ctx.metrics.auditFailures.inc();
      throw new Refusal('audit_unavailable', '58000', 'the audit log cannot record new sessions right now; try again later and tell the Sluice operator');
    }
    clearTimeout(timer);
    incoming.detach();

    const cancelEntry: CancelEntry = { target, backendKey: backend.key };
    const ourKey = deps.cancelKeys.issue(cancelEntry);
    const hello: Buffer[] = [authenticationOk()];
    for (const [name, value] of backend.parameters) hello.push(parameterStatus(name, value));
    hello.push(backendKeyData(ourKey.pid, ourKey.secret), readyForQuery('I'));
    socket.write(Buffer.concat(hello));

    const session = new PostgresSession(
      ctx,
      {
        id,
        principal,
        resource: resource.name,
        grant: request.grant,
        policy: decided.policy,
        // An end set by the grant's expiry is armed below with its own message.
        endsAt: decided.endReason ? undefined : endsAt,
        clientAddress,
        tls,
        applicationName: request.applicationName,
        client: socket,
        clientReader: reader,
        backend,
        redactTypeOids: typeOidsByName(resource.redact_parameters),
        ...masking(ctx, current, principal, resource.name, target),
      },
      (s) => {
        deps.cancelKeys.release(ourKey);
        deps.onSessionClosed(s);
      },
    );
    cancelEntry.session = session;
    if (endsAt && decided.endReason) session.limitEnd(endsAt, decided.endReason);
    deps.onSession(session, reservation);
    // A close that happened between the check above and the handover was seen by no one: end the session now.
    if (socket.destroyed) {
      session.terminate({ code: 'client_disconnected', sqlstate: '08006', message: 'the client closed the connection while its session was being opened' });
    } else if (backend.socket.destroyed) {
      session.terminate({ code: 'backend_closed', sqlstate: '08006', message: `the connection to resource "${resource.name}" closed while the session was being opened; reconnect` });
    }
  } catch (err) {
    clearTimeout(timer);
    incoming.detach();
    backend?.socket.destroy();
    reservation?.release();
    refuse(socket, err, deps, { clientAddress, tls, principal, request });
  }
}

/** Approved time-boxed grants of the principal on the resource; an unreadable approval store refuses the connection. */
function readActiveAccess(ctx: PostgresAdapterContext, principal: Principal, resource: string): ActiveAccess[] {
  try {
    return ctx.approvals.activeAccess(principal, resource);
  } catch (err) {
    ctx.log.error({ resource, err: String(err) }, 'could not read access grants');
    throw new Refusal('approvals_unavailable', '58000', 'Sluice cannot read access grants right now; try again later and tell the Sluice operator');
  }
}

/** The TLS handshake after 'S'. A failed or abandoned handshake destroys the connection: no plaintext error can follow it. */
/** The session's masker when a masking policy covers the principal on the resource; it reads the catalog with the session's credential. */
function masking(ctx: PostgresAdapterContext, state: GatewayState, principal: Principal, resource: string, target: BackendTarget): { masker?: SessionMasker; maxMaskedMessageBytes?: number } {
  const plan = maskingPlanFor(state.config.policies, principal, resource);
  if (!plan) return {};
  return {
    masker: new SessionMasker(plan, ctx.maskingKey, ctx.catalogs, resource, target),
    maxMaskedMessageBytes: state.config.server.postgres.max_message_bytes,
  };
}

function upgrade(raw: Socket, secureContext: import('node:tls').SecureContext, signal: AbortSignal): Promise<TLSSocket> {
  return new Promise((resolveTls, reject) => {
    const s = new TLSSocket(raw, { isServer: true, secureContext });
    const settle = () => {
      s.removeListener('error', fail);
      s.removeListener('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error) => {
      settle();
      s.destroy();
      raw.destroy();
      reject(err);
    };
    const onAbort = () => fail(signal.reason as Error);
    const onClose = () => fail(new ProtocolError('client_disconnected', 'the client closed the connection during the TLS handshake'));
    s.once('secure', () => {
      settle();
      resolveTls(s);
    });
    s.once('error', fail);
    s.once('close', onClose);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

function refuse(
  socket: Socket,
  err: unknown,
  deps: StartupDeps,
  at: { clientAddress: string; tls: boolean; principal?: Principal; request?: StartupRequest },
): void {
  const { ctx } = deps;
  let code: string;
  let sqlstate: string;
  let message: string;
  if (err instanceof Refusal) {
    ({ code, sqlstate, message } = err);
  } else if (err instanceof ProtocolError) {
    code = err.code;
    sqlstate = err.sqlstate;
    message = err.message;
  } else {
    code = 'client_error';
    sqlstate = '08006';
    message = 'connection failed';
    ctx.log.debug({ err: String(err) }, 'connection ended during startup');
  }
  ctx.metrics.refusals.labels('postgres', code).inc();
  if (code !== 'client_disconnected' && code !== 'client_error') {
    const event: AuditEventInput = {
      type: 'session.refused',
      time: new Date().toISOString(),
      ...(at.principal ? { principal: principalRef(at.principal) } : {}),
      ...(at.request ? { resource: at.request.resource } : {}),
      data: { reason: code, message, clientAddress: at.clientAddress, tls: at.tls, ...(at.request ? { grant: at.request.grant } : {}) },
    };
    void ctx.events.record([event], { defer: true }).catch(() => ctx.metrics.auditFailures.inc());
    ctx.log.info({ reason: code, clientAddress: at.clientAddress }, 'connection refused');
  }
  if (!socket.destroyed && socket.writable) socket.end(errorResponse({ severity: 'FATAL', code: sqlstate, message }));
  setTimeout(() => socket.destroy(), 2000).unref();
}
