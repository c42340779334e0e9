import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { BE, AUTH } from '../codec/message-types.js';
import { FrameReader, type Frame } from '../codec/frame-reader.js';
import {
  parseAuthentication,
  parseBackendKeyData,
  parseErrorFields,
  parseParameterStatus,
} from '../codec/backend-parser.js';
import { passwordMessage, saslInitialResponse, saslResponse, startupMessage } from '../codec/frontend-serializer.js';
import { ProtocolError } from '../codec/errors.js';
import { BackendError } from './errors.js';
import { SCRAM_SHA_256, ScramClient, ScramError } from './scram.js';
import { describeBackend, openTransport, protocolError, timeoutError, type BackendTls } from './transport.js';
import { socketStep } from './socket-step.js';

export interface BackendTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  tls: BackendTls;
  /** Deadline for the whole handshake: TCP, TLS, authentication and startup. */
  connectTimeoutMs: number;
}

export type BackendAuthMethod = 'scram-sha-256' | 'md5' | 'cleartext' | 'trust';

export interface BackendConnection {
  /** A TLSSocket when `tls`. Paused, with no listeners of ours: attach yours, then resume(). */
  socket: Socket;
  /** ParameterStatus values the server reported during startup. */
  parameters: Map<string, string>;
  /** For CancelRequest; {0, 0} if the server sent no BackendKeyData. */
  key: { pid: number; secret: number };
  tls: boolean;
  authMethod: BackendAuthMethod;
  /** Bytes that arrived after ReadyForQuery, normally empty; process them before the socket's. */
  pending: Buffer;
}

/** Startup messages are small; anything near this is not PostgreSQL. */
const MAX_STARTUP_MESSAGE = 1024 * 1024;

/**
 * Opens an authenticated session on the real PostgreSQL server with the
 * credential Sluice holds, up to the first ReadyForQuery.
 */
export async function connectBackend(target: BackendTarget, params: Record<string, string>): Promise<BackendConnection> {
  // Assigned last so that client-supplied params can never replace them; built first so a bad value fails before any socket exists.
  const startup = startupMessage({ ...params, user: target.user, database: target.database });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), target.connectTimeoutMs);
  try {
    const { socket, tls } = await openTransport(target, abort.signal);
    const session = await startSession(socket, target, startup, abort.signal);
    return { socket, tls, ...session };
  } finally {
    clearTimeout(timer);
  }
}

interface Session {
  parameters: Map<string, string>;
  key: { pid: number; secret: number };
  authMethod: BackendAuthMethod;
  pending: Buffer;
}

