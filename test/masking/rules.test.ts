import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { PolicyConfig } from '../../src/config/schema.js';
import type { Principal } from '../../src/identity/principal.js';
import type { CatalogColumn, CatalogRelation, CatalogSnapshot, ColumnLineage } from '../../src/masking/catalog.js';
import { maskedSpec, resolveMasking } from '../../src/masking/resolve.js';
import { maskingPlanFor, maskingPlanKey, stricter } from '../../src/masking/rules.js';
import type { StrategySpec } from '../../src/masking/strategies.js';

const resource = (name: string) => ({
  name,
  type: 'postgres',
  upstream: { host: 'db', port: 5432, database: name },
  credentials: { read: { user: 'ro', password: '${env:X}' } },
});

function load(policies: Record<string, unknown>[]): PolicyConfig[] {
  return validateConfig({ server: { tls: { self_signed: true } }, resources: [resource('appdb'), resource('other')], policies }).policies;
}

function principal(over: Partial<Principal> = {}): Principal {
  return { issuer: 'https://idp', subject: 'alice', kind: 'person', groups: ['dev'], claims: {}, expiresAt: 0, ...over };
}

const ci = principal({ subject: 'ci', kind: 'machine', groups: ['ci'] });
const dba = principal({ subject: 'bob', groups: ['dba', 'dev'] });

describe('stricter', () => {
  it.each<[StrategySpec, StrategySpec, StrategySpec]>([
    [{ strategy: 'null' }, { strategy: 'redact' }, { strategy: 'null' }],
    [{ strategy: 'redact' }, { strategy: 'hash' }, { strategy: 'redact' }],
    [{ strategy: 'hash' }, { strategy: 'partial', keepLast: 1 }, { strategy: 'hash' }],
    [{ strategy: 'partial', keepLast: 2 }, { strategy: 'partial', keepLast: 6 }, { strategy: 'partial', keepLast: 2 }],
    [{ strategy: 'partial' }, { strategy: 'partial', keepLast: 3 }, { strategy: 'partial', keepLast: 3 }],
    [{ strategy: 'partial', keepLast: 8 }, { strategy: 'partial' }, { strategy: 'partial' }],
  ])('picks the stricter of %o and %o', (a, b, expected) => {
    expect(stricter(a, b)).toEqual(expected);
    expect(stricter(b, a)).toEqual(expected);
  });
});

