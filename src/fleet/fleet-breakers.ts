import type { Logger } from '../observability/logger.js';
import type { RelayEvents } from '../relay-events.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import type { BreakerKnobs } from '../routes/route-spec.js';
import type { Fleet } from './fleet.js';

/**
 * Fleet-wide half-open probe slots of one downstream (issue 14). `acquire`
 * resolves with what to call once the probe's outcome is known (`null`: it
 * was never sent), or with null when the fleet's slots for this round are taken.
 */
export interface ProbeGate {
  acquire(): Promise<((ok: boolean | null) => void) | null>;
}

/** What instances tell each other about a breaker, on one channel. */
interface BreakerNews {
  from: string;
  route: string;
  upstream: string;
  to: 'open' | 'closed';
  /** `open`: how long the sender stays open. */
  openForMs?: number;
  reason: string;
}

interface Member {
  breaker: CircuitBreaker;
  knobs: BreakerKnobs;
  probesKey: string;
}

const NO_GATE = (): void => {};

/**
 * Keeps each downstream's breaker in step across the fleet (issue 14), over
 * Redis pub/sub rather than keyspace notifications (which need a server setting
 * the relay cannot assume): an instance whose breaker opens or closes by its own
 * judgement publishes it and every other instance follows within a round trip;
 * a message missed while Redis was away is not replayed, and the instances then
 * judge alone until the next transition. The half-open probes of a round are
 * leased in Redis (fleet-probe.lua), so the downstream sees at most
 * `halfOpenProbes` per open interval whichever instances send them, and the
 * successes are counted there too: the instance that sees the last one closes
 * its breaker, and so, through the channel, everyone's.
 */
export class FleetBreakers {
  private readonly members = new Map<string, Member>();
  private readonly channel: string;
  /** True while a peer's news is applied: the transition it causes is not news. */
  private applyingPeer = false;
  private readonly off: () => void;

  constructor(
    private readonly fleet: Pick<Fleet, 'id' | 'prefix' | 'shared' | 'run' | 'publish' | 'subscribe'>,
    events: RelayEvents,
    private readonly logger: Logger,
  ) {
    this.channel = `${fleet.prefix}fleet:breakers`;
    this.off = events.on('breaker', (change) => {
      if (this.applyingPeer || !this.fleet.shared) return;
      const member = this.members.get(memberKey(change.route, change.upstream));
      if (!member || change.to === 'half_open') return;
      void this.announce(change.route, change.upstream, member, change.to, change.reason);
    });
  }

  /** Starts hearing peers. */
  start(): Promise<void> {
    return this.fleet.subscribe(this.channel, (message) => this.hear(message));
  }

  /** Shares this downstream's breaker with the fleet (enforced breakers only); returns its probe gate. */
  register(route: string, upstream: string, breaker: CircuitBreaker, knobs: BreakerKnobs): ProbeGate | undefined {
    if (knobs.mode !== 'enforce') return undefined;
    const member = { breaker, knobs, probesKey: `${this.fleet.prefix}fleet:probes:${route}:${upstream}` };
    this.members.set(memberKey(route, upstream), member);
    return { acquire: () => this.acquireProbe(member) };
  }

  /**
   * Runs `fn` (an operator's hold applied on this instance) without announcing
   * the transitions it causes: the hold's own news reaches every instance, so
   * these would only repeat it, once per instance.
   */
  withoutNews(fn: () => void): void {
    const was = this.applyingPeer;
    this.applyingPeer = true;
    try {
      fn();
    } finally {
      this.applyingPeer = was;
    }
  }

  close(): void {
    this.off();
  }

  private async announce(route: string, upstream: string, member: Member, to: 'open' | 'closed', reason: string): Promise<void> {
    const openForMs = to === 'open' ? (member.breaker.openForMs() ?? member.knobs.openMs) : undefined;
    try {
      // The round of probes is reset before the news leaves, so no peer probes a round that just failed.
      await this.fleet.run('fleet-probe', [member.probesKey], [to, member.knobs.halfOpenProbes, openForMs ?? 0]);
    } catch {
      return; // Lost: each instance judges alone now.
    }
    const news: BreakerNews = { from: this.fleet.id, route, upstream, to, reason, ...(openForMs === undefined ? {} : { openForMs }) };
    await this.fleet.publish(this.channel, JSON.stringify(news));
  }

  private hear(message: string): void {
    let news: BreakerNews;
    try {
      news = JSON.parse(message) as BreakerNews;
    } catch {
      return;
    }
    if (news.from === this.fleet.id) return;
    const member = this.members.get(memberKey(news.route, news.upstream));
    if (!member) return;
    this.applyingPeer = true;
    try {
      if (news.to === 'open') member.breaker.openFromPeer(`peer ${news.from}: ${news.reason}`, Math.max(1, news.openForMs ?? member.knobs.openMs));
      else member.breaker.closeFromPeer(`peer ${news.from}: ${news.reason}`);
    } catch (error) {
      this.logger.error({ err: error }, 'fleet: applying a peer breaker transition failed');
    } finally {
      this.applyingPeer = false;
    }
  }

  private async acquireProbe(member: Member): Promise<((ok: boolean | null) => void) | null> {
    if (!this.fleet.shared) return NO_GATE;
    const { probesKey, knobs } = member;
    try {
      const took = await this.fleet.run('fleet-probe', [probesKey], ['take', knobs.halfOpenProbes, knobs.slowCallMs + knobs.openMs]);
      if (Number(took) !== 1) return null;
    } catch {
      return NO_GATE; // Lost: this instance probes alone.
    }
    return (ok) => {
      if (ok === false) return; // The local breaker reopens, and its news resets the round.
      const action = ok === null ? 'release' : 'ok';
      this.fleet
        .run('fleet-probe', [probesKey], [action, knobs.halfOpenProbes, 0])
        .then((successes) => {
          if (action === 'ok' && Number(successes) >= knobs.halfOpenProbes && member.breaker.state === 'half_open') {
            member.breaker.closeFromPeer(`${knobs.halfOpenProbes} probes succeeded across the fleet`);
          }
        })
        .catch(() => {});
    };
  }
}

function memberKey(route: string, upstream: string): string {
  return `${route}\u0000${upstream}`;
}
