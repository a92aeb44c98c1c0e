import type { Random } from '../clock.js';
import type { SimProfile } from './profile.js';
import type { ScriptedResponse } from './script.js';

/** Why an answer is what it is; picks the default body. */
export type AnswerReason = 'ok' | 'failure' | 'overload' | 'scripted';

/** What the simulator will do with one request. Pure data, so it can be tested without HTTP. */
export type SimDecision =
  | { kind: 'hang' }
  | {
      kind: 'answer';
      status: number;
      delayMs: number;
      retryAfterS: number | null;
      reason: AnswerReason;
      /** A scripted body replaces the echo or the problem. */
      customBody?: { value: unknown };
    };

const HANG: SimDecision = { kind: 'hang' };

// Beyond this many requests over capacity the added latency stops growing,
// so an overloaded simulator is slow but still measurable.
const MAX_OVERLOAD_LATENCY_STEPS = 10;

/**
 * Decides the fate of one simulated call from the profile, the number of
 * requests in flight (this one included) and a random source.
 *
 * Over capacity, each extra concurrent request adds `latencyMs` and raises the
 * chance of a 503 linearly, reaching certainty at twice the capacity; beyond
 * that, requests are shed with an immediate 503. A retry storm therefore makes
 * the downstream both slower and less successful, as real ones do.
 */
export function decideResponse(profile: SimProfile, inFlight: number, random: Random): SimDecision {
  const over = profile.capacity === null ? 0 : Math.max(0, inFlight - profile.capacity);
  if (profile.capacity !== null && over > profile.capacity) {
    return answer(503, 0, retryAfterFor(503, profile), 'overload');
  }
  if (profile.hangRate > 0 && random() < profile.hangRate) return HANG;

  const delayMs =
    sampleLatencyMs(profile, random) + Math.min(over, MAX_OVERLOAD_LATENCY_STEPS) * profile.latencyMs;
  if (over > 0 && profile.capacity !== null && random() < over / profile.capacity) {
    return answer(503, delayMs, retryAfterFor(503, profile), 'overload');
  }
  if (profile.failRate > 0 && random() < profile.failRate) {
    return answer(profile.failStatus, delayMs, retryAfterFor(profile.failStatus, profile), 'failure');
  }
  return answer(200, delayMs, null, 'ok');
}

/** The long tail replaces the usual latency rather than adding to it. */
export function sampleLatencyMs(profile: SimProfile, random: Random): number {
  if (profile.tailRate > 0 && random() < profile.tailRate) return profile.tailMs;
  if (profile.jitterMs === 0) return profile.latencyMs;
  return Math.max(0, profile.latencyMs + (random() * 2 - 1) * profile.jitterMs);
}

/** Turns a scripted entry into a decision. */
export function decideScripted(scripted: ScriptedResponse): SimDecision {
  if (scripted.hang) return HANG;
  const decision = answer(scripted.status ?? 200, scripted.delayMs ?? 0, scripted.retryAfterS ?? null, 'scripted');
  if (scripted.body !== undefined) decision.customBody = { value: scripted.body };
  return decision;
}

function retryAfterFor(status: number, profile: SimProfile): number | null {
  return status === 503 || status === 429 ? profile.retryAfterS : null;
}

export type SimAnswer = Extract<SimDecision, { kind: 'answer' }>;

function answer(status: number, delayMs: number, retryAfterS: number | null, reason: AnswerReason): SimAnswer {
  return { kind: 'answer', status, delayMs, retryAfterS, reason };
}
