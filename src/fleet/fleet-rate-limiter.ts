import type { Clock } from '../clock.js';
import { RateLimiter } from '../resilience/rate-limiter.js';
import type { RateLimitKnobs } from '../routes/route-spec.js';
import type { Fleet } from './fleet.js';

export interface FleetRateLimiterOptions {
  clock: Clock;
  fleet: Pick<Fleet, 'shared' | 'instances' | 'run' | 'onModeChange'>;
  /** The route's knobs, mode `enforce`: `ratePerSecond` and `burst` are fleet totals. */
  knobs: RateLimitKnobs;
  /** The bucket's Redis key. */
  key: string;
  /** How long a lease of slots should last at the full rate: its size is rate x leaseMs. @default 100 */
  leaseMs?: number;
}

/** The `RateLimit` header counts slots due this soon as free now; and a slot may be used this late at least. */
const SLOT_GRACE_MS = 2;
/** A warm-up another instance began this recently is the same one (every breaker closes within a second). */
const SAME_WARMUP_MS = 1_000;

/** How long the clock offset of the quickest round trip is trusted before any later one replaces it. */
const OFFSET_REFRESH_MS = 10_000;

/** How long to wait before asking again after a lease that granted nothing while callers still wait. */
const RETRY_EMPTY_LEASE_MS = 10;

interface Waiter {
  maxWaitMs: number;
  at: number;
  resolve: (grant: SlotGrant | null) => void;
}

/**
 * A send slot given to one caller: wait `waitMs`, then send by `sendBy` (local
 * clock). A caller that wakes later (a busy event loop fires timers late) must
 * take another slot: sent past its slot's deadline, its call would leave beside
 * the next slots' calls, above the fleet's bound. Infinity from the local share.
 */
export interface SlotGrant {
  waitMs: number;
  sendBy: number;
}

const localGrant = (waitMs: number | null): SlotGrant | null => (waitMs === null ? null : { waitMs, sendBy: Number.POSITIVE_INFINITY });

/**
 * A route's rate limit shared by every instance on Redis (issue 14), with the
 * RateLimiter's interface. Redis runs GCRA with reservation (fleet-rate-take.lua)
 * and hands out send slots, times at which one call may leave; an instance
 * leases a few at a time (about leaseMs worth at the rate it is asked for) and
 * serves callers from them without a round trip. A slot is used between its
 * time and a deadline (its GCRA arrival time plus a grace paid for out of the
 * burst tolerance) or not at all, so the calls leave as GCRA admitted them: at
 * most rate x W + burst over any window W, fleet-wide, whatever the leases. An
 * unused slot is capacity lost, never added.
 *
 * `reserve` answers at once from a lease, and with a promise when it has to ask
 * Redis. While Redis is lost it answers from a local RateLimiter with 1/N of the
 * rate and burst (N: the last fleet size seen).
 */
export class FleetRateLimiter {
  private readonly clock: Clock;
  private readonly fleet: FleetRateLimiterOptions['fleet'];
  private readonly knobs: RateLimitKnobs;
  private readonly key: string;
  private readonly leaseMs: number;
  private readonly maxLease: number;
  /** The leased slots, in local clock times, ascending: each may be used from `from` until `until`. */
  private slots: Array<{ from: number; until: number }> = [];
  private readonly waiting: Waiter[] = [];
  private leasing = false;
  private warmupPending = false;
  private warmupStartedAt = Number.NEGATIVE_INFINITY;
  /** Callers in the current and the previous lease period: how many slots the next lease asks for. */
  private demand = { periodStart: 0, current: 0, previous: 0 };
  private fallback: RateLimiter | null = null;
  private offset = { aheadMs: 0, rttMs: Number.POSITIVE_INFINITY, at: 0 };
  private delayed = 0;
  private rejected = 0;
  private leases = 0;
  private expired = 0;
  private missed = 0;

  constructor(options: FleetRateLimiterOptions) {
    this.clock = options.clock;
    this.fleet = options.fleet;
    this.knobs = options.knobs;
    this.key = options.key;
    this.leaseMs = options.leaseMs ?? 100;
    this.maxLease = Math.max(1, Math.ceil((this.knobs.ratePerSecond * this.leaseMs) / 1000));
    this.fleet.onModeChange((shared) => {
      this.slots = [];
      if (shared && this.fallback) {
        // Callers the local share sent into the future still go: their calls are charged to the fleet's
        // bucket (ahead of any lease, on the same connection), or the fleet would send its rate beside them.
        const debt = Math.ceil(Math.max(0, -this.fallback.snapshot().tokens));
        if (debt > 0) this.charge(debt, (debt * 1000) / this.fallback.currentRatePerSecond());
        this.fallback = null;
      }
      if (!shared) {
        this.fallback = this.localShare();
        // Callers waiting on Redis are served by the local share rather than by a lease that will not come.
        for (const waiter of this.waiting.splice(0)) waiter.resolve(localGrant(this.fallback.reserve(this.remaining(waiter))));
      }
    });
  }

