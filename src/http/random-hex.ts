import { randomFillSync } from 'node:crypto';

/** Random bytes drawn per refill: one call to the CSPRNG serves 256 trace spans. */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

/**
 * `bytes` random bytes as lower-case hex, from a pool refilled by the CSPRNG
 * (as node's own randomUUID caches its entropy). A randomBytes call per trace
 * id and span id was two CSPRNG calls and two Buffers per relayed request.
 */
export function randomHex(bytes: number): string {
  if (bytes > POOL_BYTES) throw new RangeError(`Expected at most ${POOL_BYTES} bytes, got ${bytes}`);
  if (offset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}
