import { describe, expect, it } from 'vitest';
import { AttemptAbortedError, AttemptTimeoutError, ConnectionFailedError } from '../downstream/client.js';
import { classifyError, classifyStatus } from './classify.js';

describe('failure classification', () => {
  it.each([408, 429, 500, 502, 503, 504])('retries HTTP %i', (status) => {
    expect(classifyStatus(status).kind).toBe('transient');
  });
  it.each([200, 201, 204, 301, 400, 401, 403, 404, 409, 422])('passes HTTP %i through as definitive', (status) => {
    expect(classifyStatus(status).kind).toBe('definitive');
  });
  it.each([501, 505, 511])('gives up on HTTP %i at once (another attempt will not fix it)', (status) => {
    expect(classifyStatus(status).kind).toBe('permanent');
  });
  it('retries timeouts and connection errors, stops on a caller abort', () => {
    expect(classifyError(new AttemptTimeoutError(100)).kind).toBe('transient');
    expect(classifyError(new ConnectionFailedError('ECONNREFUSED', 'refused'))).toEqual({ kind: 'transient', reason: 'connection failed (ECONNREFUSED)' });
    expect(classifyError(new AttemptAbortedError()).kind).toBe('aborted');
  });
});
