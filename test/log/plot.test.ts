import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lineChart } from '../../train/log/plot.ts';

test('lineChart draws one path per series, a legend, and maps points into the frame', () => {
  const svg = lineChart({
    title: 'loss',
    xLabel: 'step',
    yLabel: 'loss',
    width: 400,
    height: 300,
    series: [
      {
        name: 'nce',
        points: [
          [0, 10],
          [10, 5],
          [20, 2],
        ],
      },
      {
        name: 'softmax',
        points: [
          [0, 8],
          [20, 1],
        ],
        dashed: true,
      },
    ],
  });
  assert.match(svg, /^<svg /);
  assert.equal((svg.match(/<path /g) ?? []).length, 2);
  assert.ok(svg.includes('>nce<') && svg.includes('>softmax<'));
  for (const m of svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)) {
    const [x, y] = [Number(m[1]), Number(m[2])];
    assert.ok(x >= 64 && x <= 384 && y >= 36 && y <= 252, `point ${x},${y} inside the plot area`);
  }
});

test('lineChart skips non-finite points and refuses a chart with none', () => {
  const svg = lineChart({
    title: 't',
    xLabel: 'x',
    yLabel: 'y',
    series: [
      {
        name: 'a',
        points: [
          [0, NaN],
          [1, 2],
          [2, 3],
        ],
      },
    ],
  });
  assert.equal((svg.match(/<circle /g) ?? []).length, 2);
  assert.throws(
    () => lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, NaN]] }] }),
    /no finite points/,
  );
});

test('lineChart: named x ticks with padding, fixed colours, and a legend below the axes', () => {
  const o = {
    title: 'per layer',
    xLabel: 'layer',
    yLabel: 'top-1',
    width: 400,
    height: 300,
    xPad: 0.5,
    xTicks: [
      [1, 'conv1'],
      [2, 'conv2'],
      [3, 'fc6'],
      [9, 'off the axis'],
    ] as [number, string][],
    series: [
      {
        name: 'cmc',
        points: [
          [1, 30],
          [2, 40],
          [3, 35],
        ] as [number, number][],
        color: '#123456',
      },
      {
        name: 'level',
        points: [
          [1, 20],
          [3, 20],
        ] as [number, number][],
        dashed: true,
        markers: false,
      },
    ],
  };
  const top = lineChart(o);
  for (const l of ['>conv1<', '>conv2<', '>fc6<']) assert.ok(top.includes(l));
  assert.ok(!top.includes('off the axis'));
  assert.ok(top.includes('stroke="#123456"'));
  assert.equal((top.match(/<circle /g) ?? []).length, 3);
  // Padding: the first point is half a unit inside the left edge, not on the axis.
  const cx = Number(/<circle cx="([\d.]+)"/.exec(top)![1]);
  assert.ok(cx > 64 + 20, `first marker at ${cx}, off the y axis`);
  assert.match(top, /height="300"/);
  const below = lineChart({ ...o, legend: 'below' });
  assert.match(below, /height="336" viewBox="0 0 400 336"/);
  const legendY = [...below.matchAll(/<text x="[\d.]+" y="([\d.]+)">(cmc|level)</g)].map((m) => Number(m[1]));
  assert.equal(legendY.length, 2);
  assert.ok(
    legendY.every((y) => y > 300 - 48),
    'legend entries under the plot area',
  );
});

test('lineChart: error bars span y ± e on the plot scale, and the y range makes room for them', () => {
  const svg = lineChart({
    title: 't',
    xLabel: 'x',
    yLabel: 'y',
    width: 400,
    height: 300,
    yRange: [0, 100],
    series: [
      {
        name: 'mean',
        points: [
          [1, 50],
          [2, 60],
          [3, 70],
        ],
        errors: [10, 0, NaN],
      },
    ],
  });
  const bars = [...svg.matchAll(/<path class="error-bar" d="M([\d.]+),([\d.]+) L([\d.]+),([\d.]+) /g)];
  assert.equal(bars.length, 1, 'a bar only where the error is a positive number');
  // y 0..100 maps to 252..36 (216 px): 40 and 60 are at 165.6 and 122.4.
  const [, x1, lo, x2, hi] = bars[0].map(Number);
  assert.equal(x1, x2, 'a vertical bar');
  assert.deepEqual([lo, hi], [165.6, 122.4]);
  const auto = lineChart({
    title: 't',
    xLabel: 'x',
    yLabel: 'y',
    series: [
      {
        name: 'a',
        points: [
          [1, 50],
          [2, 50.5],
        ],
        errors: [20, 20],
      },
    ],
  });
  const ticks = [...auto.matchAll(/text-anchor="end">([\d.]+)</g)].map((m) => Number(m[1]));
  assert.ok(Math.min(...ticks) <= 35 && Math.max(...ticks) >= 65, `y ticks ${ticks} cover 50 ± 20`);
});
