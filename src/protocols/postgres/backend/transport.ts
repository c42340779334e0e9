import { connect as netConnect, isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { SSL_ACCEPTED, SSL_REFUSED } from '../codec/message-types.js';
import { sslRequest } from '../codec/frontend-serializer.js';
import { BackendError } from './errors.js';
import { destroyQuietly, socketStep } from './socket-step.js';

export interface BackendTls {
  mode: 'disable' | 'require' | 'verify-full';
  /** PEM text of the CA bundle for verify-full; the system store when absent. */
  ca?: string;
  /** Host name the certificate must carry (verify-full); defaults to `host`. */
  serverName?: string;
}

export interface TransportTarget {
  host: string;
  port: number;
  tls: BackendTls;
  connectTimeoutMs: number;
}

/** How errors name the backend: host:port, and the user when there is one; never the password. */
export function describeBackend(target: { host: string; port: number; user?: string }): string {
  const addr = isIP(target.host) === 6 ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  return target.user === undefined ? `PostgreSQL at ${addr}` : `PostgreSQL at ${addr} (user "${target.user}")`;
}

export function timeoutError(target: TransportTarget & { user?: string }, phase: string): BackendError {
  return new BackendError(
    'backend_timeout',
    `${describeBackend(target)} did not complete ${phase} within ${target.connectTimeoutMs} ms; check that the server is up and not overloaded, or raise upstream.connect_timeout`,
    '08001',
  );
}

/**
 * Opens TCP to the backend and, unless TLS is disabled, negotiates TLS with
 * SSLRequest. `require` encrypts without verifying the certificate (as
 * libpq's sslmode=require); `verify-full` checks the chain against the CA
 * and the host name.
 */
export async function openTransport(
  target: TransportTarget & { user?: string },
  signal: AbortSignal,
): Promise<{ socket: Socket; tls: boolean }> {
  const who = describeBackend(target);
  const raw = netConnect({ host: target.host, port: target.port });
  raw.setNoDelay(true);
  await socketStep<void>(raw, signal, {
    until: 'connect',
    closed: () => unreachable(who, 'the connection closed'),
    failed: (err) => unreachable(who, errorText(err), err),
    timedOut: () => timeoutError(target, 'the TCP connection'),
  });
  if (target.tls.mode === 'disable') return { socket: raw, tls: false };

  raw.write(sslRequest());
  await socketStep<void>(raw, signal, {
    data: (chunk, ok, fail) => {
      // Bytes after the answer would be read as if they came through TLS (CVE-2021-23222).
      if (chunk.length !== 1) return fail(protocolError(who, 'answered SSLRequest with unexpected extra bytes'));
      if (chunk[0] === SSL_ACCEPTED) return ok();
      if (chunk[0] === SSL_REFUSED) {
        return fail(
          new BackendError(
            'backend_tls_failed',
            `${who} does not accept TLS but upstream.tls.mode is ${target.tls.mode}; enable ssl on the server or, on a trusted network only, set tls.mode: disable`,
            '08001',
          ),
        );
      }
      fail(protocolError(who, 'answered SSLRequest with an unknown byte; is this a PostgreSQL server?'));
    },
    closed: () => unreachable(who, 'the server closed the connection during TLS negotiation', undefined, '08006'),
    failed: (err) => unreachable(who, errorText(err), err, '08006'),
    timedOut: () => timeoutError(target, 'TLS negotiation'),
  });

  const secure = tlsConnect(tlsOptions(target, raw));
  try {
    await socketStep<void>(secure, signal, {
      until: 'secureConnect',
      closed: () => tlsFailed(who, 'the server closed the connection during the TLS handshake'),
      failed: (err) => tlsFailed(who, errorText(err), err),
      timedOut: () => timeoutError(target, 'the TLS handshake'),
    });
  } catch (err) {
    destroyQuietly(raw);
    throw err;
  }
  secure.setNoDelay(true);
  return { socket: secure, tls: true };
}

function tlsOptions(target: TransportTarget, socket: Socket): ConnectionOptions {
  const name = target.tls.serverName ?? target.host;
  // RFC 6066 forbids an IP address as SNI; libpq sends none for IP hosts either.
  const servername = isIP(name) ? undefined : name;
  if (target.tls.mode === 'require') return { socket, servername, rejectUnauthorized: false };
  return {
    socket,
    servername,
    ca: target.tls.ca,
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => checkServerIdentity(name, cert),
  };
}

function unreachable(who: string, reason: string, cause?: Error, sqlstate = '08001'): BackendError {
  return new BackendError(
    'backend_unreachable',
    `cannot reach ${who}: ${reason}; check upstream.host and upstream.port and that the server is running`,
    sqlstate,
    { cause },
  );
}

function tlsFailed(who: string, reason: string, cause?: Error): BackendError {
  return new BackendError(
    'backend_tls_failed',
    `TLS with ${who} failed: ${reason}; check upstream.tls.ca and upstream.tls.server_name against the server certificate`,
    '08001',
    { cause },
  );
}

export function protocolError(who: string, reason: string): BackendError {
  return new BackendError('backend_protocol', `${who} ${reason}`, '08P01');
}

function errorText(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}
