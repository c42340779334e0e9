const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Parses `90`, `"30s"`, `"15m"`, `"8h"`, `"1d"` into seconds; undefined when malformed. */
export function parseDuration(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNITS[m[2]];
}

/** Seconds as people say them: 90 → "90s", 900 → "15m", 7200 → "2h", 5400 → "1h30m". */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60 || s % 60 !== 0) return `${s}s`;
  const parts: string[] = [];
  let rest = s;
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}