describe('maskingPlanFor', () => {
  const pii = {
    name: 'pii',
    when: { kind: 'machine' },
    resources: ['appdb'],
    masking: {
      columns: [{ match: ['App.Users.Email'], strategy: 'partial', keep_last: 6 }],
      detectors: { names: ['email'], columns: ['app.users.bio'], strategy: 'partial' },
      functions: ['app.fmt'],
      indirect: 'mask',
      notifications: 'detect',
      max_value_bytes: 4096,
    },
  };
  const secrets = {
    name: 'secrets',
    when: { groups: ['ci'] },
    resources: ['*'],
    masking: {
      columns: [
        { match: ['app.users.email'], strategy: 'hash' },
        { match: ['*.*.password', 'app.keys.*'], strategy: 'null' },
      ],
      detectors: { names: ['jwt', 'email'], columns: ['app.notes.body'], strategy: 'redact' },
      functions: ['util*'],
      max_value_bytes: 1024,
    },
  };

  it('merges every covering policy: columns add up, the stricter choice wins', () => {
    const plan = maskingPlanFor(load([pii, secrets]), ci, 'appdb')!;
    expect(plan.policies).toEqual(['pii', 'secrets']);
    expect(plan.columns).toEqual([
      { pattern: 'app.users.email', spec: { strategy: 'partial', keepLast: 6 }, policy: 'pii' },
      { pattern: 'app.users.email', spec: { strategy: 'hash', keepLast: 4 }, policy: 'secrets' },
      { pattern: '*.*.password', spec: { strategy: 'null', keepLast: 4 }, policy: 'secrets' },
      { pattern: 'app.keys.*', spec: { strategy: 'null', keepLast: 4 }, policy: 'secrets' },
    ]);
    expect(plan.indirect).toBe('deny');
    expect(plan.notifications).toBe('redact');
    expect(plan.maxValueBytes).toBe(1024);
    expect(plan.functions).toEqual(['app.fmt', 'util*']);
    expect([...plan.detectors!.names].sort()).toEqual(['email', 'jwt']);
    expect(plan.detectors!.columns).toEqual(['app.users.bio', 'app.notes.body']);
    expect(plan.detectors!.spec).toEqual({ strategy: 'redact', keepLast: 4 });
  });

  it('keeps one policy as it is', () => {
    const plan = maskingPlanFor(load([pii]), ci, 'appdb')!;
    expect(plan).toMatchObject({ policies: ['pii'], indirect: 'mask', notifications: 'detect', maxValueBytes: 4096, functions: ['app.fmt'] });
    expect(plan.detectors!.spec).toEqual({ strategy: 'partial', keepLast: 4 });
  });

  it('lets detectors without a column limit apply to every value once any policy says so', () => {
    const everywhere = { ...secrets, name: 'everywhere', masking: { detectors: { names: ['iban'] } } };
    const plan = maskingPlanFor(load([pii, everywhere]), ci, 'appdb')!;
    expect(plan.detectors!.columns).toBeUndefined();
    expect([...plan.detectors!.names].sort()).toEqual(['email', 'iban']);
  });

  it('has no detectors when no policy names any, and defaults the rest', () => {
    const plan = maskingPlanFor(load([{ name: 'p', when: { kind: 'machine' }, resources: ['appdb'], masking: { columns: [{ match: ['a.b.c'] }] } }]), ci, 'appdb')!;
    expect(plan.detectors).toBeUndefined();
    expect(plan).toMatchObject({ indirect: 'deny', notifications: 'redact', maxValueBytes: 1024 * 1024, functions: [] });
    expect(plan.columns[0].spec).toEqual({ strategy: 'redact', keepLast: 4 });
  });

  it('skips exempt principals, by group or by kind', () => {
    const byGroup = { ...pii, when: { groups: ['dev'] }, masking: { ...pii.masking, exempt: [{ groups: ['dba'] }] } };
    expect(maskingPlanFor(load([byGroup]), principal(), 'appdb')).toBeDefined();
    expect(maskingPlanFor(load([byGroup]), dba, 'appdb')).toBeUndefined();
    const byKind = { ...pii, when: {}, masking: { ...pii.masking, exempt: [{ kind: 'person' }] } };
    expect(maskingPlanFor(load([byKind]), dba, 'appdb')).toBeUndefined();
    expect(maskingPlanFor(load([byKind]), ci, 'appdb')!.policies).toEqual(['pii']);
  });

  it('applies `when: {}` to everyone', () => {
    const everyone = { ...pii, when: {} };
    for (const p of [ci, dba, principal({ issuer: 'https://other', subject: 'x', groups: [] })]) {
      expect(maskingPlanFor(load([everyone]), p, 'appdb')?.policies).toEqual(['pii']);
    }
  });

  it('covers only matching principals and resources', () => {
    expect(maskingPlanFor(load([pii]), dba, 'appdb')).toBeUndefined();
    expect(maskingPlanFor(load([pii]), ci, 'other')).toBeUndefined();
    expect(maskingPlanFor(load([secrets]), ci, 'other')!.policies).toEqual(['secrets']);
    expect(maskingPlanFor(load([pii, secrets]), ci, 'other')!.policies).toEqual(['secrets']);
  });

  it('ignores policies without masking', () => {
    const grants = { name: 'read', when: { kind: 'machine' }, resources: ['appdb'], grants: ['read'] };
    expect(maskingPlanFor(load([grants]), ci, 'appdb')).toBeUndefined();
  });

  it('gives equal plans equal keys, whatever the detector order', () => {
    const a = maskingPlanFor(load([{ ...pii, masking: { ...pii.masking, detectors: { names: ['email', 'jwt'] } } }]), ci, 'appdb');
    const b = maskingPlanFor(load([{ ...pii, masking: { ...pii.masking, detectors: { names: ['jwt', 'email'] } } }]), ci, 'appdb');
    expect(maskingPlanKey(a)).toBe(maskingPlanKey(b));
    expect(maskingPlanKey(a)).not.toBe(maskingPlanKey(maskingPlanFor(load([pii]), ci, 'appdb')));
    expect(maskingPlanKey(undefined)).toBe('');
  });
});

function cols(...names: string[]): Map<number, CatalogColumn> {
  return new Map(names.map((name, i) => [i + 1, { name, typeOid: 25 }]));
}

