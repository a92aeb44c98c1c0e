/**
 * A small, dependency-free SVG line chart: inputs in, a self-contained SVG
 * document out. Pure, so it is tested without a browser and the demo's picture
 * is reproducible from its JSON.
 */

export interface ChartPoint {
  x: number;
  y: number;
}

export interface ChartSeries {
  /** Shown in the legend. */
  name: string;
  /** Any SVG colour, e.g. `#d62728`. */
  color: string;
  points: ReadonlyArray<ChartPoint>;
}

/** A dashed horizontal reference line, e.g. the downstream's capacity. */
export interface ChartGuide {
  y: number;
  label: string;
  /** @default '#555' */
  color?: string;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ReadonlyArray<ChartSeries>;
  guides?: ReadonlyArray<ChartGuide>;
  /** @default 860 */
  width?: number;
  /** @default 440 */
  height?: number;
  /** The x axis reaches at least this far, so stacked charts can share a time axis. @default the largest x */
  xMax?: number;
}

export interface ChartStackOptions {
  /** Drawn top to bottom, each with its own y axis; `width` of the first applies to all. */
  charts: ReadonlyArray<LineChartOptions>;
}

const MARGIN = { top: 64, right: 24, bottom: 56, left: 76 };
const TARGET_TICKS = 6;
const LEGEND_Y = 46;
// Width of a 12 px sans-serif character, near enough to space the legend's entries.
const LEGEND_CHAR_PX = 6.5;

/**
 * Renders the series as polylines over shared axes starting at zero, with
 * 1-2-5 ticks, axis labels, a legend row under the title and dashed guides.
 * @throws {RangeError} naming the bad size or point.
 */
export function renderLineChart(options: LineChartOptions): string {
  return renderChartStack({ charts: [options] });
}

/**
 * Renders charts one above the other in one SVG document; give them the same
 * `xMax` to line their time axes up.
 * @throws {RangeError} naming the bad size or point.
 */
