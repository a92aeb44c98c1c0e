import { z } from 'zod';
import { SimValidationError, firstIssue } from './validation.js';

/** How the simulated downstream misbehaves. Every rate is a fraction in [0, 1]. */
export interface SimProfile {
  /**
   * Fraction of requests answered with `failStatus`.
   * @default 0.3
   */
  failRate: number;
  /**
   * Status of a simulated failure.
   * @default 503
   */
  failStatus: 503 | 429 | 500 | 502 | 504;
  /**
   * Mean latency of an answer, in milliseconds.
   * @default 20
   */
  latencyMs: number;
  /**
   * Uniform jitter (+-) around `latencyMs`, in milliseconds.
   * @default latencyMs / 2
   */
  jitterMs: number;
  /**
   * Fraction of requests that take `tailMs` instead of the usual latency.
   * @default 0.01
   */
  tailRate: number;
  /**
   * Latency of a long-tail request, in milliseconds.
   * @default 500
   */
  tailMs: number;
  /**
   * Fraction of requests that are never answered (until the client gives up).
   * @default 0
   */
  hangRate: number;
  /**
   * When set, 503 and 429 answers carry `Retry-After: <retryAfterS>`.
   * @default null
   */
  retryAfterS: number | null;
  /**
   * Concurrent requests served at full speed. Each request beyond it adds
   * `latencyMs` of latency (capped) and raises the chance of a 503; beyond
   * twice the capacity every request is answered 503 at once. `null` is unlimited.
   * @default null
   */
  capacity: number | null;
}

// setTimeout overflows past 2^31-1 ms and fires at once; ten minutes is plenty.
const MAX_DELAY_MS = 600_000;

const rate = () => {
  const expected = 'expected a number from 0 to 1';
  return z.number({ error: expected }).min(0, { error: expected }).max(1, { error: expected });
};

const durationMs = () => {
  const expected = `expected a number of milliseconds from 0 to ${MAX_DELAY_MS}`;
  return z
    .number({ error: expected })
    .min(0, { error: expected })
    .max(MAX_DELAY_MS, { error: expected });
};

const failStatuses = [503, 429, 500, 502, 504] as const;

/** The complete profile, strict: unknown fields are rejected so typos do not pass silently. */
export const simProfileSchema = z.strictObject({
  failRate: rate(),
  failStatus: z.literal(failStatuses, { error: `expected one of ${failStatuses.join(', ')}` }),
  latencyMs: durationMs(),
  jitterMs: durationMs(),
  tailRate: rate(),
  tailMs: durationMs(),
  hangRate: rate(),
  retryAfterS: z
    .int({ error: 'expected whole seconds from 0 to 86400, or null' })
    .min(0, { error: 'expected whole seconds from 0 to 86400, or null' })
    .max(86_400, { error: 'expected whole seconds from 0 to 86400, or null' })
    .nullable(),
  capacity: z
    .int({ error: 'expected a positive integer, or null for unlimited' })
    .min(1, { error: 'expected a positive integer, or null for unlimited' })
    .nullable(),
});

/** A partial profile, as accepted by `setProfile` and `PUT /__sim/profile`. */
export const simProfilePatchSchema = simProfileSchema.partial();

// Both directions, so the hand-written interface (which carries the docs) and the schema cannot drift.
type Inferred = z.infer<typeof simProfileSchema>;
const inferredIsProfile = (p: Inferred): SimProfile => p;
const profileIsInferred = (p: SimProfile): Inferred => p;
void inferredIsProfile;
void profileIsInferred;

/** The profile used when nothing is configured. */
export const defaultSimProfile: Readonly<SimProfile> = Object.freeze({
  failRate: 0.3,
  failStatus: 503,
  latencyMs: 20,
  jitterMs: 10,
  tailRate: 0.01,
  tailMs: 500,
  hangRate: 0,
  retryAfterS: null,
  capacity: null,
});

/**
 * Validates `patch` and applies it to `base`. A patch that sets `latencyMs`
 * without `jitterMs` also resets the jitter to `latencyMs / 2`, so that the
 * documented default holds for any latency.
 * @throws {SimValidationError} naming the first bad field.
 */
export function applySimProfilePatch(base: SimProfile, patch: unknown): SimProfile {
  const parsed = simProfilePatchSchema.safeParse(patch);
  if (!parsed.success) {
    const { field, message } = firstIssue(parsed.error, patch);
    throw new SimValidationError(field, message);
  }
  const next: SimProfile = { ...base, ...stripUndefined(parsed.data) };
  if (parsed.data.latencyMs !== undefined && parsed.data.jitterMs === undefined) {
    next.jitterMs = parsed.data.latencyMs / 2;
  }
  return next;
}

// `{ failRate: undefined }` must mean "unchanged", not "erase".
function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
