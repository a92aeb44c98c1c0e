import { ConfigError } from '../config/config-error.js';
import { NotFoundError, RoutesInvalidError, ServiceUnavailableError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import type { Logger } from '../observability/logger.js';
import type { BreakerState } from '../resilience/circuit-breaker.js';
import type { RoutesChange } from './reload.js';
import type { RouteControlState, RouteTable } from './route-pipeline.js';
import type { RouteSpec } from './route-spec.js';

/** Every operator action, as `relay_admin_actions_total{action}` counts it (a closed set: the label stays bounded). */
export type AdminAction = 'breaker_open' | 'breaker_closed' | 'breaker_auto' | 'pause' | 'resume' | 'reload' | 'reload_refused';

export interface AdminActionEvent {
  action: AdminAction;
  /** The route acted on; '' for a reload (every route). */
  route: string;
  /** Who asked: `token` (ADMIN_TOKEN), `loopback`, or a signal name. Never the token itself. */
  who: string;
}

export interface RouteControlDeps {
  routes: RouteTable;
  logger: Logger;
  /**
   * Reads the routes again (main.ts: ENV_FILE, then ROUTES_FILE); throws
   * ConfigError for a file that does not validate. Unset: reload answers 503.
   */
  loadRoutes: (() => RouteSpec[] | Promise<RouteSpec[]>) | undefined;
  /** Whether a route without a target has somewhere to go (the embedded simulator runs). */
  hasEmbeddedSimulator: boolean;
  /** Held work may be due now (a route resumed, a route went away): the job runner looks again. */
  wakeJobs: () => void;
  /** STORE=redis: the holds are the fleet's (fleet/fleet-controls.ts). @default undefined (this instance's alone) */
  share?: ControlShare | undefined;
}

/** One change to a route's hold: its breaker, or whether it is paused. */
export type HoldChange = { breaker: RouteControlState['breaker'] } | { paused: boolean };

/** Where the operators' holds are kept when they are not one instance's alone (contract: they hold fleet-wide and persist). */
export interface ControlShare {
  /** Applies the holds kept so far through `apply`, then each change any instance makes, as it comes. */
  start(apply: (route: string, control: RouteControlState) => void): Promise<void>;
  /** Keeps a change for every instance and applies it here (through `apply`) before resolving; StoreUnavailableError when it cannot be kept. */
  change(route: string, change: HoldChange): Promise<void>;
  /** The hold kept for a route name, if any: a route a reload adds takes it. */
  held(route: string): RouteControlState | undefined;
}

/** A route's control state as the admin routes answer it. */
export interface RouteControlAnswer {
  route: string;
  control: RouteControlState;
  /** The state of each breaker the route tries, by its label (`primary`, `fallback-1`...). */
  breakers: Record<string, BreakerState>;
}

export type ReloadAnswer = RoutesChange & { routes: string[] };

/**
 * Runtime control of the routes (contract: "Operator console and control"):
 * force a route's breakers, pause and resume it, reload the routes. Each
 * action is logged at info with who asked, and emitted as an `action` event
 * (metrics count it).
 */
export class RouteControl extends TypedEmitter<{ action: AdminActionEvent }> {
  private reloading: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: RouteControlDeps) {
    super();
  }

  /** Applies the holds the share keeps (STORE=redis), before the relay serves; a no-op without a share. */
  async start(): Promise<void> {
    await this.deps.share?.start((route, control) => this.applyHold(route, control));
  }

  /** The route's control state; NotFoundError for an unknown route. */
  describe(name: string): RouteControlAnswer {
    return this.answer(name, this.deps.routes.control(name));
  }

  async forceBreaker(name: string, state: RouteControlState['breaker'], who: string): Promise<RouteControlAnswer> {
    await this.change(name, { breaker: state });
    const answer = this.describe(name);
    this.record({ action: `breaker_${state}`, route: name, who }, `breaker of route ${name} ${state === 'auto' ? 'back to automatic' : `forced ${state}`}`);
    return answer;
  }

  async setPaused(name: string, paused: boolean, who: string): Promise<RouteControlAnswer> {
    await this.change(name, { paused });
    const answer = this.describe(name);
    this.record({ action: paused ? 'pause' : 'resume', route: name, who }, `route ${name} ${paused ? 'paused' : 'resumed'}`);
    if (!paused) this.deps.wakeJobs();
    return answer;
  }

  /**
   * Reads the routes again and swaps them in at once; one reload at a time.
   * RoutesInvalidError (422) for a file that does not validate: the routes loaded before stay.
   */
  reload(who: string): Promise<ReloadAnswer> {
    const run = this.reloading.then(() => this.reloadNow(who));
    this.reloading = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(who: string): Promise<ReloadAnswer> {
    const { loadRoutes, routes, logger } = this.deps;
    if (!loadRoutes) throw new ServiceUnavailableError('This relay was built without a way to read its routes again.');
    let specs: RouteSpec[];
    try {
      specs = await loadRoutes();
      const untargeted = specs.filter((spec) => spec.target === undefined).map((spec) => spec.name);
      if (untargeted.length > 0 && !this.deps.hasEmbeddedSimulator) {
        throw new ConfigError(`route ${untargeted.join(', ')}: no target, and the embedded simulator only starts with the process (set DOWNSTREAM_URL)`);
      }
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      logger.warn({ action: 'reload_refused', who, errors: error.lines }, `admin: reload refused (by ${who}); the routes loaded before stay`);
      this.emit('action', { action: 'reload_refused', route: '', who });
      throw new RoutesInvalidError(error.lines);
    }
    const change = routes.replace(specs);
    // A route added (or back) under a name the fleet holds takes the fleet's hold.
    for (const name of this.deps.share ? routes.names : []) {
      const held = this.deps.share!.held(name);
      if (held) this.applyHold(name, held);
    }
    this.record({ action: 'reload', route: '', who }, `routes reloaded: ${describeChange(change)}`, change);
    this.deps.wakeJobs();
    return { routes: routes.names, ...change };
  }

  /** Checks the route, then changes its hold: through the share when there is one (which applies it here too). */
  private async change(name: string, change: HoldChange): Promise<void> {
    this.describe(name);
    const { share, routes } = this.deps;
    if (share) await share.change(name, change);
    else if ('breaker' in change) routes.forceBreaker(name, change.breaker);
    else routes.setPaused(name, change.paused);
  }

  /** A hold from the share, applied part by part: forcing a breaker again would reset its window for nothing. */
  private applyHold(name: string, hold: RouteControlState): void {
    const { routes } = this.deps;
    const current = routes.control(name);
    if (!current) return; // Not a route here: the share keeps it, for a reload that adds the route.
    if (current.breaker !== hold.breaker) routes.forceBreaker(name, hold.breaker);
    if (current.paused !== hold.paused) {
      routes.setPaused(name, hold.paused);
      if (!hold.paused) this.deps.wakeJobs();
    }
  }

  private answer(name: string, control: RouteControlState | undefined): RouteControlAnswer {
    const route = this.deps.routes.get(name);
    if (!control || !route) throw new NotFoundError(`No route named ${JSON.stringify(name)}.`);
    const breakers = Object.fromEntries(route.downstreams.entries.map(({ label, downstream }) => [label, downstream.breaker.state]));
    return { route: name, control, breakers };
  }

  private record(event: AdminActionEvent, summary: string, details: object = {}): void {
    this.deps.logger.info({ ...event, ...details }, `admin: ${summary} (by ${event.who})`);
    this.emit('action', event);
  }
}

function describeChange(change: RoutesChange): string {
  const parts = (['added', 'changed', 'removed', 'unchanged'] as const).filter((k) => change[k].length > 0).map((k) => `${k} ${change[k].join(', ')}`);
  return parts.length > 0 ? parts.join('; ') : 'no routes';
}
