import type { DlqFilter, QueueLimits } from './types.js';

// Checks every backend makes before it touches its datastore, kept in one place so
// that a bad argument fails the same way, with the same message, on either backend.

const REASONS: ReadonlySet<string> = new Set(['permanent', 'transient']);

/** @throws RangeError unless `limit` is an integer from 1 and up. */
export function assertLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`Expected \`limit\` to be an integer from 1 and up, got \`${limit}\``);
  }
}

/** @throws RangeError unless `leaseMs` is a finite number above 0. */
export function assertLeaseMs(leaseMs: number): void {
  if (!Number.isFinite(leaseMs) || leaseMs <= 0) {
    throw new RangeError(`Expected \`leaseMs\` to be a number above 0, got \`${leaseMs}\``);
  }
}

/** @throws RangeError naming `name` unless `value` is a finite number (epoch ms). */
export function assertEpochMs(name: string, value: number): void {
  if (!Number.isFinite(value)) throw new RangeError(`Expected \`${name}\` to be epoch milliseconds, got \`${value}\``);
}

/** @throws RangeError naming the first field of `filter` that no backend could honour. */
export function assertDlqFilter({ reason, updatedBefore, redrivesBelow }: DlqFilter): void {
  if (reason !== undefined && !REASONS.has(reason)) {
    throw new RangeError(`Expected \`filter.reason\` to be 'permanent' or 'transient', got \`${String(reason)}\``);
  }
  if (updatedBefore !== undefined) assertEpochMs('filter.updatedBefore', updatedBefore);
  if (redrivesBelow !== undefined && !Number.isSafeInteger(redrivesBelow)) {
    throw new RangeError(`Expected \`filter.redrivesBelow\` to be an integer, got \`${redrivesBelow}\``);
  }
}

/** @throws RangeError unless a caller-chosen `id` is a non-empty string of at most 255 characters. */
export function assertId(name: string, id: string): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > 255) {
    throw new RangeError(`Expected \`${name}\` to be a string of 1 to 255 characters, got \`${String(id).slice(0, 64)}\``);
  }
}

/** @throws RangeError naming the first limit that is not a number from 0 up. */
export function assertQueueLimits({ maxQueued, maxQueuedBytes }: QueueLimits): void {
  for (const [name, value] of [['maxQueued', maxQueued], ['maxQueuedBytes', maxQueuedBytes]] as const) {
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
      throw new RangeError(`Expected \`limits.${name}\` to be a number from 0 up, got \`${value}\``);
    }
  }
}
