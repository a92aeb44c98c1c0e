import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../observability/logger.js';

/** The Lua scripts of the fleet state, by file name under `lua/` (without `.lua`). */
const FLEET_SCRIPTS = ['fleet-rate-take', 'fleet-budget-sync', 'fleet-probe', 'fleet-heartbeat', 'fleet-control-set'] as const;
export type FleetScript = (typeof FLEET_SCRIPTS)[number];

// Resolved against this module, so the files are found from src/ (tsx) and dist/ (scripts/copy-lua.mjs copies them).
const LUA_DIR = new URL('./lua/', import.meta.url);

/** What /stats shows as `fleet`, and /ready reads. */
export interface FleetSnapshot {
  /** Live instances (the last count seen while Redis answered). */
  instances: number;
  redis: 'ok' | 'lost';
  /** `shared`: protections are fleet totals on Redis; `local`: each instance enforces 1/N of them alone. */
  mode: 'shared' | 'local';
}

export interface FleetOptions {
  url: string;
  /** Every key and the channel start with it (REDIS_PREFIX). */
  prefix: string;
  logger: Logger;
  /** How often an instance says it is alive; one silent for 3 of them no longer counts. @default 1000 */
  heartbeatMs?: number;
  /**
   * How long a fleet command may wait for Redis before the instance falls back to
   * its own state: a stalled Redis must not hold calls up for the store's 2 s.
   * @default 250
   */
  commandTimeoutMs?: number;
}

/** How often a lost instance asks Redis again: rejoining within 2 s of Redis's return is a target (issue 14). */
const LOST_PROBE_MS = 250;
/** From the moment every instance is back to the fleet's rejoin: every one hears of it first (it asks every LOST_PROBE_MS). */
const REJOIN_DELAY_MS = LOST_PROBE_MS + 100;
/**
 * How long a rejoining instance's mark, and a rejoin moment once past, count: several of its
 * marks (one per LOST_PROBE_MS), so one late mark does not drop it, and less than a new loss takes.
 */
const REJOIN_MEMORY_MS = 4 * LOST_PROBE_MS;

/**
 * One instance's membership of the fleet and its link to the shared state:
 * its own two Redis connections (commands, and a subscriber for breaker and control news),
 * a heartbeat that counts the instances, and whether Redis answers. Any failed
 * fleet command, like a failed heartbeat, turns the mode to `local` at once;
 * the next heartbeat that succeeds turns it back to `shared`.
 */
