import type { RelayAnswer } from './domain.js';
import type { CallResponse } from './resilience/attempt.js';
import type { StoredResponse } from './storage/types.js';

/** Answer headers never stored under a key: replays must not hand out another client's cookie. */
const UNSTORED_ANSWER_HEADERS = new Set(['set-cookie', 'content-length', 'date']);

/** What a replay repeats of a downstream's answer: end-to-end headers less cookies and framing, one value per name. */
export function toStored(answer: { status: number; headers: Record<string, string | string[]>; body: Buffer }): StoredResponse {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(answer.headers)) {
    if (UNSTORED_ANSWER_HEADERS.has(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return { status: answer.status, headers, body: answer.body };
}

/** A downstream's answer as the client gets it (the attempts and replay flag are the caller's). */
export function toAnswer(response: CallResponse): Omit<RelayAnswer, 'attempts' | 'replayed'> {
  const answer: Omit<RelayAnswer, 'attempts' | 'replayed'> = { status: response.status, headers: response.headers, body: response.body };
  if (response.upstream !== undefined) answer.upstream = response.upstream;
  return answer;
}

/** A stored answer as a replay hands it out. */
export function fromStored(stored: StoredResponse): Omit<RelayAnswer, 'attempts' | 'replayed'> {
  return { status: stored.status, headers: stored.headers, body: stored.body };
}
