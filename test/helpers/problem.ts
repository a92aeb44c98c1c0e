import { expect } from 'vitest';

/** What a test needs of a response, whether it came from supertest or rawRequest. */
interface AnyResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
  json?: unknown;
}

/**
 * Asserts an RFC 9457 problem from the relay itself: the status, the
 * application/problem+json content type and the four standard members.
 * Returns the parsed body for further checks.
 */
export function expectProblem(res: AnyResponse, status: number): Record<string, unknown> {
  expect(res.status).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
  const body = ('json' in res && res.json !== undefined ? res.json : res.body) as Record<string, unknown>;
  expect(body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  return body;
}