function startSession(socket: Socket, target: BackendTarget, startup: Buffer, signal: AbortSignal): Promise<Session> {
  const who = describeBackend(target);
  const reader = new FrameReader({ maxMessageBytes: MAX_STARTUP_MESSAGE, maxStartupBytes: MAX_STARTUP_MESSAGE });
  const parameters = new Map<string, string>();
  let key = { pid: 0, secret: 0 };
  let authMethod: BackendAuthMethod = 'trust';
  let authenticated = false;
  let scram: ScramClient | undefined;
  let busy = false;

  socket.write(startup);

  const authFailed = (reason: string, sqlstate = '28000'): BackendError =>
    new BackendError('backend_auth_failed', `${who} authentication failed: ${reason}`, sqlstate);

  const needPassword = (): string => {
    if (target.password === '') throw authFailed('the server asks for a password and none is configured for this grant');
    return target.password;
  };

  /**
   * 'ready' on ReadyForQuery, a promise while SCRAM derives its keys.
   * Synchronous otherwise, so an ErrorResponse is reported before the close
   * that follows it.
   */
  const handle = (frame: Frame): 'ready' | Promise<void> | undefined => {
    switch (frame.type) {
      case BE.ErrorResponse:
        throw fromErrorResponse(who, parseErrorFields(frame.payload), target.password);
      case BE.NoticeResponse:
      case BE.NegotiateProtocolVersion:
        return undefined;
      case BE.Authentication:
        if (authenticated) throw protocolError(who, 'sent an authentication request after AuthenticationOk');
        return authenticate(frame.payload);
    }
    if (!authenticated) throw protocolError(who, `sent message type 0x${frame.type.toString(16)} before authentication completed`);
    switch (frame.type) {
      case BE.ParameterStatus: {
        const [name, value] = parseParameterStatus(frame.payload);
        parameters.set(name, value);
        return undefined;
      }
      case BE.BackendKeyData:
        key = parseBackendKeyData(frame.payload);
        return undefined;
      case BE.ReadyForQuery:
        return 'ready';
      default:
        throw protocolError(who, `sent unexpected message type 0x${frame.type.toString(16)} during startup`);
    }
  };

  const authenticate = (payload: Buffer): Promise<void> | undefined => {
    const req = parseAuthentication(payload);
    switch (req.code) {
      case AUTH.Ok:
        if (scram && !scram.verified) throw authFailed('the server skipped the SCRAM server signature, so it did not prove it knows the password');
        authenticated = true;
        return undefined;
      case AUTH.CleartextPassword:
        authMethod = 'cleartext';
        socket.write(passwordMessage(needPassword()));
        return undefined;
      case AUTH.MD5Password:
        authMethod = 'md5';
        socket.write(passwordMessage(md5Password(target.user, needPassword(), req.salt!)));
        return undefined;
      case AUTH.SASL: {
        const mechanisms = req.mechanisms!;
        if (!mechanisms.includes(SCRAM_SHA_256)) {
          const plusOnly = mechanisms.includes('SCRAM-SHA-256-PLUS');
          throw authFailed(
            plusOnly
              ? 'the server only offers SCRAM-SHA-256-PLUS (channel binding), which Sluice does not support as a client; allow plain SCRAM-SHA-256 for this role'
              : `the server offers only SASL mechanisms Sluice does not support (${mechanisms.join(', ').slice(0, 200)})`,
          );
        }
        if (scram) throw protocolError(who, 'started SASL authentication twice');
        authMethod = 'scram-sha-256';
        scram = new ScramClient({ password: needPassword() });
        socket.write(saslInitialResponse(SCRAM_SHA_256, scram.clientFirst()));
        return undefined;
      }
      case AUTH.SASLContinue: {
        if (!scram) throw protocolError(who, 'sent SASLContinue without SASL');
        return scram.clientFinal(req.data!).then((final) => {
          socket.write(saslResponse(final));
        });
      }
      case AUTH.SASLFinal:
        if (!scram) throw protocolError(who, 'sent SASLFinal without SASL');
        scram.verifyServerFinal(req.data!);
        return undefined;
      default:
        throw authFailed(
          `the server asks for an authentication method Sluice does not support as a client (code ${req.code}: Kerberos, GSSAPI or SSPI); configure scram-sha-256 for this role in pg_hba.conf`,
        );
    }
  };

  return socketStep<Session>(socket, signal, {
    data: (chunk, ok, fail) => {
      reader.push(chunk);
      const pump = (): void => {
        if (busy || socket.destroyed) return;
        try {
          for (let frame = reader.next(); frame; frame = reader.next()) {
            const step = handle(frame);
            if (step === 'ready') return ok({ parameters, key, authMethod, pending: reader.drain() });
            if (step) {
              busy = true;
              step.then(
                () => {
                  busy = false;
                  pump();
                },
                (err: unknown) => fail(mapError(who, err)),
              );
              return;
            }
          }
        } catch (err) {
          fail(mapError(who, err));
        }
      };
      pump();
    },
    closed: () =>
      new BackendError(
        'backend_unreachable',
        `${who} closed the connection during startup; check the server log (max_connections, pg_hba.conf)`,
        '08006',
      ),
    failed: (err) => new BackendError('backend_unreachable', `connection to ${who} failed during startup: ${err.message}`, '08006', { cause: err }),
    timedOut: () => timeoutError(target, 'authentication and startup'),
  });
}

/** md5 auth: "md5" + md5(md5(password || user) || salt), hex. */
export function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password, 'utf8').update(user, 'utf8').digest('hex');
  return 'md5' + createHash('md5').update(inner, 'utf8').update(salt).digest('hex');
}

function fromErrorResponse(who: string, received: Record<string, string>, password: string): BackendError {
  const fields = Object.fromEntries(Object.entries(received).map(([k, v]) => [k, redact(v, password)]));
  const sqlstate = /^[0-9A-Z]{5}$/.test(fields.C ?? '') ? fields.C : '08P01';
  const text = fields.M ?? 'no message';
  if (sqlstate.startsWith('28')) {
    return new BackendError(
      'backend_auth_failed',
      `${who} refused the login: ${text}; check the credential Sluice holds for this grant and the server's pg_hba.conf`,
      sqlstate,
      { fields },
    );
  }
  return new BackendError('backend_rejected', `${who} refused the session: ${text}`, sqlstate, { fields });
}

function mapError(who: string, err: unknown): unknown {
  if (err instanceof ScramError) return new BackendError('backend_auth_failed', `${who} authentication failed: ${err.message}`, '28000', { cause: err });
  if (err instanceof ProtocolError) return new BackendError('backend_protocol', `${who} sent an invalid message: ${err.message}`, '08P01', { cause: err });
  return err;
}

/** PostgreSQL does not echo passwords, but a server message is not ours to trust. */
function redact(text: string, password: string): string {
  return password.length > 0 && text.includes(password) ? text.replaceAll(password, '[redacted]') : text;
}