  reserve(maxWaitMs: number): number | null | Promise<number | null> {
    const grant = this.reserveSlot(maxWaitMs);
    return grant instanceof Promise ? grant.then((g) => g?.waitMs ?? null) : (grant?.waitMs ?? null);
  }

  /** `reserve` with the slot's deadline: the DownstreamSet sends by it or asks again (see SlotGrant). */
  reserveSlot(maxWaitMs: number): SlotGrant | null | Promise<SlotGrant | null> {
    const now = this.clock.now();
    if (!this.fleet.shared) return localGrant(this.local().reserve(maxWaitMs));
    this.countDemand(now);
    const grant = this.takeSlot(now, maxWaitMs);
    if (grant !== undefined) {
      // Lease ahead while the last slots are used, so that a steady stream never waits on Redis.
      if (this.slots.length * 2 < this.demand.previous) this.lease();
      return grant;
    }
    return new Promise((resolve) => {
      this.waiting.push({ maxWaitMs, at: now, resolve });
      this.lease();
    });
  }

  /** A caller woke past its slot's deadline and sends nothing on it (the slot is capacity lost). */
  slotMissed(): void {
    this.missed++;
  }

  /** A slot whose call never left cannot be given back without risking the bound: it is simply lost. */
  refund(): void {
    if (!this.fleet.shared) this.fallback?.refund();
  }

  /** Begins the ramp fleet-wide (on the next lease; a peer's that began within a second is the same one) and locally. */
  startWarmup(): void {
    if (this.knobs.warmupMs === 0) return;
    this.warmupPending = true;
    this.warmupStartedAt = this.clock.now();
    this.fallback?.startWarmup();
  }

  get warmingUp(): boolean {
    if (!this.fleet.shared) return this.local().warmingUp;
    return this.knobs.warmupMs > 0 && this.clock.now() < this.warmupStartedAt + this.knobs.warmupMs;
  }

  /** The fleet's rate now, as this instance knows the ramp (the local share's while Redis is lost). */
  currentRatePerSecond(): number {
    if (!this.fleet.shared) return this.local().currentRatePerSecond();
    const { ratePerSecond, warmupMs, warmupStartRatePerSecond } = this.knobs;
    const elapsed = this.clock.now() - this.warmupStartedAt;
    if (warmupMs === 0 || elapsed >= warmupMs) return ratePerSecond;
    return warmupStartRatePerSecond + (ratePerSecond - warmupStartRatePerSecond) * Math.max(0, elapsed / warmupMs);
  }

  /** `leases`: round trips to Redis; `slotsExpired`: leased slots that passed unused (capacity lost, never added). */
  snapshot(): ReturnType<RateLimiter['snapshot']> & { fleet: 'shared' | 'local'; leases: number; slotsExpired: number; slotsMissed: number } {
    const local = this.fleet.shared ? null : this.local().snapshot();
    const now = this.clock.now();
    return {
      mode: this.knobs.mode,
      ratePerSecond: this.knobs.ratePerSecond,
      currentRatePerSecond: this.currentRatePerSecond(),
      burst: this.knobs.burst,
      tokens: local ? local.tokens : this.slots.filter((slot) => slot.from <= now).length - this.waiting.length,
      warmingUp: this.warmingUp,
      delayed: this.delayed + (local?.delayed ?? 0),
      rejected: this.rejected + (local?.rejected ?? 0),
      shadowDelayed: 0,
      shadowRejected: 0,
      fleet: this.fleet.shared ? 'shared' : 'local',
      leases: this.leases,
      slotsExpired: this.expired,
      slotsMissed: this.missed,
    };
  }

  /** The IETF `RateLimit` header: the fleet's rate, and the slots this instance holds that are due now. */
  headerState(): { ratePerSecond: number; remaining: number; resetS: number } | null {
    if (!this.fleet.shared) return this.local().headerState();
    const now = this.clock.now();
    const due = this.slots.filter((slot) => slot.from <= now + SLOT_GRACE_MS).length;
    const next = this.slots.find((slot) => slot.from > now);
    return { ratePerSecond: this.knobs.ratePerSecond, remaining: due, resetS: due > 0 || next === undefined ? 0 : Math.ceil((next.from - now) / 1000) };
  }

  /** The next usable slot (which is taken), null when it is beyond maxWaitMs, undefined with no slot at all. */
  private takeSlot(now: number, maxWaitMs: number): SlotGrant | null | undefined {
    let first = 0;
    while (first < this.slots.length && this.slots[first]!.until < now) first++;
    if (first > 0) {
      this.slots = this.slots.slice(first);
      this.expired += first;
    }
    const slot = this.slots[0];
    if (slot === undefined) return undefined;
    const waitMs = Math.max(0, Math.ceil(slot.from - now));
    if (waitMs > maxWaitMs) {
      this.rejected++;
      return null;
    }
    this.slots.shift();
    if (waitMs > 0) this.delayed++;
    // A timer fires a little late even on an idle loop: a slot with no grace (burst 1) still gets that much.
    return { waitMs, sendBy: Math.max(slot.until, slot.from + SLOT_GRACE_MS) };
  }

