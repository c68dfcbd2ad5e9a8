import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lineChart } from '../../train/log/plot.ts';

test('lineChart draws one path per series, a legend, and maps points into the frame', () => {
  const svg = lineChart({
    title: 'loss', xLabel: 'step', yLabel: 'loss', width: 400, height: 300,
    series: [{ name: 'nce', points: [[0, 10], [10, 5], [20, 2]] }, { name: 'softmax', points: [[0, 8], [20, 1]], dashed: true }],
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
  const svg = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, NaN], [1, 2], [2, 3]] }] });
  assert.equal((svg.match(/<circle /g) ?? []).length, 2);
  assert.throws(() => lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, NaN]] }] }), /no finite points/);
});
