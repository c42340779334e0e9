import { createSecureContext } from 'node:tls';
import { join } from 'node:path';
import { parseHostPort, resolveCredentials } from '../config/load.js';
import type { SluiceConfig } from '../config/schema.js';
import { resolveSecret } from '../config/secrets.js';
import { TokenAuthenticator } from '../identity/authenticator.js';
import { DevIssuer } from '../identity/dev-issuer.js';
import type { Keyring } from '../keys/keyring.js';
import { ensureSelfSigned } from '../tls/self-signed.js';
import type { GatewayState } from './state.js';

/** The base URL of the HTTP listener as people and tools reach it. */
export function publicUrl(config: SluiceConfig): string {
  if (config.server.public_url) return config.server.public_url.replace(/\/+$/, '');
  const scheme = config.server.http.tls ? 'https' : 'http';
  return `${scheme}://${config.server.http.listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:')}`;
}

export function devIssuerFor(config: SluiceConfig, keyring: Keyring): DevIssuer | undefined {
  const dev = config.identity.dev_issuer;
  if (!dev.enabled) return undefined;
  return new DevIssuer(keyring, { issuer: `${publicUrl(config)}/dev`, audience: dev.audience, ttlSeconds: dev.token_ttl });
}

/** Server certificate and key as PEM, from secret references or the self-signed pair in the data directory. */
export async function serverTlsPems(config: SluiceConfig): Promise<{ cert: string; key: string } | undefined> {
  const t = config.server.tls;
  if (t.cert && t.key) return { cert: resolveSecret(t.cert, 'server.tls.cert'), key: resolveSecret(t.key, 'server.tls.key') };
  if (t.self_signed) {
    return ensureSelfSigned(join(config.store.data_dir, 'tls'), [parseHostPort(config.server.postgres.listen).host]);
  }
  return undefined;
}

/**
 * Builds everything a configuration version implies: resolved secrets, TLS,
 * the authenticator. Throws (and changes nothing) when any part fails, so a
 * bad reload keeps the old state.
 */
export async function buildState(config: SluiceConfig, keyring: Keyring, previous?: GatewayState): Promise<GatewayState> {
  const credentials = resolveCredentials(config);
  const backendCas = new Map<string, string>();
  config.resources.forEach((r, i) => {
    if (r.upstream.tls.ca) backendCas.set(r.name, resolveSecret(r.upstream.tls.ca, `resources[${i}].upstream.tls.ca`));
  });
  const pems = await serverTlsPems(config);
  const tls = pems ? createSecureContext({ cert: pems.cert, key: pems.key, minVersion: 'TLSv1.2' }) : undefined;
  const authenticator = new TokenAuthenticator({
    issuers: config.identity.issuers,
    clockSkewSeconds: config.identity.clock_skew,
    devIssuer: devIssuerFor(config, keyring),
    previous: previous?.authenticator instanceof TokenAuthenticator ? previous.authenticator : undefined,
  });
  return {
    config,
    authenticator,
    resources: new Map(config.resources.map((r) => [r.name, r])),
    credentials,
    backendCas,
    tls,
  };
}
