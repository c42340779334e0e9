import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { configReferenceTable } from '../../src/config/reference.js';
import { loadConfigFile, resolveCredentials, validateConfig } from '../../src/config/load.js';
import { parseDuration } from '../../src/config/duration.js';
import { resolveSecret } from '../../src/config/secrets.js';
import { issuesOf } from '../support/config-issues.js';

const resource = {
  name: 'orders',
  type: 'postgres',
  upstream: { host: 'db.internal', port: 5432, database: 'orders' },
  credentials: { read: { user: 'ro', password: '${env:ORDERS_RO}' } },
};
const base = { server: { tls: { self_signed: true } }, resources: [resource] };


describe('configuration', () => {
  it('fills embedded defaults for an almost empty file', () => {
    const cfg = validateConfig({ server: { tls: { self_signed: true } } });
    expect(cfg.server.postgres.listen).toBe('127.0.0.1:6432');
    expect(cfg.server.postgres.allow_plaintext).toBe(false);
    expect(cfg.store).toMatchObject({ type: 'sqlite', data_dir: './sluice-data', synchronous: 'normal' });
    expect(cfg.identity.dev_issuer.enabled).toBe(false);
    expect(cfg.identity.clock_skew).toBe(60);
  });

  it.each([
    [{ ...base, resources: [{ ...resource, upstream: { ...resource.upstream, port: 'x' } }] }, 'resources[0].upstream.port: expected a number'],
    [{ ...base, resources: [{ ...resource, credentials: { read: { user: 'ro', password: 'hunter2' } } }] }, 'resources[0].credentials.read.password: expected a secret reference'],
    [{ ...base, resources: [{ ...resource, credentials: { owner: { user: 'x', password: '${env:X}' } } }] }, 'resources[0].credentials'],
    [{ ...base, resoures: [] }, 'unknown key resoures'],
    [{ ...base, server: { tls: { self_signed: true }, postgres: { listen: '0.0.0.0:6432', allow_plaintext: true } } }, 'server.postgres.allow_plaintext: plaintext is only allowed on a loopback'],
    [{ server: {} }, 'server.tls: set cert and key, or self_signed: true'],
    [{ ...base, policies: [{ name: 'p', when: {}, resources: ['orders'], grants: ['read'] }] }, 'policies[0].when: name at least one of'],
    [{ ...base, policies: [{ name: 'p', when: { groups: [] }, resources: ['orders'], grants: ['read'] }] }, 'policies[0].when.groups'],
    [{ ...base, policies: [{ name: 'p', when: { groups: ['a'] }, resources: ['billing'], grants: ['read'] }] }, 'policies[0].resources[0]: unknown resource billing'],
    [{ ...base, policies: [{ name: 'p', when: { groups: ['a'] }, resources: ['orders'] }] }, 'policies[0].grants: resources and grants go together'],
    [{ ...base, policies: [{ name: 'p', when: { groups: ['a'] }, resources: ['orders'], grants: ['read'], max_session_duration: '0s' }] }, 'policies[0].max_session_duration: expected a duration above zero'],
    [{ ...base, resources: [resource, resource] }, 'resources[1].name: duplicate resource name orders'],
    [{ ...base, identity: { clock_skew: 300 } }, 'identity.clock_skew: at most 60 seconds'],
    [
      {
        ...base,
        identity: { dev_issuer: { enabled: true }, issuers: [{ name: 'corp', issuer: 'https://idp.example.com', audience: 'sluice' }] },
        policies: [{ name: 'ci', when: { claims: { repository: 'acme/api' } }, resources: ['orders'], grants: ['read'] }],
      },
      'policies[0].when.issuer: with more than one issuer, a policy on subjects or claims must name the issuer they come from',
    ],
    [{ ...base, server: { tls: { self_signed: true }, http: { listen: '0.0.0.0:8080' } } }, 'server.http.tls: the API takes bearer tokens'],
    [{ ...base, identity: { issuers: [{ name: 'corp', issuer: 'https://idp.example.com', audience: 'sluice', algorithms: ['HS256'] }] } }, 'identity.issuers[0].algorithms[0]'],
  ])('names the path of a bad key (%#)', (raw, expected) => {
    expect(issuesOf(raw).join('\n')).toContain(expected);
  });

  it('refuses __proto__ keys that the schema library would drop silently', () => {
    const raw = JSON.parse(
      '{"server":{"tls":{"self_signed":true}},"policies":[{"name":"p","when":{"groups":["a"],"claims":{"__proto__":"x","b":"c"}},"permissions":["audit:read"]}]}',
    );
    expect(issuesOf(raw)).toEqual(['policies[0].when.claims.__proto__: the key "__proto__" is not allowed']);
  });

  it('resolves secret references from the environment and files, naming what is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cfg-'));
    writeFileSync(join(dir, 'pw'), 's3cret\n');
    expect(resolveSecret(`\${file:${join(dir, 'pw')}}`, 'x')).toBe('s3cret');
    process.env.SLUICE_CFG_TEST = 'from-env';
    expect(resolveSecret('${env:SLUICE_CFG_TEST}', 'x')).toBe('from-env');
    expect(() => resolveSecret('${env:SLUICE_CFG_UNSET}', 'resources[0].credentials.read.password')).toThrow(
      'resources[0].credentials.read.password: environment variable SLUICE_CFG_UNSET is not set',
    );
    expect(() => resolveCredentials(validateConfig(base))).toThrow('environment variable ORDERS_RO is not set');
  });

  it('loads YAML, resolves relative paths against the file, and reports YAML errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cfg-'));
    const file = join(dir, 'sluice.yaml');
    writeFileSync(file, 'server:\n  tls: { self_signed: true }\nstore:\n  data_dir: ./data\n');
    expect(loadConfigFile(file).config.store.data_dir).toBe(join(dir, 'data'));
    writeFileSync(file, 'server:\n  tls: [\n');
    expect(() => loadConfigFile(file)).toThrow(/YAML/);
    writeFileSync(file, 'store: {}\nstore: {}\n');
    expect(() => loadConfigFile(file)).toThrow(/YAML/);
  });

  it('parses durations', () => {
    expect([parseDuration(90), parseDuration('30s'), parseDuration('15m'), parseDuration('8h'), parseDuration('1d'), parseDuration('250ms')]).toEqual([
      90, 30, 900, 28800, 86400, 0.25,
    ]);
    expect(parseDuration('10 minutes')).toBeUndefined();
    expect(parseDuration(-1)).toBeUndefined();
  });

  it('publishes a JSON Schema that matches the code (run npm run schema after changing it)', () => {
    const committed = JSON.parse(readFileSync(new URL('../../docs/sluice.schema.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(configJsonSchema())));
    const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    expect(doc).toContain(configReferenceTable());
  });
});
