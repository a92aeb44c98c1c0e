import { z } from 'zod';
import { SimValidationError, firstIssue } from './validation.js';

/**
 * One scripted answer. Scripted answers are served in order to the next
 * simulated calls, before (and regardless of) the random profile and capacity.
 */
export interface ScriptedResponse {
  /**
   * Status to answer with. 2xx echoes the request; 4xx/5xx send a problem body.
   * @default 200
   */
  status?: number;
  /**
   * Delay before answering, in milliseconds. Zero keeps scripted tests deterministic.
   * @default 0
   */
  delayMs?: number;
  /**
   * Never answer (until the client gives up).
   * @default false
   */
  hang?: boolean;
  /** Sends `Retry-After: <retryAfterS>` whatever the status. */
  retryAfterS?: number;
  /** Sent as the JSON body instead of the echo or the problem. */
  body?: unknown;
}

export const scriptedResponseSchema = z.strictObject({
  status: z
    .int({ error: 'expected an HTTP status from 200 to 599' })
    .min(200, { error: 'expected an HTTP status from 200 to 599' })
    .max(599, { error: 'expected an HTTP status from 200 to 599' })
    .optional(),
  delayMs: z
    .number({ error: 'expected milliseconds from 0 to 600000' })
    .min(0, { error: 'expected milliseconds from 0 to 600000' })
    .max(600_000, { error: 'expected milliseconds from 0 to 600000' })
    .optional(),
  hang: z.boolean({ error: 'expected true or false' }).optional(),
  retryAfterS: z
    .int({ error: 'expected whole seconds from 0 to 86400' })
    .min(0, { error: 'expected whole seconds from 0 to 86400' })
    .max(86_400, { error: 'expected whole seconds from 0 to 86400' })
    .optional(),
  body: z.unknown().optional(),
});

export const scriptSchema = z.array(scriptedResponseSchema, { error: 'expected an array of scripted responses' });

/**
 * Validates a script.
 * @throws {SimValidationError} naming the first bad entry and field (e.g. `[1].status`).
 */
export function parseScript(input: unknown): ScriptedResponse[] {
  const parsed = scriptSchema.safeParse(input);
  if (!parsed.success) {
    const { field, message } = firstIssue(parsed.error, input);
    throw new SimValidationError(field, message);
  }
  return parsed.data;
}