export function renderChartStack(options: ChartStackOptions): string {
  if (options.charts.length === 0) throw new RangeError('Expected at least one chart, got `0`');
  const width = options.charts[0]?.width ?? 860;
  const heights = options.charts.map((c) => c.height ?? 440);
  const total = heights.reduce((a, b) => a + b, 0);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${total}" viewBox="0 0 ${width} ${total}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${total}" fill="#fff"/>`,
  ];
  let top = 0;
  options.charts.forEach((chart, i) => {
    out.push(`<g transform="translate(0 ${top})">`, ...chartElements(chart, width, heights[i]!), '</g>');
    top += heights[i]!;
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function chartElements(options: LineChartOptions, width: number, height: number): string[] {
  for (const [name, value] of [['width', width], ['height', height]] as const) {
    if (!Number.isFinite(value) || value < 200) throw new RangeError(`Expected \`${name}\` to be a number from 200 and up, got \`${value}\``);
  }
  if (options.xMax !== undefined && !(Number.isFinite(options.xMax) && options.xMax >= 0)) {
    throw new RangeError(`Expected \`xMax\` to be a finite number from 0 and up, got \`${options.xMax}\``);
  }
  for (const s of options.series) {
    for (const p of s.points) {
      if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) {
        throw new RangeError(`Expected every point of series ${JSON.stringify(s.name)} to be finite, got \`${JSON.stringify(p)}\``);
      }
    }
  }
  const guides = options.guides ?? [];
  const xs = options.series.flatMap((s) => s.points.map((p) => p.x));
  const ys = [...options.series.flatMap((s) => s.points.map((p) => p.y)), ...guides.map((g) => g.y)];
  const xTicks = niceTicks(0, Math.max(0, options.xMax ?? 0, ...xs), TARGET_TICKS);
  const yTicks = niceTicks(0, Math.max(0, ...ys), TARGET_TICKS);
  const xMax = xTicks[xTicks.length - 1]!;
  const yMax = yTicks[yTicks.length - 1]!;

  const plot = { left: MARGIN.left, top: MARGIN.top, right: width - MARGIN.right, bottom: height - MARGIN.bottom };
  const sx = (x: number) => plot.left + (x / xMax) * (plot.right - plot.left);
  const sy = (y: number) => plot.bottom - (y / yMax) * (plot.bottom - plot.top);

  const out: string[] = [];
  out.push(
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`,
  );

  for (const y of yTicks) {
    out.push(
      `<line x1="${plot.left}" y1="${fmt(sy(y))}" x2="${plot.right}" y2="${fmt(sy(y))}" stroke="#e5e5e5"/>`,
      `<text x="${plot.left - 6}" y="${fmt(sy(y) + 4)}" text-anchor="end">${formatTick(y)}</text>`,
    );
  }
  for (const x of xTicks) {
    out.push(
      `<line x1="${fmt(sx(x))}" y1="${plot.bottom}" x2="${fmt(sx(x))}" y2="${plot.bottom + 5}" stroke="#333"/>`,
      `<text x="${fmt(sx(x))}" y="${plot.bottom + 18}" text-anchor="middle">${formatTick(x)}</text>`,
    );
  }
  out.push(
    `<line x1="${plot.left}" y1="${plot.bottom}" x2="${plot.right}" y2="${plot.bottom}" stroke="#333"/>`,
    `<line x1="${plot.left}" y1="${plot.top}" x2="${plot.left}" y2="${plot.bottom}" stroke="#333"/>`,
    `<text x="${(plot.left + plot.right) / 2}" y="${height - 14}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    `<text transform="translate(18 ${(plot.top + plot.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  );

  for (const guide of guides) {
    const color = guide.color ?? '#555';
    out.push(
      `<line class="guide" x1="${plot.left}" y1="${fmt(sy(guide.y))}" x2="${plot.right}" y2="${fmt(sy(guide.y))}" stroke="${escapeXml(color)}" stroke-width="1.5" stroke-dasharray="6 4"/>`,
      // The white halo keeps the label readable where a series crosses it.
      `<text x="${plot.right - 4}" y="${fmt(sy(guide.y) - 5)}" text-anchor="end" fill="${escapeXml(color)}" stroke="#fff" stroke-width="3" paint-order="stroke">${escapeXml(guide.label)}</text>`,
    );
  }

  for (const s of options.series) {
    if (s.points.length === 0) continue;
    const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${fmt(sx(p.x))} ${fmt(sy(p.y))}`).join(' ');
    out.push(`<path class="series" d="${d}" fill="none" stroke="${escapeXml(s.color)}" stroke-width="1.8" stroke-linejoin="round"/>`);
  }

  // One row between the title and the plot: a legend inside the plot hides whatever peaks under it.
  let legendX = plot.left;
  for (const s of options.series) {
    out.push(
      `<line x1="${legendX}" y1="${LEGEND_Y - 4}" x2="${legendX + 20}" y2="${LEGEND_Y - 4}" stroke="${escapeXml(s.color)}" stroke-width="2.5"/>`,
      `<text x="${legendX + 26}" y="${LEGEND_Y}">${escapeXml(s.name)}</text>`,
    );
    legendX += 26 + LEGEND_CHAR_PX * s.name.length + 24;
  }

  return out;
}

/**
 * Evenly spaced ticks with a 1, 2 or 5 x 10^k step that cover [min, max],
 * about `target` of them. A zero-width range gets the unit interval above it.
 */
export function niceTicks(min: number, max: number, target: number): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) {
    throw new RangeError(`Expected a finite range with min <= max, got \`[${min}, ${max}]\``);
  }
  if (!Number.isInteger(target) || target < 1) throw new RangeError(`Expected \`target\` to be an integer from 1 and up, got \`${target}\``);
  if (max === min) max = min + 1;
  const rough = (max - min) / target;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= rough) ?? 10) * magnitude;
  const first = Math.floor(min / step) * step;
  const ticks: number[] = [];
  // Rounded so that 0.1 + 0.2 style drift never prints as 0.30000000000000004.
  for (let v = first; v < max + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

/** Escapes the five XML special characters, so labels can say `<` or `&`. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function fmt(n: number): string {
  return String(Math.round(n * 10) / 10);
}

function formatTick(value: number): string {
  return value.toLocaleString('en-US', { maximumFractionDigits: 2 });
}
