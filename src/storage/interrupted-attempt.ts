import type { AttemptRecord } from '../domain.js';

/**
 * What a job's history records for the attempt of a worker that stopped (kill -9,
 * a lost store) while holding the job: `lease` appends it when it takes the job
 * over, so the attempt counts towards the job's limit. Whether it reached the
 * downstream nobody knows.
 *
 * @param at the take-over (epoch ms): the attempt ended by then at the latest.
 */
export function interruptedAttempt(at: number): AttemptRecord {
  return {
    at: new Date(at).toISOString(),
    outcome: 'interrupted',
    durationMs: 0,
    sent: 'unknown',
    error: 'the worker holding the job stopped (its lease expired) before recording an outcome',
  };
}