const relations: CatalogRelation[] = [
  { oid: 10, schema: 'app', name: 'users', kind: 'table', columns: cols('id', 'email', 'password', 'bio') },
  { oid: 11, schema: 'App', name: 'Keys', kind: 'table', columns: cols('Token', 'label') },
  { oid: 12, schema: 'billing', name: 'cards', kind: 'table', columns: cols('number', 'password') },
  {
    oid: 20,
    schema: 'app',
    name: 'v',
    kind: 'view',
    columns: cols('mail', 'mixed', 'safe', 'bio'),
    lineage: new Map<number, ColumnLineage>([
      [1, { kind: 'column', relation: 10, attnum: 2 }],
      [2, { kind: 'derived', sources: [{ relation: 10, attnum: 2 }, { relation: 12, attnum: 2 }, { relation: 10, attnum: 1 }] }],
      [3, { kind: 'column', relation: 10, attnum: 1 }],
      [4, { kind: 'column', relation: 10, attnum: 4 }],
    ]),
  },
  {
    oid: 21,
    schema: 'app',
    name: 'vv',
    kind: 'view',
    columns: cols('m'),
    lineage: new Map<number, ColumnLineage>([[1, { kind: 'column', relation: 20, attnum: 2 }]]),
  },
];
const catalog: CatalogSnapshot = {
  relations: new Map(relations.map((r) => [r.oid, r])),
  byName: new Map(relations.map((r) => [`${r.schema}.${r.name}`, r.oid])),
  userFunctions: new Set(),
  builtinFunctions: new Set(),
  searchPath: ['app'],
};

describe('resolveMasking', () => {
  const policy = {
    name: 'p',
    when: {},
    resources: ['appdb'],
    masking: {
      columns: [
        { match: ['app.users.email'], strategy: 'partial' },
        { match: ['*.*.PASSWORD'], strategy: 'hash' },
        { match: ['billing.cards.password'], strategy: 'null' },
        { match: ['app.keys.tok*'] },
      ],
      detectors: { names: ['email'], columns: ['app.users.bio'] },
    },
  };
  const masked = resolveMasking(maskingPlanFor(load([policy]), ci, 'appdb')!, catalog);

  it('matches patterns with globs, case-insensitively', () => {
    expect(maskedSpec(masked, 10, 2)).toEqual({ strategy: 'partial', keepLast: 4 });
    expect(maskedSpec(masked, 10, 3)).toEqual({ strategy: 'hash', keepLast: 4 });
    expect(maskedSpec(masked, 11, 1)).toEqual({ strategy: 'redact', keepLast: 4 });
    expect(maskedSpec(masked, 11, 2)).toBeUndefined();
    expect(maskedSpec(masked, 10, 1)).toBeUndefined();
    expect(maskedSpec(masked, 10, 4)).toBeUndefined();
  });

  it('takes the strictest strategy when several rules match one column', () => {
    expect(maskedSpec(masked, 12, 2)).toEqual({ strategy: 'null', keepLast: 4 });
    expect(maskedSpec(masked, 12, 1)).toBeUndefined();
  });

  it('masks view columns through their lineage, with the strictest strategy of their sources', () => {
    expect(maskedSpec(masked, 20, 1)).toEqual({ strategy: 'partial', keepLast: 4 });
    expect(maskedSpec(masked, 20, 2)).toEqual({ strategy: 'null', keepLast: 4 });
    expect(maskedSpec(masked, 20, 3)).toBeUndefined();
    expect(maskedSpec(masked, 21, 1)).toEqual({ strategy: 'null', keepLast: 4 });
    expect([...masked.byOid.keys()].sort()).toEqual([10, 11, 12, 20, 21]);
  });

  it('masks a view column by a rule naming the view itself', () => {
    const own = resolveMasking(
      maskingPlanFor(load([{ ...policy, masking: { columns: [{ match: ['app.v.safe'] }, { match: ['app.users.id'], strategy: 'partial' }] } }]), ci, 'appdb')!,
      catalog,
    );
    expect(maskedSpec(own, 20, 3)).toEqual({ strategy: 'redact', keepLast: 4 });
    expect(maskedSpec(own, 10, 1)).toEqual({ strategy: 'partial', keepLast: 4 });
  });

  it('limits detectors to the columns named, views included', () => {
    expect(masked.detectorOids).toBeDefined();
    expect([...masked.detectorOids!].map(([oid, set]) => [oid, [...set]])).toEqual([
      [10, [4]],
      [20, [4]],
    ]);
  });

  it('has no detector limit when detectors apply everywhere', () => {
    const everywhere = resolveMasking(maskingPlanFor(load([{ ...policy, masking: { detectors: { names: ['email'] } } }]), ci, 'appdb')!, catalog);
    expect(everywhere.detectorOids).toBeUndefined();
    expect(everywhere.byOid.size).toBe(0);
  });
});
