/** Built-in PostgreSQL type OIDs (pg_type.h), for naming parameter types in the config. */
const BUILTIN: Record<string, number> = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  xml: 142,
  float4: 700,
  float8: 701,
  money: 790,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
};

export function typeOidsByName(names: readonly string[]): ReadonlySet<number> {
  return new Set(names.map((n) => BUILTIN[n.toLowerCase()]).filter((o): o is number => o !== undefined));
}

