import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, validateConfig } from '../../src/config/load.js';
import { DETECTOR_NAME_LIST, MASK_STRATEGY_NAMES } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { DETECTOR_NAMES } from '../../src/masking/detectors.js';
import { MASK_STRATEGIES } from '../../src/masking/strategies.js';
import { issuesOf } from '../support/config-issues.js';

const resource = {
  name: 'appdb',
  type: 'postgres',
  upstream: { host: 'db.internal', port: 5432, database: 'app' },
  credentials: { read: { user: 'ro', password: '${env:APP_RO}' } },
};

function withPolicy(policy: Record<string, unknown>): Record<string, unknown> {
  return { server: { tls: { self_signed: true } }, resources: [resource], policies: [policy] };
}

const masking = (m: Record<string, unknown>, rest: Record<string, unknown> = {}) =>
  withPolicy({ name: 'pii', when: { kind: 'machine' }, resources: ['appdb'], masking: m, ...rest });

describe('masking policies in the configuration', () => {
  it('fills defaults for a minimal masking policy', () => {
    const cfg = validateConfig(masking({ columns: [{ match: ['public.users.email'] }] }));
    expect(cfg.policies[0]).toMatchObject({
      effect: 'allow',
      masking: {
        columns: [{ match: ['public.users.email'], strategy: 'redact', keep_last: 4 }],
        exempt: [],
        indirect: 'deny',
        notifications: 'redact',
        max_value_bytes: 1024 * 1024,
      },
    });
    expect(cfg.policies[0].masking!.detectors).toBeUndefined();
  });

  it.each([
    { columns: [{ match: ['public.users.email', '*.*.password', 'app.api_*.key*'], strategy: 'partial', keep_last: 2 }] },
    { columns: [{ match: ['public.users.ssn'], strategy: 'hash' }, { match: ['public.users.dob'], strategy: 'null' }] },
    { detectors: { names: ['email', 'payment_card', 'iban', 'us_ssn', 'phone', 'jwt', 'aws_access_key', 'private_key', 'api_key'] } },
    { detectors: { names: ['email'], columns: ['public.notes.body'], strategy: 'partial', keep_last: 64 } },
    {
      columns: [{ match: ['public.users.email'] }],
      exempt: [{ groups: ['dba'] }, { kind: 'person', subjects: ['alice'] }],
      functions: ['app.format_name', 'util*'],
      indirect: 'mask',
      notifications: 'detect',
      max_value_bytes: 64,
    },
    { columns: [{ match: ['"Mixed".users.email'], keep_last: 1 }] },
  ])('accepts %j', (m) => {
    expect(issuesOf(masking(m))).toEqual([]);
  });

  it('accepts `when: {}` for a masking policy, with resource "*"', () => {
    expect(issuesOf(withPolicy({ name: 'all', when: {}, resources: ['*'], masking: { columns: [{ match: ['*.*.password'] }] } }))).toEqual([]);
  });

  it('still refuses `when: {}` for a grants policy', () => {
    expect(issuesOf(withPolicy({ name: 'all', when: {}, resources: ['appdb'], grants: ['read'] }))).toContain(
      'policies[0].when: name at least one of issuer, subjects, groups, kind, claims',
    );
  });

  it.each([
    [{ grants: ['read'] }, 'policies[0].grants: a masking policy only masks; put grants in a policy of its own'],
    [{ statements: { kinds: ['select'] } }, 'policies[0].statements: a masking policy only masks; put statements in a policy of its own'],
    [{ permissions: ['audit:read'] }, 'policies[0].permissions: a masking policy only masks; put permissions in a policy of its own'],
    [{ max_session_duration: '1h' }, 'policies[0].max_session_duration: a masking policy only masks; put max_session_duration in a policy of its own'],
    [{ effect: 'deny' }, 'policies[0].effect: masking has no deny effect; leave effect out'],
    [{ resources: undefined }, 'policies[0].resources: masking goes with resources'],
    [{ resources: ['billing'] }, 'policies[0].resources[0]: unknown resource billing'],
  ])('refuses a masking policy with %j', (rest, expected) => {
    expect(issuesOf(masking({ columns: [{ match: ['public.users.email'] }] }, rest))).toContain(expected);
  });

  it.each([
    [{ columns: [{ match: ['users.email'] }] }, 'policies[0].masking.columns[0].match[0]: expected schema.table.column'],
    [{ columns: [{ match: ['a.b.c.d'] }] }, 'policies[0].masking.columns[0].match[0]: expected schema.table.column'],
    [{ columns: [{ match: ['public.users.e mail'] }] }, 'policies[0].masking.columns[0].match[0]: expected schema.table.column'],
    [{ columns: [{ match: [] }] }, 'policies[0].masking.columns[0].match'],
    [{ detectors: { names: ['email'], columns: ['notes.body'] } }, 'policies[0].masking.detectors.columns[0]: expected schema.table.column'],
    [{}, 'policies[0].masking: name columns, detectors, or both'],
    [{ columns: [] }, 'policies[0].masking: name columns, detectors, or both'],
    [{ detectors: { names: ['passport'] } }, 'policies[0].masking.detectors.names[0]'],
    [{ detectors: { names: [] } }, 'policies[0].masking.detectors.names'],
    [{ columns: [{ match: ['public.users.email'], keep_last: 0 }] }, 'policies[0].masking.columns[0].keep_last'],
    [{ columns: [{ match: ['public.users.email'], keep_last: 65 }] }, 'policies[0].masking.columns[0].keep_last'],
    [{ columns: [{ match: ['public.users.email'], keep_last: 2.5 }] }, 'policies[0].masking.columns[0].keep_last'],
    [{ detectors: { names: ['email'], keep_last: 100 } }, 'policies[0].masking.detectors.keep_last'],
    [{ columns: [{ match: ['public.users.email'], strategy: 'scramble' }] }, 'policies[0].masking.columns[0].strategy'],
    [{ columns: [{ match: ['public.users.email'] }], indirect: 'allow' }, 'policies[0].masking.indirect'],
    [{ columns: [{ match: ['public.users.email'] }], notifications: 'pass' }, 'policies[0].masking.notifications'],
    [{ columns: [{ match: ['public.users.email'] }], max_value_bytes: 10 }, 'policies[0].masking.max_value_bytes'],
    [{ columns: [{ match: ['public.users.email'] }], functions: ['drop table'] }, 'policies[0].masking.functions[0]: expected a function name'],
    [{ columns: [{ match: ['public.users.email'] }], exempt: [{ groups: [] }] }, 'policies[0].masking.exempt[0].groups'],
    [{ columns: [{ match: ['public.users.email'] }], colums: [] }, 'unknown key colums'],
  ])('refuses masking %j', (m, expected) => {
    expect(issuesOf(masking(m)).join('\n')).toContain(expected);
  });

  it('loads masking from YAML and reports issues with their paths', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-mask-cfg-'));
    const file = join(dir, 'sluice.yaml');
    const head = [
      'server:',
      '  tls: { self_signed: true }',
      'resources:',
      '  - name: appdb',
      '    type: postgres',
      '    upstream: { host: db.internal, port: 5432, database: app }',
      "    credentials: { read: { user: ro, password: '${env:APP_RO}' } }",
      'policies:',
      '  - name: pii',
      '    when: {}',
      "    resources: ['*']",
      '    masking:',
    ];
    writeFileSync(
      file,
      [
        ...head,
        '      columns:',
        '        - match: [public.users.email]',
        '          strategy: partial',
        '          keep_last: 3',
        '      detectors: { names: [email, jwt] }',
        '      exempt: [{ groups: [dba] }]',
        '      indirect: mask',
        '',
      ].join('\n'),
    );
    const m = loadConfigFile(file).config.policies[0].masking!;
    expect(m.columns).toEqual([{ match: ['public.users.email'], strategy: 'partial', keep_last: 3 }]);
    expect(m.detectors).toEqual({ names: ['email', 'jwt'], strategy: 'redact', keep_last: 4 });
    expect(m.exempt).toEqual([{ groups: ['dba'] }]);
    expect(m.indirect).toBe('mask');

    writeFileSync(file, [...head, '      columns:', '        - match: [users.email]', '    grants: [read]', ''].join('\n'));
    let error: unknown;
    try {
      loadConfigFile(file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const lines = (error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    expect(lines).toContain('policies[0].masking.columns[0].match[0]: expected schema.table.column');
  });
});

describe('the schema and the masking code name the same strategies and detectors', () => {
  it('lists them identically', () => {
    expect([...MASK_STRATEGY_NAMES].sort()).toEqual([...MASK_STRATEGIES].sort());
    expect([...DETECTOR_NAME_LIST].sort()).toEqual([...DETECTOR_NAMES].sort());
  });
});
