import type { ScanToken } from 'libpg-query';

/**
 * The WASM parser recurses in C while serialising its tree; a stack overflow
 * there corrupts the module for every later call (measured: around 17,000
 * levels of JSON nesting). Text short enough cannot get near that (each
 * character adds at most about one level), so only long text pays for a scan.
 */
export const SHORT_TEXT_CHARS = 6000;

/** Conservative ceiling on the estimate below, well under the measured overflow. */
export const WASM_SAFE_ESTIMATE = 12_000;

/** Upper bound of tree levels one token can add (a `(select` pair adds about 7 in two tokens). */
const PER_TOKEN = 4;

/**
 * Over-estimates the parse tree depth from the real lexer's tokens. Chains are
 * additive (a closing parenthesis keeps the depth reached inside, because a
 * left-deep chain after it pushes it further down); only commas and
 * semicolons start a sibling, and set operations, which nest across commas,
 * are added on top.
 */
export function estimateDepth(tokens: readonly ScanToken[]): number {
  const starts: number[] = [];
  let cur = 0;
  let max = 0;
  let setOps = 0;
  for (const token of tokens) {
    if (token.tokenName === 'SQL_COMMENT' || token.tokenName === 'C_COMMENT') continue;
    const text = token.text;
    if (text === '(' || text === '[') {
      cur += PER_TOKEN;
      starts.push(cur);
    } else if (text === ')' || text === ']') {
      starts.pop();
    } else if (text === ',') {
      cur = (starts.length > 0 ? starts[starts.length - 1] : 0) + PER_TOKEN;
    } else if (text === ';') {
      starts.length = 0;
      cur = 0;
    } else {
      const upper = text.toUpperCase();
      if (upper === 'UNION' || upper === 'INTERSECT' || upper === 'EXCEPT') setOps++;
      cur += PER_TOKEN;
    }
    if (cur > max) max = cur;
  }
  return max + setOps * PER_TOKEN;
}

/** Depth of a parsed JSON tree, walked without recursion. */
export function treeDepth(root: unknown, stopAbove: number): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[root, 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (depth > max) {
      max = depth;
      if (max > stopAbove) return max;
    }
    const children = Array.isArray(value) ? value : Object.values(value);
    for (const child of children) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return max;
}
