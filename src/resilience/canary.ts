import { canaryPercent, protectionMode, type ProtectionMode } from './mode.js';

/** Which way a protection in `canary` mode treats one request: it enforces, or it only reports. */
export type CanarySide = 'enforced' | 'shadow';

export const CANARY_SIDES: readonly CanarySide[] = ['enforced', 'shadow'];

/** 2^32: the hash's range. */
const HASH_RANGE = 4_294_967_296;

/**
 * The side of the request (or job, or DLQ entry) with the relay-made `id`:
 * `enforced` for `percent` % of ids, spread evenly, the same every time for the
 * same id and salt. Pure: a retry, a job's next attempt after a restart and a
 * redrive land on the same side. The id must be one the relay made (a UUID),
 * never a client's header, or a client could choose its side.
 *
 * FNV-1a over `salt:id`, then murmur3's finaliser so that ids differing in the
 * last characters spread over the whole range. Not a secret: it only has to
 * split ids nobody outside chose.
 */
export function canarySide(id: string, percent: number, salt: string): CanarySide {
  if (percent <= 0) return 'shadow';
  if (percent >= 100) return 'enforced';
  const text = `${salt}:${id}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return ((h >>> 0) / HASH_RANGE) * 100 < percent ? 'enforced' : 'shadow';
}

/** What one side of a canary saw: calls that asked the protection, how many failed, and what it decided. */
export interface CanarySideCounts {
  /** Calls (or requests, for the retry budget) that asked the protection on this side. */
  requests: number;
  /** Of those, how many failed at the downstream. */
  failures: number;
  /** Refused (enforced side), or would have been refused (shadow side). */
  rejected: number;
  /** Made to wait (enforced side), or would have been made to wait (shadow side). */
  delayed: number;
}

/** A protection's canary in `/stats`: its percent, and both sides side by side. */
export interface CanarySnapshot {
  percent: number;
  enforced: CanarySideCounts;
  shadow: CanarySideCounts;
}

const zero = (): CanarySideCounts => ({ requests: 0, failures: 0, rejected: 0, delayed: 0 });

/**
 * A protection's mode, and in `canary` mode the side of each call and both
 * sides' counts. One per protection instance; `salt` names the protection, so
 * that the breaker's 10% and the rate limit's 10% are not the same requests
 * (each canary compares sides that differ in that protection alone).
 */
export class Enforcement {
  readonly mode: ProtectionMode;
  readonly percent: number;
  private readonly salt: string;
  private readonly counts: Record<CanarySide, CanarySideCounts> | null;

  constructor(options: { mode?: ProtectionMode | undefined; canaryPercent?: number | undefined; salt: string }) {
    this.mode = protectionMode(options.mode);
    this.percent = canaryPercent(options.canaryPercent);
    this.salt = options.salt;
    this.counts = this.mode === 'canary' ? { enforced: zero(), shadow: zero() } : null;
  }

  /**
   * How the call of the request with relay-made `id` is treated: `enforced` in
   * enforce mode, `shadow` in shadow (and off) mode, by the id's hash in canary
   * mode. A canary call with no id is on the shadow side: a caller that cannot
   * say which request it is must not be refused for it.
   */
  sideOf(id: string | undefined): CanarySide {
    if (this.mode === 'enforce') return 'enforced';
    if (this.mode !== 'canary' || id === undefined) return 'shadow';
    return canarySide(id, this.percent, this.salt);
  }

  /** Counts on `side` (canary mode only; a no-op otherwise). */
  count(side: CanarySide, what: keyof CanarySideCounts): void {
    if (this.counts) this.counts[side][what]++;
  }

  /** Both sides' counts in canary mode; undefined otherwise (the snapshot leaves the member out). */
  snapshot(): CanarySnapshot | undefined {
    if (!this.counts) return undefined;
    return { percent: this.percent, enforced: { ...this.counts.enforced }, shadow: { ...this.counts.shadow } };
  }

  /** A protection snapshot's `canary` member: present in canary mode only. */
  member(): { canary?: CanarySnapshot } {
    const canary = this.snapshot();
    return canary ? { canary } : {};
  }
}
