import { readFileSync } from 'node:fs';
import type { ChainableCommander, Redis } from 'ioredis';

/** Every Lua script, by file name under `lua/` (without `.lua`). */
export const SCRIPT_NAMES = [
  'idempotency-reserve',
  'idempotency-complete',
  'idempotency-release',
  'dlq-add',
  'dlq-list',
  'dlq-record-failed-replay',
  'dlq-remove',
  'dlq-purge',
  'dlq-redrive',
  'dlq-claim-replay',
  'dlq-release-replay',
  'dlq-record-edit',
  'job-enqueue',
  'job-lease',
  'job-complete',
  'job-reschedule',
  'job-bury',
  'job-mark-delivered',
  'job-purge',
] as const;

export type ScriptName = (typeof SCRIPT_NAMES)[number];
export type ScriptArg = string | number | Buffer;

/**
 * Runs a script. Replies come back with bulk strings as Buffers (the `…Buffer`
 * variant ioredis defines next to each command), because bodies are bytes.
 */
export type RunScript = (name: ScriptName, keys: readonly string[], args: readonly ScriptArg[]) => Promise<unknown>;

// Resolved against this module so the files are found wherever src/ runs from (tsx, no build step).
const LUA_DIR = new URL('./lua/', import.meta.url);
const INCLUDE = /^--- @include "([a-z0-9-]+)"\s*$/gm;

const sources = new Map<ScriptName, string>();

/**
 * The script's source with its `--- @include "name"` lines replaced by
 * `lua/includes/name.lua` (each include once per script, in order of first use),
 * as BullMQ does, so that shared helpers live in one file.
 */
export function loadScript(name: ScriptName): string {
  let source = sources.get(name);
  if (source === undefined) {
    source = resolveIncludes(readLua(`${name}.lua`), new Set());
    sources.set(name, source);
  }
  return source;
}

function readLua(relativePath: string): string {
  return readFileSync(new URL(relativePath, LUA_DIR), 'utf8');
}

function resolveIncludes(source: string, seen: Set<string>): string {
  return source.replace(INCLUDE, (_line, include: string) => {
    if (seen.has(include)) return '';
    seen.add(include);
    return resolveIncludes(readLua(`includes/${include}.lua`), seen);
  });
}

/** ioredis command name for a script: `job-lease` -> `relayJobLease`. */
function commandName(name: ScriptName): string {
  return `relay${name.replace(/(^|-)([a-z])/g, (_m, _dash, letter: string) => letter.toUpperCase())}`;
}

/**
 * Defines every script on the client with `defineCommand`: ioredis sends EVALSHA
 * and falls back to EVAL when Redis does not know the script (after a restart or
 * SCRIPT FLUSH). The number of keys is passed per call.
 */
export function defineScripts(redis: Redis): RunScript {
  for (const name of SCRIPT_NAMES) redis.defineCommand(commandName(name), { lua: loadScript(name) });
  // defineCommand adds methods ioredis's types cannot know about.
  const commands = redis as unknown as Record<string, (...args: ScriptArg[]) => Promise<unknown>>;
  return (name, keys, args) => {
    const command = commands[`${commandName(name)}Buffer`];
    if (command === undefined) throw new Error(`Redis script ${name} is not defined`);
    return command.call(redis, keys.length, ...keys, ...args);
  };
}

/** Records one purge script call deletes; the caller repeats until a call deletes fewer. */
const PURGE_BATCH = 500;

/**
 * Runs `dlq-purge` or `job-purge` (ARGV: prefix, before, batch size) until a call
 * deletes less than a full batch, so that no single call holds Redis, which runs
 * one script at a time for every relay, for long. Returns how many were deleted.
 */
export async function purgeInBatches(run: RunScript, name: 'dlq-purge' | 'job-purge', prefix: string, before: number): Promise<number> {
  let purged = 0;
  // Each round deletes a full batch or ends the loop.
  for (;;) {
    const deleted = Number(await run(name, [], [prefix, before, PURGE_BATCH]));
    purged += deleted;
    if (deleted < PURGE_BATCH) return purged;
  }
}

/**
 * Whether `error` is a script's error reply with this code: by Redis convention the
 * first word of an error reply (`WRONGTYPE`, `NOSCRIPT`...), and ours use it the same way.
 */
export function isReplyCode(error: unknown, code: string): boolean {
  return error instanceof Error && error.message.startsWith(`${code} `);
}

/** Runs the commands `build` queues in one MULTI (one consistent snapshot) and returns their results. */
export async function snapshot(redis: Redis, build: (transaction: ChainableCommander) => ChainableCommander): Promise<unknown[]> {
  const results = (await build(redis.multi()).exec()) ?? [];
  return results.map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}
