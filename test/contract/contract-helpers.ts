import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { AttemptRecord, RelayStore, StoredResponse } from '../../src/storage/types.js';

/** What each part of the contract suite sees: the store under test and a base time, both set per test. */
export interface ContractContext {
  readonly store: RelayStore;
  /** Epoch ms near real time, fixed for the test; every `now` is an offset from it. */
  readonly t0: number;
}

/** A key no other test (or earlier run against a shared backend) can have used. */
export const uniqueKey = (): string => `contract-${randomUUID()}`;

/** An answer with bytes that would not survive a text round trip. */
export function sampleResponse(): StoredResponse {
  // Sliced out of a larger buffer: a backend must store the view, not the pool behind it.
  const backing = Buffer.from([0xde, 0xad, 0x00, 0xff, 0xfe, 0x7b, 0x22, 0xc3, 0xa9, 0x22, 0x7d, 0x00, 0xbe, 0xef]);
  return {
    status: 201,
    headers: { 'content-type': 'application/octet-stream' },
    body: backing.subarray(2, 12),
  };
}

/** A failed attempt: an HTTP error with `status`, or a connection error without one. */
export function attempt(at: number, status: number | undefined): AttemptRecord {
  return status === undefined
    ? { at: new Date(at).toISOString(), outcome: 'connection_error', durationMs: 12, error: 'ECONNREFUSED' }
    : { at: new Date(at).toISOString(), outcome: 'http_error', status, durationMs: 37 };
}

/** Same bytes, and really a Buffer (not a string or a plain Uint8Array). */
export function expectSameBytes(actual: Buffer, expected: Buffer): void {
  expect(Buffer.isBuffer(actual)).toBe(true);
  expect(actual.length).toBe(expected.length);
  // equals() rather than toEqual on 200 kB: a failure message of that size helps nobody.
  expect(actual.equals(expected)).toBe(true);
}
