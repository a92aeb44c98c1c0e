import type { AttemptRecord } from '../types.js';

/** JSON text columns and epoch-ms times, as the rows store them and the interface shows them. */
export function parseAttempts(json: string): AttemptRecord[] {
  return JSON.parse(json) as AttemptRecord[];
}

export function parseHeaders(json: string): Record<string, string> {
  return JSON.parse(json) as Record<string, string>;
}

/** Appends to a stored attempts array (the read half of a read-modify-write in a transaction). */
export function appendAttempts(json: string, more: readonly AttemptRecord[]): string {
  return more.length === 0 ? json : JSON.stringify([...parseAttempts(json), ...more]);
}

export const toIso = (ms: number): string => new Date(ms).toISOString();

/**
 * A time for an INTEGER column: STRICT tables refuse a fractional REAL, and a fake
 * clock or a computed backoff may hand one in. Up, so a job is never leased early.
 */
export const wholeMs = (ms: number): number => Math.ceil(ms);
