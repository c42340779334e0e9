import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface PemPair {
  readonly cert: string;
  readonly key: string;
}

/**
 * A self-signed P-256 certificate for localhost / 127.0.0.1 / ::1 (plus any
 * extra host names), generated once and kept in `dir` so clients that pinned
 * it keep working across restarts.
 */
export async function ensureSelfSigned(dir: string, hosts: readonly string[] = []): Promise<PemPair & { certFile: string; keyFile: string }> {
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  if (existsSync(certFile) && existsSync(keyFile)) {
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
  }
  const pair = await generateSelfSigned(hosts);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(keyFile, pair.key, { mode: 0o600 });
  writeFileSync(certFile, pair.cert, { mode: 0o644 });
  return { ...pair, certFile, keyFile };
}

export async function generateSelfSigned(hosts: readonly string[] = []): Promise<PemPair> {
  const dns = ['localhost', ...hosts.filter((h) => !/^[\d.:]+$/.test(h))];
  const ips = ['127.0.0.1', '::1', ...hosts.filter((h) => /^[\d.:]+$/.test(h))];
  const pems = await generate([{ name: 'commonName', value: 'sluice' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 825 * 86400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [...new Set(dns)].map((value) => ({ type: 2 as const, value })).concat([...new Set(ips)].map((ip) => ({ type: 7 as const, ip }) as never)),
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
