/**
 * Numbers as lists of vocabulary files, for `play` (US English, no "and"):
 *
 *   number(0)        -> ['0']
 *   number(42)       -> ['40', '2']
 *   number(105)      -> ['1', 'hundred', '5']
 *   number(1000)     -> ['1', 'thousand']
 *   number(-3)       -> ['minus', '3']
 *   digits('555*1#') -> ['5', '5', '5', 'star', '1', 'pound']
 *
 * The names are those of the bundled vocabulary (resources/vocabulary): '0'..'19', '20', '30',
 * ..., '90', 'hundred', 'thousand', 'million', 'billion', 'minus', 'star', 'pound'. The Perl
 * module's number() said nothing for 0 and failed above 999; this one covers every integer of
 * magnitude up to 999,999,999,999.
 */
import { ValidationError } from './errors';

/** Largest magnitude number() speaks. */
export const MAX_SPOKEN_NUMBER = 999_999_999_999;

const SCALES = ['', 'thousand', 'million', 'billion'] as const;

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null) return 'null';
  return typeof v;
}

/** Below 1000, without anything for 0. */
function hundreds(n: number, out: string[]): void {
  const h = Math.floor(n / 100);
  const r = n % 100;
  if (h > 0) out.push(String(h), 'hundred');
  if (r === 0) return;
  if (r < 20) {
    out.push(String(r));
  } else {
    out.push(String(r - (r % 10)));
    if (r % 10) out.push(String(r % 10));
  }
}

function toBigInt(n: number | bigint | string): bigint {
  if (typeof n === 'bigint') return n;
  if (typeof n === 'number') {
    if (!Number.isFinite(n)) throw new ValidationError(`${show(n)} is not a finite number`, 'number');
    if (!Number.isInteger(n)) throw new ValidationError(`${show(n)} is not an integer`, 'number');
    if (!Number.isSafeInteger(n)) throw new ValidationError(`${show(n)} is too large (the limit is ${MAX_SPOKEN_NUMBER})`, 'number');
    return BigInt(n);
  }
  if (typeof n === 'string') {
    const s = n.trim();
    if (!/^[+-]?\d+$/.test(s)) throw new ValidationError(`${show(n)} is not an integer`, 'number');
    return BigInt(s);
  }
  throw new ValidationError(`expected a number, bigint or string, got ${show(n)}`, 'number');
}

/**
 * The vocabulary names that speak the integer `n` (a number, bigint or decimal string such as
 * "-42"). Throws ValidationError ('EINVAL') for NaN, infinities, fractions, non-numeric strings
 * and magnitudes above MAX_SPOKEN_NUMBER.
 */
export function number(n: number | bigint | string): string[] {
  let v = toBigInt(n);
  const out: string[] = [];
  if (v < 0n) {
    v = -v;
    if (v > BigInt(MAX_SPOKEN_NUMBER)) throw new ValidationError(`${show(n)} is too small (the limit is -${MAX_SPOKEN_NUMBER})`, 'number');
    out.push('minus');
  } else if (v > BigInt(MAX_SPOKEN_NUMBER)) {
    throw new ValidationError(`${show(n)} is too large (the limit is ${MAX_SPOKEN_NUMBER})`, 'number');
  }
  if (v === 0n) return ['0']; // also "-0": no 'minus'
  let rest = Number(v);
  const groups: number[] = [];
  while (rest > 0) {
    groups.push(rest % 1000);
    rest = Math.floor(rest / 1000);
  }
  for (let g = groups.length - 1; g >= 0; g--) {
    if (groups[g] === 0) continue;
    hundreds(groups[g], out);
    if (SCALES[g]) out.push(SCALES[g]);
  }
  return out;
}

/** Characters digits() passes over: separators in written phone numbers. */
const DIGIT_SEPARATORS = /[\s\-.()+\/]/;

/**
 * Each digit of `s` as its own name ('0'..'9'), '*' as 'star' and '#' as 'pound', for phone and
 * account numbers. Spaces and the separators - . ( ) + / are skipped; anything else (letters,
 * including the DTMF keys A-D, which have no recording) throws ValidationError naming it.
 */
export function digits(s: string): string[] {
  if (typeof s !== 'string') throw new ValidationError(`expected a string, got ${show(s)}`, 'digits');
  const out: string[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c >= '0' && c <= '9') out.push(c);
    else if (c === '*') out.push('star');
    else if (c === '#') out.push('pound');
    else if (!DIGIT_SEPARATORS.test(c)) {
      throw new ValidationError(`${JSON.stringify(s)} has ${JSON.stringify(c)} at position ${i}, which is not a digit, * or #`, 'digits');
    }
  }
  return out;
}
