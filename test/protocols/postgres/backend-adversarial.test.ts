import { afterEach, describe, expect, it } from 'vitest';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { connectBackend, type BackendTarget } from '../../../src/protocols/postgres/backend/connect.js';
import { BackendError } from '../../../src/protocols/postgres/backend/errors.js';
import { FrameReader, type Frame } from '../../../src/protocols/postgres/codec/frame-reader.js';
import { AUTH, BE } from '../../../src/protocols/postgres/codec/message-types.js';
import { parseStartupPacket } from '../../../src/protocols/postgres/codec/frontend-parser.js';
import { authenticationOk, backendKeyData, errorResponse, noticeResponse, parameterStatus, readyForQuery } from '../../../src/protocols/postgres/codec/backend-serializer.js';

/**
 * A scripted server on a real socket, for the misbehaviour a real PostgreSQL
 * never shows: it checks that Sluice refuses servers that skip or fake steps.
 */
class FakeConn {
  private readonly reader = new FrameReader({ maxMessageBytes: 1 << 20, maxStartupBytes: 10_000 });
  private wake: (() => void) | undefined;
  constructor(readonly socket: Socket) {
    socket.on('error', () => {});
    socket.on('data', (c: Buffer) => {
      this.reader.push(c);
      this.wake?.();
    });
  }
  private async wait<T>(get: () => T | undefined): Promise<T> {
    for (;;) {
      const v = get();
      if (v !== undefined) return v;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
  startup(): Promise<Buffer> {
    return this.wait(() => this.reader.nextStartup());
  }
  frame(): Promise<Frame> {
    return this.wait(() => this.reader.next());
  }
  write(...bufs: Buffer[]): void {
    this.socket.write(Buffer.concat(bufs));
  }
}

function auth(code: number, extra: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = Buffer.concat([Buffer.alloc(4), typeof extra === 'string' ? Buffer.from(extra, 'latin1') : extra]);
  body.writeInt32BE(code, 0);
  const head = Buffer.alloc(5);
  head[0] = BE.Authentication;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function fake(script: (c: FakeConn) => Promise<void>): Promise<number> {
  const server = createServer((s) => {
    script(new FakeConn(s)).catch(() => s.destroy());
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

const PASSWORD = 'fake-server-pw-77';

function target(port: number, over: Partial<BackendTarget> = {}): BackendTarget {
  return { host: '127.0.0.1', port, database: 'db', user: 'alice', password: PASSWORD, tls: { mode: 'disable' }, connectTimeoutMs: 5000, ...over };
}

async function failure(port: number, over: Partial<BackendTarget> = {}): Promise<BackendError> {
  const err = await connectBackend(target(port, over), {}).then(
    (c) => {
      c.socket.destroy();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackendError);
  expect((err as Error).message).not.toContain(PASSWORD);
  return err as BackendError;
}

const ready = (): Buffer => Buffer.concat([backendKeyData(4711, 0x80000001), parameterStatus('server_version', '15.0'), readyForQuery('I')]);

/** A SCRAM server that answers correctly up to server-final, which `final` may tamper with. */
function scramServer(final: (good: string) => Buffer | null): (c: FakeConn) => Promise<void> {
  return async (c) => {
    await c.startup();
    c.write(auth(AUTH.SASL, 'SCRAM-SHA-256\0\0'));
    const init = (await c.frame()).payload;
    const mechEnd = init.indexOf(0);
    const clientFirst = init.subarray(mechEnd + 5).toString();
    const clientFirstBare = clientFirst.slice(3);
    const nonce = /r=([^,]+)/.exec(clientFirstBare)![1] + 'server';
    const salt = Buffer.from('0123456789abcdef');
    const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=4096`;
    c.write(auth(AUTH.SASLContinue, serverFirst));
    const clientFinal = (await c.frame()).payload.toString();
    const withoutProof = clientFinal.slice(0, clientFinal.indexOf(',p='));
    const salted = pbkdf2Sync(PASSWORD, salt, 4096, 32, 'sha256');
    const serverKey = createHmac('sha256', salted).update('Server Key').digest();
    const sig = createHmac('sha256', serverKey).update(`${clientFirstBare},${serverFirst},${withoutProof}`).digest('base64');
    const tampered = final(`v=${sig}`);
    if (tampered) c.write(tampered);
    c.write(authenticationOk(), ready());
  };
}

describe('connectBackend against misbehaving servers', () => {
  it('accepts a well-behaved SCRAM server (the fake itself is sound)', async () => {
    const port = await fake(scramServer((good) => auth(AUTH.SASLFinal, good)));
    const c = await connectBackend(target(port), {});
    expect(c.authMethod).toBe('scram-sha-256');
    expect(c.key).toEqual({ pid: 4711, secret: 0x80000001 });
    c.socket.destroy();
  });

  it('refuses a server whose SCRAM signature is wrong', async () => {
    const port = await fake(scramServer(() => auth(AUTH.SASLFinal, `v=${Buffer.alloc(32, 1).toString('base64')}`)));
    const err = await failure(port);
    expect(err.code).toBe('backend_auth_failed');
    expect(err.sqlstate).toBe('28000');
    expect(err.message).toMatch(/does not know the password/);
  });

  it('refuses a server that skips the SCRAM server-final-message', async () => {
    const port = await fake(scramServer(() => null));
    const err = await failure(port);
    expect(err.code).toBe('backend_auth_failed');
    expect(err.message).toMatch(/did not prove/);
  });

  it('refuses a server offering only SCRAM-SHA-256-PLUS with a clear reason', async () => {
    const port = await fake(async (c) => {
      await c.startup();
      c.write(auth(AUTH.SASL, 'SCRAM-SHA-256-PLUS\0\0'));
    });
    const err = await failure(port);
    expect(err.code).toBe('backend_auth_failed');
    expect(err.message).toMatch(/channel binding/);
  });

  it.each([
    ['GSSAPI', AUTH.GSS],
    ['SSPI', AUTH.SSPI],
    ['Kerberos V5', AUTH.KerberosV5],
  ])('refuses %s authentication', async (_name, code) => {
    const port = await fake(async (c) => {
      await c.startup();
      c.write(auth(code));
    });
    expect((await failure(port)).code).toBe('backend_auth_failed');
  });

  it('logs in to a trust server and keeps bytes that came after ReadyForQuery', async () => {
    const extra = noticeResponse({ severity: 'NOTICE', code: '00000', message: 'hello' });
    let params: Array<[string, string]> = [];
    const port = await fake(async (c) => {
      const p = parseStartupPacket(await c.startup());
      if (p.kind === 'startup') params = p.params;
      c.write(authenticationOk(), ready(), extra);
    });
    const c = await connectBackend(target(port), { application_name: 'x', user: 'mallory' });
    expect(c.authMethod).toBe('trust');
    expect(c.parameters.get('server_version')).toBe('15.0');
    expect(c.pending.equals(extra)).toBe(true);
    expect(params).toEqual([
      ['application_name', 'x'],
      ['user', 'alice'],
      ['database', 'db'],
    ]);
    c.socket.destroy();
  });

  it('sends the md5 hash the server expects', async () => {
    const salt = Buffer.from([9, 8, 7, 6]);
    let received = '';
    const port = await fake(async (c) => {
      await c.startup();
      c.write(auth(AUTH.MD5Password, salt));
      received = (await c.frame()).payload.toString().replace(/\0$/, '');
      c.write(authenticationOk(), ready());
    });
    const c = await connectBackend(target(port), {});
    const inner = createHash('md5').update(PASSWORD + 'alice').digest('hex');
    expect(received).toBe('md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex'));
    c.socket.destroy();
  });

  it('refuses to answer a password request when no password is configured', async () => {
    const port = await fake(async (c) => {
      await c.startup();
      c.write(auth(AUTH.CleartextPassword));
    });
    const err = await failure(port, { password: '' });
    expect(err.code).toBe('backend_auth_failed');
    expect(err.message).toMatch(/none is configured/);
  });

  it('redacts the password should a server echo it', async () => {
    const port = await fake(async (c) => {
      await c.startup();
      c.write(auth(AUTH.CleartextPassword));
      const pw = (await c.frame()).payload.toString().replace(/\0$/, '');
      c.write(errorResponse({ severity: 'FATAL', code: '28P01', message: `password "${pw}" is wrong`, detail: pw }));
    });
    const err = await failure(port);
    expect(err.sqlstate).toBe('28P01');
    expect(err.message).toContain('[redacted]');
    expect(JSON.stringify(err.fields)).not.toContain(PASSWORD);
  });

  it('passes a non-authentication SQLSTATE through', async () => {
    const port = await fake(async (c) => {
      await c.startup();
      c.write(errorResponse({ severity: 'FATAL', code: '53300', message: 'sorry, too many clients already' }));
    });
    const err = await failure(port);
    expect(err.code).toBe('backend_rejected');
    expect(err.sqlstate).toBe('53300');
  });

  it.each([
    ['ParameterStatus before authentication', () => Buffer.concat([parameterStatus('a', 'b')])],
    ['ReadyForQuery before authentication', () => readyForQuery('I')],
    ['a negative message length', () => Buffer.from([BE.Authentication, 0xff, 0xff, 0xff, 0xf0])],
    ['a message longer than any startup message', () => Buffer.from([BE.ParameterStatus, 0x10, 0, 0, 0])],
    ['a malformed authentication request', () => auth(AUTH.MD5Password, Buffer.from([1]))],
    ['a second authentication after AuthenticationOk', () => Buffer.concat([authenticationOk(), auth(AUTH.CleartextPassword)])],
    ['an unexpected message type after authentication', () => Buffer.concat([authenticationOk(), Buffer.from([BE.DataRow, 0, 0, 0, 6, 0, 0])])],
  ])('refuses %s as a protocol error', async (_name, msg) => {
    const port = await fake(async (c) => {
      await c.startup();
      c.write(msg());
    });
    const err = await failure(port);
    expect(err.code).toBe('backend_protocol');
    expect(err.sqlstate).toBe('08P01');
  });

  it('reports a server that hangs up during startup', async () => {
    const port = await fake(async (c) => {
      await c.startup();
      c.socket.end();
    });
    expect((await failure(port)).code).toBe('backend_unreachable');
  });

  it('refuses plaintext bytes smuggled after the TLS acceptance (CVE-2021-23222)', async () => {
    const port = await fake(async (c) => {
      await c.startup();
      c.write(Buffer.from('S'), authenticationOk(), ready());
    });
    const err = await failure(port, { tls: { mode: 'require' } });
    // Arriving with the 'S' they are refused outright; arriving later they would be fed to TLS and fail the handshake.
    expect(['backend_protocol', 'backend_tls_failed']).toContain(err.code);
  });

  it('refuses a server that declines TLS when TLS is required', async () => {
    const port = await fake(async (c) => {
      await c.startup();
      c.write(Buffer.from('N'));
    });
    const err = await failure(port, { tls: { mode: 'require' } });
    expect(err.code).toBe('backend_tls_failed');
    expect(err.message).toMatch(/does not accept TLS/);
  });

  it('refuses an answer to SSLRequest that is neither S nor N', async () => {
    const port = await fake(async (c) => {
      await c.startup();
      c.write(Buffer.from('E'));
    });
    expect((await failure(port, { tls: { mode: 'verify-full' } })).code).toBe('backend_protocol');
  });

  it('reports a TLS handshake with something that is not TLS', async () => {
    const port = await fake(async (c) => {
      await c.startup();
      c.write(Buffer.from('S'));
      await new Promise((r) => setTimeout(r, 20));
      c.write(Buffer.from('this is not a TLS ServerHello\n'.repeat(4)));
    });
    expect((await failure(port, { tls: { mode: 'require' } })).code).toBe('backend_tls_failed');
  });
});
