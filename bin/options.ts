/** Option parsers shared by the commands: a bad value is a clear error, not a NaN deep in training. */
import { InvalidArgumentError } from 'commander';
import { parseViews } from '../core/preprocess/views.ts';

export function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got '${v}'`);
  return n;
}

export function num(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got '${v}'`);
  return n;
}

export function intList(v: string): number[] {
  return v
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((s) => int(s.trim()));
}

/**
 * A repeatable option whose values may also be comma lists (`--x a --x b,c` → [a, b, c]); commander passes
 * the values so far (first the default) as `prev`.
 */
export function repeatableList(v: string, prev: readonly string[]): string[] {
  return [
    ...prev,
    ...v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  ];
}

/** A comma list of view names (core/preprocess/views.ts), checked: known names, no repeats, >= 2. */
export function viewList(v: string): string[] {
  try {
    return parseViews(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}
