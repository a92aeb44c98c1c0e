import type { Clock } from '../clock.js';
import { RetryBudget } from '../resilience/retry-budget.js';
import type { RetryBudgetKnobs } from '../routes/route-spec.js';
import type { Fleet } from './fleet.js';

export interface FleetRetryBudgetOptions {
  clock: Clock;
  fleet: Pick<Fleet, 'shared' | 'instances' | 'run' | 'onModeChange'>;
  /** The route's knobs, mode `enforce`: `minRetriesPerSecond` is a fleet total; `ratio` applies to the fleet's requests. */
  knobs: RetryBudgetKnobs;
  /** The route's budget hash on Redis. */
  key: string;
  /** How often this instance adds its counts to the fleet's and reads the totals back. @default 100 */
  syncMs?: number;
}

/**
 * A route's retry budget counted over the fleet (issue 14): every instance adds
 * its requests and retries to per-second counts on Redis (fleet-budget-sync.lua)
 * every `syncMs` and decides from the fleet's totals, last read, plus its own
 * counts since. So the decision needs no round trip; what the others did in the
 * last `syncMs` is not yet seen, which can let the fleet overspend by that much.
 *
 * A RetryBudget itself (what the retry policy takes); while Redis is lost it
 * decides as a local budget with 1/N of the floor (the ratio already scales with
 * the instance's own requests).
 */
export class FleetRetryBudget extends RetryBudget {
  private readonly fleetClock: Clock;
  private readonly fleet: FleetRetryBudgetOptions['fleet'];
  private readonly knobs: RetryBudgetKnobs;
  private readonly key: string;
  private readonly windowS: number;
  private readonly timer: NodeJS.Timeout;
  private fallback: RetryBudget;
  private totals = { requests: 0, retries: 0 };
  private unsent = { requests: 0, retries: 0 };
  private syncing = false;
  private fleetDenied = 0;

  constructor(options: FleetRetryBudgetOptions) {
    super({ clock: options.clock, ...options.knobs });
    this.fleetClock = options.clock;
    this.fleet = options.fleet;
    this.knobs = options.knobs;
    this.key = options.key;
    this.windowS = Math.max(1, Math.round(this.knobs.windowMs / 1000));
    this.fallback = this.localShare();
    this.fleet.onModeChange((shared) => {
      if (!shared) this.fallback = this.localShare();
    });
    this.timer = setInterval(() => void this.sync(), options.syncMs ?? 100);
    this.timer.unref();
  }

  override recordRequest(): void {
    super.recordRequest();
    this.fallback.recordRequest();
    this.unsent.requests++;
  }

  override tryRetry(): boolean {
    if (!this.fleet.shared) return this.fallback.tryRetry();
    const requests = this.totals.requests + this.unsent.requests;
    const retries = this.totals.retries + this.unsent.retries;
    const available = Math.floor(this.knobs.ratio * requests + this.knobs.minRetriesPerSecond * this.windowS - retries);
    if (available >= 1) {
      this.unsent.retries++;
      return true;
    }
    this.fleetDenied++;
    return false;
  }

  override snapshot(): ReturnType<RetryBudget['snapshot']> & { fleet: 'shared' | 'local' } {
    if (!this.fleet.shared) return { ...this.fallback.snapshot(), fleet: 'local' };
    const requests = this.totals.requests + this.unsent.requests;
    const retries = this.totals.retries + this.unsent.retries;
    return {
      mode: this.knobs.mode,
      ratio: this.knobs.ratio,
      minRetriesPerSecond: this.knobs.minRetriesPerSecond,
      requests,
      retries,
      available: Math.max(0, Math.floor(this.knobs.ratio * requests + this.knobs.minRetriesPerSecond * this.windowS - retries)),
      denied: this.fleetDenied + this.fallback.snapshot().denied,
      shadowDenied: 0,
      fleet: 'shared',
    };
  }

  /** Stops the sync timer. */
  close(): void {
    clearInterval(this.timer);
  }

  private async sync(): Promise<void> {
    if (this.syncing || !this.fleet.shared) return;
    this.syncing = true;
    const sent = { ...this.unsent };
    try {
      const [requests, retries] = (await this.fleet.run('fleet-budget-sync', [this.key], [this.windowS, sent.requests, sent.retries])) as [number, number];
      this.totals = { requests: Number(requests), retries: Number(retries) };
      // What arrived during the round trip is still to be sent.
      this.unsent.requests -= sent.requests;
      this.unsent.retries -= sent.retries;
    } catch {
      // Lost: the local share decides meanwhile; counts from before the loss are not carried into the fleet's window.
      this.unsent = { requests: 0, retries: 0 };
    } finally {
      this.syncing = false;
    }
  }

  private localShare(): RetryBudget {
    const n = Math.max(1, this.fleet.instances);
    return new RetryBudget({ clock: this.fleetClock, ...this.knobs, minRetriesPerSecond: this.knobs.minRetriesPerSecond / n });
  }
}
