import { describe, expect, it } from 'vitest';
import { escapeXml, niceTicks, renderChartStack, renderLineChart, type LineChartOptions } from './svg.js';

const base: LineChartOptions = {
  title: 'Downstream request rate',
  xLabel: 'time since release (s)',
  yLabel: 'requests per second',
  series: [
    { name: 'naive', color: '#d62728', points: [{ x: 0, y: 0 }, { x: 1, y: 9000 }, { x: 2, y: 4000 }] },
    { name: 'relay', color: '#1f77b4', points: [{ x: 0, y: 0 }, { x: 1, y: 800 }, { x: 4, y: 2000 }] },
  ],
  guides: [{ y: 2500, label: 'capacity 2,500 req/s' }],
  width: 800,
  height: 400,
};

function pathYs(svg: string): number[][] {
  return [...svg.matchAll(/class="series" d="([^"]+)"/g)].map((m) => [...m[1]!.matchAll(/[ML][\d.]+ ([\d.]+)/g)].map((p) => Number(p[1])));
}

describe('niceTicks', () => {
  it('covers the range with a 1-2-5 step', () => {
    expect(niceTicks(0, 9000, 6)).toEqual([0, 2000, 4000, 6000, 8000, 10000]);
    expect(niceTicks(0, 4.3, 6)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(niceTicks(0, 0.3, 6)).toEqual([0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]);
  });

  it('gives an all-zero range a unit axis instead of dividing by zero', () => {
    expect(niceTicks(0, 0, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
  });

  it('names the bad range', () => {
    expect(() => niceTicks(5, 1, 6)).toThrow('got `[5, 1]`');
    expect(() => niceTicks(0, 1, 0)).toThrow('got `0`');
  });
});

describe('renderLineChart', () => {
  it('draws one line per series, a legend entry each, and the labels', () => {
    const svg = renderLineChart(base);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/class="series"/g)).toHaveLength(2);
    expect(svg).toContain('stroke="#d62728"');
    expect(svg).toContain('>naive</text>');
    expect(svg).toContain('>relay</text>');
    expect(svg).toContain('>time since release (s)</text>');
    expect(svg).toContain('>requests per second</text>');
    expect(svg).toContain('>10,000</text>');
  });

  it('puts the higher value higher on the page', () => {
    const [naive] = pathYs(renderLineChart(base));
    // SVG y grows downwards: the 9,000 point sits above the 4,000 point, both above zero.
    expect(naive![1]!).toBeLessThan(naive![2]!);
    expect(naive![2]!).toBeLessThan(naive![0]!);
  });

  it('draws the capacity as a dashed line at its value', () => {
    const svg = renderLineChart(base);
    const guide = /class="guide" x1="[\d.]+" y1="([\d.]+)"[^>]*stroke-dasharray/.exec(svg);
    expect(guide).not.toBeNull();
    // Axis 0..10,000 over the plot's 400 - 64 - 56 = 280 px: 2,500 is a quarter up from the bottom (344).
    expect(Number(guide![1])).toBeCloseTo(344 - 280 / 4, 0);
    expect(svg).toContain('capacity 2,500 req/s');
  });

  it('keeps the guide on the chart when every series is below it', () => {
    const svg = renderLineChart({ ...base, series: [{ name: 'quiet', color: '#000', points: [{ x: 0, y: 1 }] }] });
    expect(svg).toContain('>2,500</text>');
  });

  it('escapes labels so a title with < or & stays valid XML', () => {
    const svg = renderLineChart({ ...base, title: 'naive <retry> & "storm"' });
    expect(svg).toContain('naive &lt;retry&gt; &amp; &quot;storm&quot;');
    expect(escapeXml(`'`)).toBe('&apos;');
  });

  it('renders an empty chart without NaN', () => {
    const svg = renderLineChart({ ...base, series: [], guides: [] });
    expect(svg).not.toContain('NaN');
    expect(svg).not.toContain('class="series"');
  });

  it('refuses a non-finite point, naming its series', () => {
    expect(() => renderLineChart({ ...base, series: [{ name: 'naive', color: '#000', points: [{ x: 1, y: Number.NaN }] }] })).toThrow(
      'series "naive"',
    );
    expect(() => renderLineChart({ ...base, width: 10 })).toThrow('got `10`');
  });
});

describe('renderChartStack', () => {
  const relayOnly: LineChartOptions = { ...base, title: 'Through the relay', series: [base.series[1]!], height: 300 };

  it('stacks the charts top to bottom in one document', () => {
    const svg = renderChartStack({ charts: [base, relayOnly] });
    expect(svg.match(/<svg /g)).toHaveLength(1);
    expect(svg).toContain('height="700"');
    expect(svg).toContain('<g transform="translate(0 0)">');
    expect(svg).toContain('<g transform="translate(0 400)">');
    expect(svg.indexOf('>Downstream request rate</text>')).toBeLessThan(svg.indexOf('>Through the relay</text>'));
  });

  it('lines the time axes up when the charts share xMax', () => {
    const tickLabels = (svg: string) => [...svg.matchAll(/text-anchor="middle">([\d.,]+)<\/text>/g)].map((m) => m[1]);
    const short: LineChartOptions = { ...relayOnly, series: [{ name: 'relay', color: '#000', points: [{ x: 0, y: 1 }, { x: 1.2, y: 2 }] }] };
    expect(tickLabels(renderLineChart(short)).at(-1)).toBe('1.2');
    expect(tickLabels(renderLineChart({ ...short, xMax: 20 })).at(-1)).toBe('20');
  });

  it('refuses an empty stack', () => {
    expect(() => renderChartStack({ charts: [] })).toThrow('got `0`');
  });
});
