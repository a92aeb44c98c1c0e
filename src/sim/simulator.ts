import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Random } from '../clock.js';
import { createAccessCheck } from './access.js';
import { CONTROL_PREFIX, handleControl } from './control.js';
import { CounterBook } from './counters.js';
import type { SimCounters } from './counters.js';
import { decideResponse, decideScripted } from './decide.js';
import type { SimAnswer, SimDecision } from './decide.js';
import { parseJson, readBody, sendJson, sendProblem } from './http-io.js';
import { listen, urlOf } from './listen.js';
import { applySimProfilePatch, defaultSimProfile } from './profile.js';
import type { SimProfile } from './profile.js';
import { parseScript } from './script.js';
import type { ScriptedResponse } from './script.js';

export type { SimCounters } from './counters.js';
export type { SimProfile } from './profile.js';
export type { ScriptedResponse } from './script.js';
export { SimValidationError } from './validation.js';

/** A running flaky downstream. */
export interface Simulator {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  readonly server: Server;
  profile(): SimProfile;
  /**
   * Applies a partial profile.
   * @throws {SimValidationError} naming the bad field; the profile is then unchanged.
   */
  setProfile(patch: Partial<SimProfile>): SimProfile;
  /**
   * Replaces the script: these answers go, in order, to the next simulated
   * calls, before the random profile and capacity apply.
   * @throws {SimValidationError} naming the bad entry.
   */
  script(responses: ScriptedResponse[]): void;
  counters(): SimCounters;
  /** Clears the counters and the script; the profile stays. */
  reset(): void;
  /** Stops listening, destroys open sockets (hanging requests too) and clears every timer. Idempotent. */
  close(): Promise<void>;
}

export interface SimulatorOptions {
  /**
   * Port to listen on; 0 picks a free one.
   * @default 0
   */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Overrides of `defaultSimProfile`; validated like `setProfile`. */
  profile?: Partial<SimProfile>;
  /**
   * Random source in [0, 1); inject one for deterministic tests.
   * @default Math.random
   */
  random?: Random;
  /** When set, control endpoints need `Authorization: Bearer <adminToken>`; when not, a loopback client. */
  adminToken?: string;
}

// Longer than the relay pool's idle timeout, so the relay (not we) closes idle sockets
// and never writes into a socket we are closing.
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

const STATUS_TITLES: Record<number, string> = {
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Starts the flaky downstream simulator on a real HTTP server. */
export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  if (options.adminToken === '') throw new Error('adminToken must not be empty; leave it unset for loopback-only control');
  const random = options.random ?? Math.random;
  const book = new CounterBook();
  const timers = new Set<NodeJS.Timeout>();
  const checkAccess = createAccessCheck(options.adminToken);
  let profile = applySimProfilePatch(defaultSimProfile, options.profile ?? {});
  let pending: ScriptedResponse[] = [];

  const controls = {
    profile: (): SimProfile => ({ ...profile }),
    setProfile: (patch: Partial<SimProfile>): SimProfile => {
      profile = applySimProfilePatch(profile, patch);
      return { ...profile };
    },
    script: (responses: ScriptedResponse[]): void => {
      pending = parseScript(responses);
    },
    counters: (): SimCounters => book.snapshot(),
    reset: (): void => {
      book.reset();
      pending = [];
    },
  };

  const simulate = (req: IncomingMessage, res: ServerResponse): void => {
    book.onReceived(req.headers);
    let settled = false;
    let timer: NodeJS.Timeout | undefined;

    res.on('close', () => {
      if (timer !== undefined) {
        clearTimeout(timer);
        timers.delete(timer);
      }
      if (!settled) {
        settled = true;
        book.onAborted();
      }
    });

    const settle = (status: number): void => {
      settled = true;
      book.onAnswered(status);
    };

    readBody(req, (raw) => {
      if (settled) return;
      if (raw === null) {
        settle(413);
        sendProblem(res, 413, 'Payload Too Large', 'the simulator keeps bodies up to 8 MiB');
        return;
      }
      const next = pending.shift();
      const decision: SimDecision =
        next !== undefined ? decideScripted(next) : decideResponse(profile, book.current(), random);
      // A hanging request holds no timer: only the client's abort or close() ends it.
      if (decision.kind === 'hang') return;

      const send = (): void => {
        if (timer !== undefined) timers.delete(timer);
        timer = undefined;
        settle(decision.status);
        writeAnswer(req, res, decision, raw, profile);
      };
      if (decision.delayMs <= 0) return send();
      timer = setTimeout(send, decision.delayMs);
      timers.add(timer);
    });
  };

  const server = createServer({ noDelay: true }, (req, res) => {
    const path = pathOf(req.url);
    if (path.startsWith(CONTROL_PREFIX)) return handleControl(req, res, path, controls, checkAccess);
    if (req.method !== 'POST') {
      req.resume();
      return sendProblem(res, 405, 'Method Not Allowed', 'simulated calls are POST', {}, { allow: 'POST' });
    }
    simulate(req, res);
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;

  await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
  const url = urlOf(server.address() as AddressInfo);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      // The callback's error only says the server was not listening; closed is closed.
      server.close(() => resolve());
      server.closeAllConnections();
      for (const pendingTimer of timers) clearTimeout(pendingTimer);
      timers.clear();
      pending = [];
    });
    return closing;
  };

  return { url, server, ...controls, close };
}

function writeAnswer(
  req: IncomingMessage,
  res: ServerResponse,
  decision: SimAnswer,
  raw: Buffer,
  profile: SimProfile,
): void {
  const headers = decision.retryAfterS === null ? {} : { 'retry-after': String(decision.retryAfterS) };
  if (decision.customBody !== undefined) {
    return sendJson(res, decision.status, decision.customBody.value, headers);
  }
  if (decision.status < 400) {
    return sendJson(
      res,
      decision.status,
      {
        ok: true,
        echo: parseJson(raw) ?? null,
        idempotencyKey: headerValue(req, 'idempotency-key'),
        requestId: headerValue(req, 'x-request-id'),
      },
      headers,
    );
  }
  const detail =
    decision.reason === 'overload'
      ? `simulated overload: capacity is ${String(profile.capacity)} concurrent requests`
      : `${decision.reason === 'scripted' ? 'scripted' : 'simulated'} failure`;
  sendProblem(res, decision.status, STATUS_TITLES[decision.status] ?? 'Simulated error', detail, {}, headers);
}

function headerValue(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  return typeof value === 'string' ? value : null;
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
