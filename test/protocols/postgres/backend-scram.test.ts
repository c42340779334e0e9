import { describe, expect, it } from 'vitest';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { ScramClient, ScramError, saslprep } from '../../../src/protocols/postgres/backend/scram.js';
import { md5Password } from '../../../src/protocols/postgres/backend/connect.js';

// RFC 7677 section 3.
const RFC = {
  user: 'user',
  password: 'pencil',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

function rfcClient(): ScramClient {
  return new ScramClient({ password: RFC.password, username: RFC.user, nonce: RFC.clientNonce });
}

async function atFinal(): Promise<ScramClient> {
  const c = rfcClient();
  c.clientFirst();
  await c.clientFinal(Buffer.from(RFC.serverFirst));
  return c;
}

describe('ScramClient', () => {
  it('reproduces the RFC 7677 exchange and verifies the server', async () => {
    const c = rfcClient();
    expect(c.clientFirst().toString()).toBe(RFC.clientFirst);
    expect((await c.clientFinal(Buffer.from(RFC.serverFirst))).toString()).toBe(RFC.clientFinal);
    expect(c.verified).toBe(false);
    c.verifyServerFinal(Buffer.from(RFC.serverFinal));
    expect(c.verified).toBe(true);
  });

  it('uses an empty SCRAM user name and a fresh nonce by default, as libpq does', () => {
    const a = new ScramClient({ password: 'x' }).clientFirst().toString();
    const b = new ScramClient({ password: 'x' }).clientFirst().toString();
    expect(a).toMatch(/^n,,n=,r=[A-Za-z0-9+/=]{24}$/);
    expect(a).not.toBe(b);
  });

  it('refuses a wrong server signature', async () => {
    const c = await atFinal();
    const bad = Buffer.from(RFC.serverFinal.slice(2), 'base64');
    bad[0] ^= 1;
    expect(() => c.verifyServerFinal(Buffer.from(`v=${bad.toString('base64')}`))).toThrow(/signature does not match/);
    expect(c.verified).toBe(false);
  });

  it.each([
    ['an error attribute', 'e=invalid-proof'],
    ['no signature', 'x=1'],
    ['a signature that is not base64', 'v=***'],
    ['a truncated signature', 'v=6rriTRBi23WpRR/wtup+mA=='],
    ['garbage', 'garbage'],
    ['nothing', ''],
  ])('refuses a server-final-message with %s', async (_name, msg) => {
    const c = await atFinal();
    expect(() => c.verifyServerFinal(Buffer.from(msg))).toThrow(ScramError);
  });

  it.each([
    ['a nonce that does not extend ours', 'r=somebodyelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'],
    ['a nonce equal to ours', `r=${RFC.clientNonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
    ['no salt', `r=${RFC.clientNonce}x,i=4096`],
    ['a salt that is not base64', `r=${RFC.clientNonce}x,s=@@,i=4096`],
    ['zero iterations', `r=${RFC.clientNonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0`],
    ['iterations beyond the limit', `r=${RFC.clientNonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=999999999`],
    ['a mandatory extension', `m=ext,r=${RFC.clientNonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
    ['a repeated attribute', `r=${RFC.clientNonce}x,r=${RFC.clientNonce}y,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
    ['garbage', 'not scram at all'],
  ])('refuses a server-first-message with %s', async (_name, msg) => {
    const c = rfcClient();
    c.clientFirst();
    await expect(c.clientFinal(Buffer.from(msg))).rejects.toBeInstanceOf(ScramError);
  });

  it('refuses messages out of order', async () => {
    const c = rfcClient();
    await expect(c.clientFinal(Buffer.from(RFC.serverFirst))).rejects.toBeInstanceOf(ScramError);
    expect(() => c.verifyServerFinal(Buffer.from(RFC.serverFinal))).toThrow(ScramError);
    c.clientFirst();
    expect(() => c.clientFirst()).toThrow(ScramError);
  });

  it('does not put the password in its errors', async () => {
    const c = new ScramClient({ password: 'top-secret-pw', nonce: 'abc' });
    c.clientFirst();
    await c.clientFinal(Buffer.from('r=abcdef,s=c2FsdA==,i=1'));
    let message = '';
    try {
      c.verifyServerFinal(Buffer.from('e=other-error'));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/SCRAM error/);
    expect(message).not.toContain('top-secret-pw');
  });
});

describe('saslprep', () => {
  it('uses ASCII passwords unchanged, even with control characters', () => {
    expect(saslprep('pencil')).toBe('pencil');
    expect(saslprep('tab\there')).toBe('tab\there');
  });

  it('maps non-ASCII spaces and soft hyphens, and normalises to NFKC', () => {
    expect(saslprep('a\u00A0b')).toBe('a b');
    expect(saslprep('I\u00ADX')).toBe('IX');
    expect(saslprep('\u2168')).toBe('IX');
    expect(saslprep('\u00AA')).toBe('a');
  });

  it('falls back to the raw password when the prepared form is prohibited, as PostgreSQL does', () => {
    expect(saslprep('é\u0007')).toBe('é\u0007');
    expect(saslprep('\u00AD')).toBe('\u00AD');
  });

  it('derives the same proof PostgreSQL stores for a non-ASCII password', async () => {
    // The server stores keys derived from the prepared password; the client must derive the same.
    const password = 'pa\u00A0ss\u2168';
    const salt = Buffer.from('saltsalt');
    const salted = pbkdf2Sync('pa ssIX', salt, 4096, 32, 'sha256');
    const serverKey = createHmac('sha256', salted).update('Server Key').digest();
    const c = new ScramClient({ password, nonce: 'n1' });
    const first = c.clientFirst().toString().slice(3);
    const serverFirst = `r=n1srv,s=${salt.toString('base64')},i=4096`;
    const final = (await c.clientFinal(Buffer.from(serverFirst))).toString();
    const authMessage = `${first},${serverFirst},${final.slice(0, final.indexOf(',p='))}`;
    c.verifyServerFinal(Buffer.from(`v=${createHmac('sha256', serverKey).update(authMessage).digest('base64')}`));
    expect(c.verified).toBe(true);
  });
});

describe('md5Password', () => {
  it('is md5 of (md5 of password and user) and salt', () => {
    const salt = Buffer.from([1, 2, 3, 4]);
    const inner = createHash('md5').update('secretalice').digest('hex');
    const outer = createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
    expect(md5Password('alice', 'secret', salt)).toBe(`md5${outer}`);
  });
});
