import { StoreUnavailableError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { ControlShare, HoldChange } from '../routes/route-control.js';
import type { RouteControlState } from '../routes/route-pipeline.js';
import type { FleetBreakers } from './fleet-breakers.js';
import type { Fleet } from './fleet.js';

/** A route's hold as the controls hash keeps it; `version` grows by one per change. */
interface StoredHold extends RouteControlState {
  version: number;
}

/** What an instance publishes when it changes a hold (fleet-control-set.lua writes it). */
interface HoldNews {
  from: string;
  route: string;
  state: StoredHold;
}

type FleetLink = Pick<Fleet, 'id' | 'prefix' | 'run' | 'readHash' | 'subscribe' | 'onModeChange' | 'onResubscribed'>;

/**
 * An operator's holds on the routes (forced breaker state, pause), held by the
 * whole fleet and persisted (contract: "a forced breaker state and a pause hold
 * fleet-wide and persist"). A change is written to one Redis hash and published
 * in the same script; every instance applies what it hears, and reads the hash
 * at start and whenever it may have missed news (its subscriber reconnected, the
 * fleet is shared again after a loss). Versions order the hash and the news, so
 * a read racing a change keeps the newer state. A change Redis cannot take is
 * refused (503 STORE_UNAVAILABLE) rather than held by one instance alone.
 */
export class FleetControls implements ControlShare {
  private readonly key: string;
  private readonly channel: string;
  /** The newest state heard per route name, whether or not this instance has the route. */
  private readonly holds = new Map<string, StoredHold>();
  private apply: ((route: string, control: RouteControlState) => void) | undefined;
  private readonly offs: Array<() => void> = [];

  constructor(
    private readonly fleet: FleetLink,
    private readonly breakers: Pick<FleetBreakers, 'withoutNews'>,
    private readonly logger: Logger,
  ) {
    this.key = `${fleet.prefix}fleet:controls`;
    this.channel = `${fleet.prefix}fleet:controls`;
  }

  async start(apply: (route: string, control: RouteControlState) => void): Promise<void> {
    this.apply = apply;
    await this.fleet.subscribe(this.channel, (message) => this.hear(message));
    const refresh = () => void this.refresh();
    this.offs.push(this.fleet.onResubscribed(refresh), this.fleet.onModeChange((shared) => shared && refresh()));
    await this.refresh();
  }

  held(route: string): RouteControlState | undefined {
    const hold = this.holds.get(route);
    return hold && { breaker: hold.breaker, paused: hold.paused };
  }

  async change(route: string, change: HoldChange): Promise<void> {
    const [part, value] = 'breaker' in change ? ['breaker', change.breaker] : ['paused', change.paused ? '1' : '0'];
    let reply: unknown;
    try {
      reply = await this.fleet.run('fleet-control-set', [this.key], [route, part, value, this.channel, this.fleet.id]);
    } catch {
      // Held here alone it would neither hold fleet-wide nor persist, so it is not applied here. Redis may
      // still have run it when only the reply was late: its news then applies it everywhere, this instance too.
      throw new StoreUnavailableError("The relay could not confirm the change with Redis, where the fleet keeps its routes' controls; send it again once Redis answers.");
    }
    const hold = parseHold(reply);
    if (hold) this.take(route, hold);
  }

  close(): void {
    for (const off of this.offs.splice(0)) off();
  }

  /** Reads every hold from Redis (at start, and after news may have been missed). */
  private async refresh(): Promise<void> {
    let stored: Record<string, string>;
    try {
      stored = await this.fleet.readHash(this.key);
    } catch {
      return; // Lost: read again once the fleet is shared again.
    }
    for (const [route, text] of Object.entries(stored)) {
      const hold = parseHold(text);
      if (hold && this.take(route, hold)) this.logger.info({ route, control: this.held(route) }, `fleet: route ${route} held as the fleet holds it (breaker ${hold.breaker}, ${hold.paused ? 'paused' : 'not paused'})`);
    }
  }

  private hear(message: string): void {
    let news: HoldNews;
    try {
      news = JSON.parse(message) as HoldNews;
    } catch {
      return;
    }
    const hold = parseHold(news.state);
    // Its own news too: when the script's reply was lost (a command timeout), the news is how this instance learns it ran.
    if (typeof news.route !== 'string' || !hold) return;
    if (this.take(news.route, hold)) {
      this.logger.info(
        { route: news.route, control: this.held(news.route), from: news.from },
        `fleet: route ${news.route} breaker ${hold.breaker}, ${hold.paused ? 'paused' : 'not paused'} (by an operator on ${news.from})`,
      );
    }
  }

  /** Applies `hold` unless a newer one was applied already; true when it was applied. */
  private take(route: string, hold: StoredHold): boolean {
    const known = this.holds.get(route);
    if (known && known.version >= hold.version) return false;
    this.holds.set(route, hold);
    const apply = this.apply;
    if (apply) {
      try {
        this.breakers.withoutNews(() => apply(route, { breaker: hold.breaker, paused: hold.paused }));
      } catch (error) {
        this.logger.error({ err: error, route }, 'fleet: applying a route control failed');
      }
    }
    return true;
  }
}

/** A stored or published hold, checked: it comes from Redis, which other software may write. */
function parseHold(value: unknown): StoredHold | undefined {
  let candidate: unknown = value;
  if (typeof value === 'string') {
    try {
      candidate = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  if (typeof candidate !== 'object' || candidate === null) return undefined;
  const { breaker, paused, version } = candidate as Record<string, unknown>;
  if ((breaker !== 'auto' && breaker !== 'open' && breaker !== 'closed') || typeof paused !== 'boolean' || typeof version !== 'number') return undefined;
  return { breaker, paused, version };
}
