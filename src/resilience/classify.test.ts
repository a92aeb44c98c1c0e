import { describe, expect, it } from 'vitest';
import { AttemptAbortedError, AttemptTimeoutError, ConnectionFailedError } from '../downstream/client.js';
import { classifyError, classifyStatus, deliveryOf } from './classify.js';

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
    expect(classifyError(new AttemptTimeoutError(100, 'unknown')).kind).toBe('transient');
    expect(classifyError(new ConnectionFailedError('ECONNREFUSED', 'refused', 'no'))).toEqual({ kind: 'transient', reason: 'connection failed (ECONNREFUSED)' });
    expect(classifyError(new AttemptAbortedError()).kind).toBe('aborted');
  });

  describe('by method', () => {
    const post = { method: 'POST', keyed: false };
    const keyedPost = { method: 'POST', keyed: true };
    it.each([429, 503])('retries a POST without a key on HTTP %i (nothing was processed)', (status) => {
      expect(classifyStatus(status, post).kind).toBe('transient');
    });
    it.each([408, 500, 502, 504])('does not retry a POST without a key on HTTP %i (it may have been processed)', (status) => {
      expect(classifyStatus(status, post)).toEqual({ kind: 'permanent', reason: `HTTP ${status}`, ambiguous: true });
      expect(classifyStatus(status, { method: 'PATCH', keyed: false }).kind).toBe('permanent');
    });
    it.each([408, 500, 502, 504])('retries a keyed POST, and any idempotent method, on HTTP %i', (status) => {
      expect(classifyStatus(status, keyedPost).kind).toBe('transient');
      for (const method of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']) expect(classifyStatus(status, { method, keyed: false }).kind).toBe('transient');
    });
    it('retries a POST without a key after a failure before anything was written, never after one that was written', () => {
      expect(classifyError(new ConnectionFailedError('ECONNREFUSED', 'refused', 'no'), post).kind).toBe('transient');
      expect(classifyError(new AttemptTimeoutError(100, 'no'), post).kind).toBe('transient');
      expect(classifyError(new AttemptTimeoutError(100, 'unknown'), post)).toMatchObject({ kind: 'permanent', ambiguous: true });
      expect(classifyError(new ConnectionFailedError('ECONNRESET', 'reset', 'unknown'), post)).toMatchObject({ kind: 'permanent', ambiguous: true });
      expect(classifyError(new AttemptTimeoutError(100, 'unknown'), keyedPost).kind).toBe('transient');
    });
  });

  describe('delivery', () => {
    it('is unknown when any attempt may have been processed, not_sent when none left, failed otherwise', () => {
      expect(deliveryOf([{ sent: 'no' }, { sent: 'no' }])).toBe('not_sent');
      expect(deliveryOf([{ sent: 'no' }, { sent: 'unknown' }])).toBe('unknown');
      expect(deliveryOf([{ sent: 'yes', status: 503 }, { sent: 'yes', status: 429 }])).toBe('failed');
      expect(deliveryOf([{ sent: 'yes', status: 503 }, { sent: 'yes', status: 500 }])).toBe('unknown');
    });
  });
});
