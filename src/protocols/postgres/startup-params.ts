import { GRANTS, type GrantName } from '../../config/schema.js';

/**
 * Which startup parameters a client may pass through Sluice to the backend.
 * The backend reads every key but user, database, options and replication as
 * a setting name, case-insensitively, so the list and the duplicate check
 * compare lowercased keys. Everything else is refused: `options` can set any GUC (including
 * session_authorization-style escapes), `replication` opens a different
 * protocol, and unknown keys would reach the backend unreviewed.
 */
const FORWARDED: Record<string, (v: string) => boolean> = {
  application_name: (v) => v.length <= 63,
  client_encoding: (v) => normalizeEncoding(v) !== undefined,
  datestyle: (v) => /^[A-Za-z, ]{1,32}$/.test(v),
  timezone: (v) => /^[A-Za-z0-9_+\-/:. ]{1,64}$/.test(v),
  extra_float_digits: (v) => /^-?\d{1,2}$/.test(v),
  intervalstyle: (v) => /^(postgres|postgres_verbose|sql_standard|iso_8601)$/.test(v),
};

/**
 * Sluice inspects statements as UTF-8. SQL_ASCII is what libpq sends as
 * "auto" under the C locale; it is served as UTF8 (ASCII is a subset), while
 * multi-byte client encodings such as SJIS or GBK, whose trailing bytes can
 * look like quotes or backslashes, are refused.
 */
function normalizeEncoding(v: string): 'UTF8' | undefined {
  const e = v.toUpperCase().replace(/[-_]/g, '');
  return e === 'UTF8' || e === 'UNICODE' || e === 'SQLASCII' ? 'UTF8' : undefined;
}

export interface StartupRequest {
  readonly resource: string;
  readonly grant: GrantName;
  readonly applicationName?: string;
  /** Parameters to pass to the backend's StartupMessage. */
  readonly forwarded: Record<string, string>;
}

export type StartupCheck = { ok: true; request: StartupRequest } | { ok: false; sqlstate: string; code: string; message: string };

export function checkStartupParams(params: ReadonlyArray<readonly [string, string]>): StartupCheck {
  const seen = new Set<string>();
  let database: string | undefined;
  let user: string | undefined;
  const forwarded: Record<string, string> = {};
  for (const [key, value] of params) {
    const setting = key.toLowerCase();
    if (seen.has(setting)) return refuse('startup_duplicate_parameter', `startup parameter "${key}" is given twice`);
    seen.add(setting);
    if (key === 'database') database = value;
    else if (key === 'user') user = value;
    else if (key === 'replication') return refuse('startup_replication_refused', 'replication connections are not supported through Sluice');
    else if (key === 'options') {
      return refuse('startup_options_refused', 'the "options" startup parameter is not allowed through Sluice; set parameters with SET after connecting (unset PGOPTIONS)');
    } else {
      const check = Object.hasOwn(FORWARDED, setting) ? FORWARDED[setting] : undefined;
      if (!check) return refuse('startup_parameter_refused', `startup parameter "${key}" is not allowed through Sluice`);
      if (!check(value)) {
        if (setting === 'client_encoding') {
          return refuse('startup_encoding_refused', 'startup parameter "client_encoding" must be UTF8: Sluice inspects statements as UTF-8 (set PGCLIENTENCODING=UTF8 or unset it)');
        }
        return refuse('startup_parameter_invalid', `startup parameter "${key}" has a value Sluice does not accept`);
      }
      forwarded[key] = setting === 'client_encoding' ? 'UTF8' : value;
    }
  }
  if (!user) return refuse('startup_user_missing', 'no user given: the user names the grant to ask for (read, write, ddl or admin)');
  if (!database) {
    return refuse('startup_database_missing', 'no database given: the database names the Sluice resource to connect to');
  }
  if (!(GRANTS as readonly string[]).includes(user)) {
    return refuse('startup_grant_unknown', `user "${user}" is not a grant: connect as read, write, ddl or admin`, '28000');
  }
  return {
    ok: true,
    request: { resource: database, grant: user as GrantName, applicationName: forwarded.application_name, forwarded },
  };
}

function refuse(code: string, message: string, sqlstate = '08P01'): StartupCheck {
  return { ok: false, sqlstate, code, message };
}
