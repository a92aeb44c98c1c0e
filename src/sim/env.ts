/**
 * Environment parsing shared by the standalone entry points (`main.ts`,
 * `providers-main.ts`). Only those two call it; nothing else reads the environment.
 */
import { z } from 'zod';

/** Env strings become numbers here; the inner schema then says what it expects. */
export const fromEnv = <T extends z.ZodType>(inner: T) =>
  z.preprocess((value) => (typeof value === 'string' ? envNumber(value) : value), inner);

const portExpected = 'expected an integer port from 0 to 65535';

export const envPort = fromEnv(
  z.int({ error: portExpected }).min(0, { error: portExpected }).max(65_535, { error: portExpected }),
);

// Strict decimal only: Number() would also take '', '0x1f' and '1e3'.
function envNumber(value: string): number {
  return /^\s*-?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : Number.NaN;
}

/** Writes one line to stderr and exits 1. */
export function fail(line: string): never {
  process.stderr.write(`${line}\n`);
  process.exit(1);
}

/**
 * Parses the environment; an empty variable (`SIM_CAPACITY=` in an env file)
 * means "use the default". On a bad value, exits 1 with one line naming the
 * variable, its value and what was expected.
 */
export function parseEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv): z.output<T> {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(present);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const name = String(issue?.path[0] ?? 'environment');
  fail(`Invalid ${name}=${JSON.stringify(present[name] ?? '')}: ${issue?.message ?? 'invalid value'}`);
}