export class Fleet {
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  readonly prefix: string;
  readonly heartbeatMs: number;
  private readonly redis: Redis;
  private readonly subscriber: Redis;
  private readonly logger: Logger;
  private readonly listeners = new Set<(shared: boolean) => void>();
  private readonly messageHandlers = new Map<string, (message: string) => void>();
  private readonly resubscribedListeners = new Set<() => void>();
  /** The subscriber has been connected once: its next 'ready' is a reconnection. */
  private subscriberWasReady = false;
  private redisOk = false;
  private instanceCount = 1;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private beating = false;
  /** The listeners were last told `shared` (they run on the fleet's state). */
  private wasShared = false;
  /** Shared once already: after a loss the instance rejoins with the others (see `beat`). */
  private everShared = false;
  /** While rejoining after a loss: when Redis answered again. */
  private rejoinStartedAt: number | null = null;
  private rejoinTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: FleetOptions) {
    this.prefix = options.prefix;
    this.logger = options.logger;
    this.heartbeatMs = options.heartbeatMs ?? 1_000;
    if (!(Number.isInteger(this.heartbeatMs) && this.heartbeatMs >= 50)) {
      throw new TypeError(`Expected \`heartbeatMs\` to be an integer from 50 and up, got \`${this.heartbeatMs}\``);
    }
    const commandTimeoutMs = options.commandTimeoutMs ?? 250;
    const base: RedisOptions = {
      lazyConnect: true,
      connectTimeout: 1_000,
      disconnectTimeout: 500,
      // Quick and jittered: the fleet should rejoin within 2 s of Redis's return, without a thundering herd.
      retryStrategy: (attempt) => Math.min(500, 50 * attempt) * (0.5 + Math.random() / 2),
    };
    this.redis = new Redis(options.url, {
      ...base,
      commandTimeout: commandTimeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    });
    // Subscriptions are renewed by ioredis after each reconnect.
    this.subscriber = new Redis(options.url, { ...base, maxRetriesPerRequest: null });
    // Failures reach us through the commands that fail; the 'error' events only repeat them.
    this.redis.on('error', () => {});
    this.subscriber.on('error', () => {});
    for (const name of FLEET_SCRIPTS) {
      this.redis.defineCommand(commandName(name), { lua: readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8') });
    }
    this.subscriber.on('message', (channel: string, message: string) => this.messageHandlers.get(channel)?.(message));
    this.subscriber.on('ready', () => {
      if (this.subscriberWasReady) void this.resubscribed();
      this.subscriberWasReady = true;
    });
  }

  /** Connects, sends the first heartbeat (its failure only means starting in `local` mode) and keeps beating. */
  async start(): Promise<void> {
    await Promise.allSettled([this.redis.connect(), this.subscriber.connect()]);
    await this.beat();
  }

  /** Shared state in force: Redis answers and, after a loss, the fleet has rejoined (see `beat`). */
  get shared(): boolean {
    return this.redisOk && this.rejoinStartedAt === null;
  }

  /** The last fleet size seen (1 before the first heartbeat). */
  get instances(): number {
    return this.instanceCount;
  }

  snapshot(): FleetSnapshot {
    return { instances: this.instanceCount, redis: this.redisOk ? 'ok' : 'lost', mode: this.shared ? 'shared' : 'local' };
  }

  /** Told `true` when the fleet state is shared again, `false` when Redis is lost. */
  onModeChange(listener: (shared: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Told when the subscriber is back after a lost connection and hears its
   * channels again: what was published meanwhile was missed, and may be read now.
   */
  onResubscribed(listener: () => void): () => void {
    this.resubscribedListeners.add(listener);
    return () => this.resubscribedListeners.delete(listener);
  }

  /** Runs a fleet script; a failure marks Redis lost (the caller falls back) and rejects. */
  async run(name: FleetScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    const commands = this.redis as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>;
    try {
      return await commands[commandName(name)]!.call(this.redis, keys.length, ...keys, ...args);
    } catch (error) {
      this.lost(error);
      throw error;
    }
  }

  async publish(channel: string, message: string): Promise<void> {
    try {
      await this.redis.publish(channel, message);
    } catch (error) {
      this.lost(error);
    }
  }

  /** A whole hash (HGETALL); a failure marks Redis lost and rejects. */
  async readHash(key: string): Promise<Record<string, string>> {
    try {
      return await this.redis.hgetall(key);
    } catch (error) {
      this.lost(error);
      throw error;
    }
  }

  /** Hears what peers publish on `channel` (one handler per channel). */
  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    this.messageHandlers.set(channel, handler);
    try {
      await this.subscriber.subscribe(channel);
    } catch {
      // Renewed by ioredis when the connection comes back.
    }
  }

  /** Leaves the fleet (best effort) and closes both connections; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      clearTimeout(this.timer);
      clearTimeout(this.rejoinTimer);
      if (this.redisOk) await this.run('fleet-heartbeat', this.heartbeatKeys, [this.id, this.heartbeatMs * 3, 1, 0, 0, REJOIN_MEMORY_MS]).catch(() => {});
      for (const client of [this.redis, this.subscriber]) {
        try {
          await client.quit();
        } catch {
          client.disconnect();
        }
      }
    })();
    return this.closing;
  }

  /** The members, the instances rejoining after a loss, and the moment they rejoin (fleet-heartbeat.lua). */
  private get heartbeatKeys(): string[] {
    return [`${this.prefix}fleet:members`, `${this.prefix}fleet:rejoining`, `${this.prefix}fleet:rejoin-at`];
  }

  /**
   * Counts the fleet, and after a loss rejoins it. Every instance comes back on
   * its own reconnect, up to a few hundred ms apart: one that took the fleet's
   * whole rate at once while the others still sent their 1/N alone would add
   * its rate to theirs (measured: 123 calls in the second Redis returned, at rps
   * 100). So they rejoin at one moment that Redis sets once as many are back as
   * were there before (or after 3 heartbeats, for any that died meanwhile), each
   * on its own share until then.
   */
  private async beat(): Promise<void> {
    if (this.closed || this.beating) return;
    this.beating = true;
    try {
      const rejoining = this.everShared && (!this.redisOk || this.rejoinStartedAt !== null);
      const waitedTooLong = this.rejoinStartedAt !== null && Date.now() - this.rejoinStartedAt > 3 * this.heartbeatMs;
      const expected = !rejoining ? 0 : waitedTooLong ? 1 : this.instanceCount;
      const sentAt = Date.now();
      const reply = (await this.run('fleet-heartbeat', this.heartbeatKeys, [this.id, this.heartbeatMs * 3, 0, expected, REJOIN_DELAY_MS, REJOIN_MEMORY_MS])) as [number, string, string];
      const receivedAt = Date.now();
      const count = Math.max(1, Number(reply[0]));
      if (!this.redisOk) {
        this.redisOk = true;
        if (rejoining) this.rejoinStartedAt = receivedAt;
      }
      if (this.rejoinStartedAt === null) this.share(count);
      else if (reply[2] !== '' && this.rejoinTimer === undefined) {
        // The moment is Redis's: mapped to this clock from the middle of the round trip.
        const inMs = Number(reply[2]) - Number(reply[1]) - (receivedAt - sentAt) / 2;
        if (inMs <= 0) this.share(count);
        else {
          this.rejoinTimer = setTimeout(() => {
            this.rejoinTimer = undefined;
            if (this.redisOk && !this.closed && this.rejoinStartedAt !== null) this.share(count);
          }, inMs);
          this.rejoinTimer.unref();
        }
      }
    } catch {
      // lost() has logged it.
    } finally {
      this.beating = false;
    }
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.beat(), this.shared ? this.heartbeatMs : Math.min(this.heartbeatMs, LOST_PROBE_MS));
    this.timer.unref();
  }

  /** Shared state in force, with `count` instances; the listeners are told once. */
  private share(count: number): void {
    this.rejoinStartedAt = null;
    this.instanceCount = count;
    if (this.wasShared) return;
    this.wasShared = true;
    this.everShared = true;
    this.logger.info({ fleet: this.snapshot() }, `fleet: shared protections on Redis, ${this.instanceCount} instance(s)`);
    this.notify(true);
  }

  private lost(error: unknown): void {
    if (!this.redisOk || this.closed) return;
    this.redisOk = false;
    this.rejoinStartedAt = null;
    clearTimeout(this.rejoinTimer);
    this.rejoinTimer = undefined;
    const wasShared = this.wasShared;
    this.wasShared = false;
    if (!wasShared) return; // Lost again while rejoining: already local, already said.
    // Once per loss: every command fails while Redis is away.
    this.logger.warn(
      { err: error, fleet: this.snapshot() },
      `fleet: Redis lost; each instance enforces its own share (1/${this.instanceCount}) of every route's limits until it returns`,
    );
    this.notify(false);
    // Ask again soon rather than a whole heartbeat later.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.beat(), LOST_PROBE_MS);
    this.timer.unref();
  }

  private async resubscribed(): Promise<void> {
    if (this.messageHandlers.size === 0 || this.closed) return;
    try {
      // ioredis sends its own SUBSCRIBE on 'ready' but does not say when Redis confirmed it; this
      // one is answered after it, on the same connection, so the channels are heard from here on.
      await this.subscriber.subscribe(...this.messageHandlers.keys());
    } catch {
      return; // Lost again: the next 'ready' tries again.
    }
    for (const listener of this.resubscribedListeners) {
      try {
        listener();
      } catch (error) {
        this.logger.error({ err: error }, 'fleet: a resubscription listener failed');
      }
    }
  }

  private notify(shared: boolean): void {
    for (const listener of this.listeners) {
      try {
        listener(shared);
      } catch (error) {
        this.logger.error({ err: error }, 'fleet: a mode listener failed');
      }
    }
  }
}

/** ioredis command name for a script: `fleet-rate-take` -> `fleetRateTake`. */
function commandName(name: FleetScript): string {
  return name.replace(/-([a-z])/g, (_m, letter: string) => letter.toUpperCase());
}
