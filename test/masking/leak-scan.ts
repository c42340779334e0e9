import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { UserRow } from './fixture.js';

/** One encoding of a secret an attacker could ask PostgreSQL for; `fold` matches it case-insensitively. */
export interface SecretForm {
  readonly form: string;
  readonly value: string;
  readonly fold: boolean;
}

/** A secret reported by its label (with the form found) rather than by its value. */
export interface LabelledSecret {
  readonly label: string;
  readonly value: string;
}

/** Returns what leaked from `output` (see `leakScanner`), or undefined. */
/** Every secret the masking fixture's rows hold: e-mails, passwords, API keys, cards, and e-mails inside notes. */
export function fixtureSecrets(rows: Iterable<UserRow>): string[] {
  const out: string[] = [];
  for (const r of rows) {
    out.push(r.email, r.password, r.api_key, r.card);
    const inNote = /ops\d+@corp\.example\.org/.exec(r.note)?.[0];
    if (inNote) out.push(inNote);
  }
  return [...new Set(out)];
}

export type LeakScan = (output: string) => string | undefined;

const INT4_MIN = -(2 ** 31);
const INT4_MAX = 2 ** 31 - 1;

/**
 * Every form of `v` that would reveal it: raw or case-folded, hex, base64,
 * md5, sha256, reversed, the e-mail local part with its `@`, and for an
 * integer the int4 bytes of the binary format (read as latin1, which an int8
 * of the same value also contains).
 */
export function secretForms(v: string): SecretForm[] {
  const out: SecretForm[] = [
    { form: 'raw or case-folded', value: v.toLowerCase(), fold: true },
    { form: 'hex', value: Buffer.from(v, 'utf8').toString('hex'), fold: true },
    { form: 'base64', value: Buffer.from(v, 'utf8').toString('base64'), fold: false },
    { form: 'md5', value: createHash('md5').update(v).digest('hex'), fold: true },
    { form: 'sha256', value: createHash('sha256').update(v).digest('hex'), fold: true },
    { form: 'reversed', value: [...v].reverse().join('').toLowerCase(), fold: true },
  ];
  if (v.includes('@')) out.push({ form: 'local part', value: v.slice(0, v.indexOf('@') + 1).toLowerCase(), fold: true });
  if (/^-?\d+$/.test(v) && Number(v) >= INT4_MIN && Number(v) <= INT4_MAX) {
    const int4 = Buffer.alloc(4);
    int4.writeInt32BE(Number(v));
    out.push({ form: 'binary int4', value: int4.toString('latin1'), fold: false });
  }
  return out;
}

/**
 * A scanner for the first secret found in an output in any revealing form.
 * It names a plain string secret by its value, and a labelled one as
 * `label (form)`. The forms are computed once, so build it after the secrets are known.
 */
export function leakScanner(secrets: Iterable<string | LabelledSecret>): LeakScan {
  const forms: { name: string; value: string; fold: boolean }[] = [];
  for (const s of secrets) {
    const { label, value } = typeof s === 'string' ? { label: undefined, value: s } : s;
    for (const fm of secretForms(value)) forms.push({ name: label === undefined ? value : `${label} (${fm.form})`, value: fm.value, fold: fm.fold });
  }
  return (output) => {
    const lower = output.toLowerCase();
    return forms.find((fm) => (fm.fold ? lower.includes(fm.value) : output.includes(fm.value)))?.name;
  };
}

/** Every string a value carries: bytea as utf8, hex and latin1, objects as their keys and values. */
export function flatten(value: unknown, out: string[] = []): string[] {
  if (value === null || value === undefined) return out;
  if (Buffer.isBuffer(value)) out.push(value.toString('utf8'), value.toString('hex'), value.toString('latin1'));
  else if (Array.isArray(value)) for (const v of value) flatten(v, out);
  else if (typeof value === 'object')
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out.push(k);
      flatten(v, out);
    }
  else out.push(String(value));
  return out;
}

/** Everything a result (or the results of a multi-statement query) carries: values and column names. */
export function resultText(r: pg.QueryResult | pg.QueryResult[]): string {
  const all = Array.isArray(r) ? r : [r];
  return all.map((x) => flatten([x.rows, x.fields?.map((fd) => fd.name) ?? []]).join('\n')).join('\n');
}

/** What an error or notice carries to the client, every field of it. */
export function errorText(e: Record<string, unknown>): string {
  return flatten([e.message, e.detail, e.hint, e.where, e.internalQuery, e.schema, e.table, e.column, e.constraint]).join('\n');
}
