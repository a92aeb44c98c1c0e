import { canarySide, type CanarySide } from '../../src/resilience/canary.js';

/** `count` made-up ids on `side` of a canary at `percent` with `salt` (the protection's name). */
export function idsOn(side: CanarySide, percent: number, salt: string, count = 1): string[] {
  const found: string[] = [];
  for (let i = 0; found.length < count; i++) if (canarySide(`id-${i}`, percent, salt) === side) found.push(`id-${i}`);
  return found;
}
