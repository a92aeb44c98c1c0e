/**
 * A fixed log-scale histogram layout for durations (DDSketch-style bins), so
 * that per-bucket histograms are small dense arrays that merge by addition.
 *
 * Error bound: for any value v in [MIN_TRACKED_MS, MAX_TRACKED_MS] the bin's
 * representative value is within RELATIVE_ERROR (1 %) of v. A quantile read
 * from the bins is therefore within 1 % of the sample that sits at that rank.
 * Values at or below MIN_TRACKED_MS (including 0) read back as 0 (absolute
 * error <= 0.01 ms); values above MAX_TRACKED_MS share the top bin, and callers
 * clamp quantiles to the exact maximum so a reading never exceeds a real sample.
 */

/** Relative error of one bin's representative value. */
export const RELATIVE_ERROR = 0.01;

/** Durations at or below this read back as 0: sub-10 µs differences are noise here. */
export const MIN_TRACKED_MS = 0.01;

/** One hour: far beyond any relay deadline, so only a bug lands above it. */
export const MAX_TRACKED_MS = 3_600_000;

// Adjacent bin bounds differ by GAMMA; the midpoint-by-ratio of a bin is then
// within (GAMMA - 1) / (GAMMA + 1) = RELATIVE_ERROR of anything in it.
const GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR);
const LOG_GAMMA = Math.log(GAMMA);
const FIRST_INDEX = Math.ceil(Math.log(MIN_TRACKED_MS) / LOG_GAMMA);
const LAST_INDEX = Math.ceil(Math.log(MAX_TRACKED_MS) / LOG_GAMMA);

/** Number of bins, including bin 0 for values at or below MIN_TRACKED_MS. */
export const BIN_COUNT = LAST_INDEX - FIRST_INDEX + 2;

/** The bin a duration falls in. O(1): one logarithm. */
export function binOf(valueMs: number): number {
  // NaN and negatives are clock glitches; counting them as 0 keeps the counts honest.
  if (!(valueMs > MIN_TRACKED_MS)) return 0;
  const index = Math.ceil(Math.log(valueMs) / LOG_GAMMA);
  return Math.min(index, LAST_INDEX) - FIRST_INDEX + 1;
}

/** The value reported for everything in `bin`. */
export function binValue(bin: number): number {
  if (bin <= 0) return 0;
  const index = bin - 1 + FIRST_INDEX;
  // Bin `index` covers (GAMMA^(index-1), GAMMA^index].
  return (2 * GAMMA ** index) / (GAMMA + 1);
}

/**
 * The nearest-rank quantile (`q` in [0, 1]) of `total` samples counted in
 * `bins`; 0 when there are none. For 1..1000 this gives p50 ≈ 500, p99 ≈ 990.
 */
export function quantileFromBins(bins: ArrayLike<number>, total: number, q: number): number {
  if (total <= 0) return 0;
  const rank = Math.max(1, Math.ceil(Math.min(Math.max(q, 0), 1) * total));
  let seen = 0;
  for (let bin = 0; bin < bins.length; bin++) {
    seen += bins[bin] ?? 0;
    if (seen >= rank) return binValue(bin);
  }
  return binValue(bins.length - 1);
}
