import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ClassificationCache, classify, classifyCached, initSqlParser } from '../../src/sql/index.js';

const SELECT_200 =
  "SELECT u.id, u.email, o.total, o.created_at FROM public.users u JOIN public.orders o ON o.user_id = u.id WHERE u.active AND o.total > 100 AND o.status IN ('paid', 'shipped') ORDER BY o.created_at DESC LIMIT 50";

beforeAll(async () => {
  await initSqlParser();
});

describe('classify: limits', () => {
  it('refuses text over the byte limit before parsing', () => {
    const result = classify(`select '${'x'.repeat(2000)}'`, { maxBytes: 1000 });
    expect(result).toMatchObject({ ok: false, reason: 'too_large' });
    expect(classify('select 1'.padEnd(1024 * 1024 + 10, ' '))).toMatchObject({ ok: false, reason: 'too_large' });
  });

  it('refuses deep nesting of every shape and keeps working afterwards', () => {
    const deep = [
      'select ' + '(select '.repeat(3000) + '1' + ')'.repeat(3000),
      'select ' + Array(20000).fill('1').join('+'),
      'select ' + 'not '.repeat(12000) + 'true',
      'select 1' + '::int'.repeat(12000),
      "select a" + "->'x'".repeat(12000),
      'select ' + 'f('.repeat(5000) + '1' + ')'.repeat(5000),
      'select ' + '(select '.repeat(1500) + '1' + ')'.repeat(1500) + ' + 1'.repeat(8000),
      'select ' + 'case when true then '.repeat(1500) + '1' + ' end'.repeat(1500),
      'select ' + '(select '.repeat(200) + '1' + ')'.repeat(200),
    ];
    for (const sql of deep) {
      const result = classify(sql);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(['too_deep', 'unparseable']).toContain(result.reason);
    }
    expect(classify('select 1 + 1 + 1')).toMatchObject({ ok: true });
    expect(classify('delete from t where id = 1')).toMatchObject({ ok: true, statements: [{ kind: 'delete', bounded: true }] });
  });

  it('honours a lower maxDepth', () => {
    const sql = 'select ' + '(select '.repeat(20) + '1' + ')'.repeat(20);
    expect(classify(sql)).toMatchObject({ ok: true });
    expect(classify(sql, { maxDepth: 50 })).toMatchObject({ ok: false, reason: 'too_deep' });
  });

  it('accepts long but shallow statements', () => {
    const values = Array.from({ length: 5000 }, (_, i) => `(${i}, 'v${i}')`).join(', ');
    const result = classify(`insert into t (a, b) values ${values}`);
    expect(result).toMatchObject({ ok: true, statements: [{ kind: 'insert', tablesWritten: ['t'] }] });
    const inList = classify(`select * from t where id in (${Array.from({ length: 20000 }, (_, i) => i).join(',')})`);
    expect(inList).toMatchObject({ ok: true });
  });

  it('treats empty and comment-only text as no statements', () => {
    expect(classify('')).toEqual({ ok: true, statements: [] });
    expect(classify('  -- nothing\n /* here */ ')).toEqual({ ok: true, statements: [] });
  });

  it('keeps each statement text slice, also after multi-byte characters', () => {
    const result = classify("select 'ü€'; delete from t where id = 1");
    expect(result.ok && result.statements.map((s) => s.text)).toEqual(["select 'ü€'", 'delete from t where id = 1']);
  });

  it('reports columns and the clause they are used in', () => {
    const result = classify('select u, row_to_json(u), u.name from users u where lower(u.email) = $1 order by u.id');
    if (!result.ok) throw new Error(result.message);
    const cols = result.statements[0].columns;
    expect(cols).toContainEqual({ table: 'users', column: '*', clause: 'whole_row' });
    expect(cols).toContainEqual({ table: 'users', column: 'name', clause: 'target' });
    expect(cols).toContainEqual({ table: 'users', column: 'email', clause: 'where' });
    expect(cols).toContainEqual({ table: 'users', column: 'id', clause: 'order' });
    const upd = classify('update accounts set balance = balance - 1 where id = 2 returning owner');
    if (!upd.ok) throw new Error(upd.message);
    expect(upd.statements[0].columns).toContainEqual({ table: 'accounts', column: 'balance', clause: 'set' });
    expect(upd.statements[0].columns).toContainEqual({ table: 'accounts', column: 'owner', clause: 'returning' });
  });
});

describe('classify: fuzzing', () => {
  const fragments = fc.constantFrom('select', 'delete', 'from', 't', '(', ')', ';', "'", '"', '$$', '/*', '*/', '--', '\n', 'with', 'as', ',', '1', '+', 'U&"', '\\', 'E\'', 'where', 'true', '[', ']', '::', 'int', ' ');
  const assertShape = (sql: string) => {
    const result = classify(sql);
    if (result.ok) expect(Array.isArray(result.statements)).toBe(true);
    else expect(['unparseable', 'too_large', 'too_deep']).toContain(result.reason);
  };

  it('never throws for arbitrary strings', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (sql) => assertShape(sql)), { numRuns: 2000 });
  });

  it('never throws for SQL-shaped token soup', () => {
    fc.assert(fc.property(fc.array(fragments, { maxLength: 200 }), (parts) => assertShape(parts.join(' '))), { numRuns: 2000 });
  });
});

describe('ClassificationCache', () => {
  it('returns cached results and evicts the least recently used by bytes', () => {
    const cache = new ClassificationCache(4000);
    const a = classifyCached('select 1', undefined, cache);
    expect(classifyCached('select 1', undefined, cache)).toBe(a);
    for (let i = 0; i < 50; i++) classifyCached(`select ${i} from t${i}`, undefined, cache);
    expect(cache.bytes).toBeLessThanOrEqual(4000);
    expect(cache.get('select 1')).toBeUndefined();
    expect(cache.get('select 49 from t49')).toBeDefined();
  });

  it('does not keep an entry larger than the whole cache', () => {
    const cache = new ClassificationCache(1000);
    cache.set('x'.repeat(2000), { ok: false, reason: 'too_large', message: 'm' });
    expect(cache.size).toBe(0);
  });

  it('measures statements per second with and without the cache (printed, not asserted)', () => {
    const rate = (fn: () => unknown) => {
      let n = 0;
      const start = performance.now();
      while (performance.now() - start < 500) {
        fn();
        n++;
      }
      return Math.round((n * 1000) / (performance.now() - start));
    };
    const cache = new ClassificationCache(1024 * 1024);
    const uncached = rate(() => classify(SELECT_200));
    const cached = rate(() => classifyCached(SELECT_200, undefined, cache));
    console.log(`sql classify ${SELECT_200.length}-char SELECT: ${uncached}/s uncached, ${cached}/s cached`);
    expect(uncached).toBeGreaterThan(0);
    expect(cached).toBeGreaterThan(0);
  });
});