  private countDemand(now: number): void {
    const d = this.demand;
    if (now - d.periodStart >= this.leaseMs) {
      d.previous = now - d.periodStart >= 2 * this.leaseMs ? 0 : d.current;
      d.current = 0;
      d.periodStart = now;
    }
    d.current++;
  }

  /** One lease in flight at a time; it repeats while callers wait. */
  private lease(): void {
    if (this.leasing || !this.fleet.shared) return;
    this.leasing = true;
    const wanted = Math.min(this.maxLease, Math.max(1, this.waiting.length + this.demand.previous - this.slots.length));
    // Waiting callers borrow from the future as far as their patience goes, as the local limiter lets them;
    // slots leased ahead reach only one lease period out.
    const now = this.clock.now();
    const sentAt = now;
    const horizonMs = Math.max(this.leaseMs, ...this.waiting.map((w) => this.remaining(w, now)));
    const warmup = this.warmupPending;
    let grantedNone = false;
    const args = [this.knobs.ratePerSecond, this.knobs.burst, wanted, horizonMs, this.knobs.warmupMs, this.knobs.warmupStartRatePerSecond, warmup ? 1 : 0, SAME_WARMUP_MS, this.leaseMs];
    this.fleet
      .run('fleet-rate-take', [this.key], args)
      .then((reply) => {
        if (warmup) this.warmupPending = false;
        this.leases++;
        const [granted, redisNow, ...rest] = reply as [number, string, ...string[]];
        const at = this.clock.now();
        const slotsAt = Number(redisNow) - this.redisAhead(Number(redisNow), sentAt, at);
        for (let i = 0; i < granted; i++) this.slots.push({ from: slotsAt + Number(rest[2 * i]), until: slotsAt + Number(rest[2 * i + 1]) });
        grantedNone = granted === 0;
        this.serveWaiting(at, granted > 0 ? null : Number(rest[0]));
      })
      .catch(() => {
        // The fleet is now local: the mode listener served the waiting callers.
      })
      .finally(() => {
        this.leasing = false;
        if (this.waiting.length === 0 || !this.fleet.shared) return;
        // Nothing granted yet someone still waits (clock noise at the horizon): ask again shortly, not in a tight loop.
        if (grantedNone) setTimeout(() => this.lease(), RETRY_EMPTY_LEASE_MS).unref();
        else this.lease();
      });
  }

  /** Takes `count` slots due within `withinMs` from the fleet's bucket and uses none: calls already promised elsewhere. */
  private charge(count: number, withinMs: number): void {
    const args = [this.knobs.ratePerSecond, this.knobs.burst, count, withinMs + this.leaseMs, this.knobs.warmupMs, this.knobs.warmupStartRatePerSecond, 0, SAME_WARMUP_MS, this.leaseMs];
    // Lost again: the fleet is local and the mode listener made a new share.
    this.fleet.run('fleet-rate-take', [this.key], args).catch(() => {});
  }

  /**
   * How far Redis's clock is ahead of ours, from the round trip with the least
   * time in flight (as NTP does). Slots are Redis times: mapped from the moment a
   * reply arrived instead, a reply delayed by a busy event loop would shift its
   * slots late onto the next lease's, and the two would leave together.
   */
  private redisAhead(redisNow: number, sentAt: number, receivedAt: number): number {
    const rttMs = receivedAt - sentAt;
    const sample = redisNow - (sentAt + rttMs / 2);
    // A better sample replaces it, and so does any after a while, so that a drifting clock is followed.
    if (rttMs <= this.offset.rttMs || receivedAt - this.offset.at > OFFSET_REFRESH_MS) this.offset = { aheadMs: sample, rttMs, at: receivedAt };
    return this.offset.aheadMs;
  }

  /** Hands the leased slots to the waiting callers in order; with none granted, refuses those who cannot wait for `nextSlotMs`. */
  private serveWaiting(now: number, nextSlotMs: number | null): void {
    while (this.waiting.length > 0) {
      const waiter = this.waiting[0]!;
      const remaining = this.remaining(waiter, now);
      if (nextSlotMs !== null) {
        if (nextSlotMs <= remaining) return;
        this.waiting.shift();
        this.rejected++;
        waiter.resolve(null);
        continue;
      }
      const grant = this.takeSlot(now, remaining);
      if (grant === undefined) return;
      this.waiting.shift();
      waiter.resolve(grant);
    }
  }

  private remaining(waiter: Waiter, now = this.clock.now()): number {
    return Math.max(0, waiter.maxWaitMs - (now - waiter.at));
  }

  private local(): RateLimiter {
    this.fallback ??= this.localShare();
    return this.fallback;
  }

  /** This instance's share while Redis is lost: 1/N of the rate and burst, N the last fleet size seen. */
  private localShare(): RateLimiter {
    const n = Math.max(1, this.fleet.instances);
    const ratePerSecond = this.knobs.ratePerSecond / n;
    return new RateLimiter({
      clock: this.clock,
      mode: 'enforce',
      ratePerSecond,
      burst: Math.max(1, Math.floor(this.knobs.burst / n)),
      warmupMs: this.knobs.warmupMs,
      warmupStartRatePerSecond: Math.min(ratePerSecond, this.knobs.warmupStartRatePerSecond / n),
    });
  }
}
