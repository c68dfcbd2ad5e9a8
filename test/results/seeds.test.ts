/**
 * `cmc report` over several seeds (train/results/seeds.ts): methods named `<method>_seed<S>` become one row
 * of mean ± sample std per layer with n shown, the per-layer plot draws ±1 std error bars, and single-seed
 * inputs print as before. Generated JSON inputs only.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildReport } from '../../train/results/report.ts';
import { loadResults } from '../../train/results/results.ts';
import { groupSeeds, meanStd, pctMeanStd, seedOf } from '../../train/results/seeds.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-report-seeds-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function write(dir: string, name: string, v: unknown): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), JSON.stringify(v) + '\n');
}

/** A `cmc probe --json` result whose epoch was chosen on held-out images: the number reported is best.top1. */
const probe = (layer: number, top1: number) => ({
  encoder: 'x.ckpt',
  layer: { layer },
  selected_on: 'held_out',
  best: { epoch: 5, top1, top5: top1 + 0.2 },
  last: { epoch: 10, top1: 0, top5: 0 },
});
const encoder = (epoch: number, step: number) => ({
  encoder: 'x.ckpt',
  objective: 'cmc',
  arch: 'alexnet_small',
  epoch,
  step,
  train_seconds: 100,
});

/** The row whose first cell starts with `label`, as cells. */
function row(md: string, label: string): string[] {
  const line = md.split('\n').find((l) => l.startsWith(`| ${label}`));
  assert.ok(line, `a row for '${label}' in:\n${md}`);
  return line
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());
}

test('seedOf / groupSeeds / meanStd: the convention and the statistics', () => {
  assert.deepEqual(seedOf('cmc_lr0.06_seed12'), { base: 'cmc_lr0.06', seed: 12 });
  assert.equal(seedOf('cmc'), null);
  assert.equal(seedOf('seed1'), null);
  assert.deepEqual(
    groupSeeds(['cmc_seed2', 'cmc_seed0', 'random', 'alone_seed3'], (m) => m).map((g) => [
      g.method,
      g.seeds,
      g.members,
    ]),
    [
      ['cmc', [0, 2], ['cmc_seed0', 'cmc_seed2']],
      ['random', [], ['random']],
      ['alone_seed3', [], ['alone_seed3']],
    ],
  );
  const s = meanStd([0.6, 0.7, 0.8, undefined]);
  assert.equal(s.n, 3);
  assert.ok(Math.abs(s.mean - 0.7) < 1e-12);
  assert.ok(Math.abs(s.std - 0.1) < 1e-12, 'sample std (n - 1)');
  assert.equal(pctMeanStd(s), '70.00 ± 10.00');
  assert.equal(pctMeanStd(s, 4), '70.00 ± 10.00 (n=3)');
  assert.equal(pctMeanStd(meanStd([0.5])), '50.00');
  assert.equal(pctMeanStd(meanStd([])), '—');
});

test('report: seeds of a method are one row of mean ± std per layer, n shown; single runs print as before', () => {
  const dir = path.join(root, 'three_seeds');
  const top1 = [
    [0.6, 0.7], // seed 0: layers 1, 2
    [0.62, 0.74],
    [0.64, 0.72],
  ];
  top1.forEach((t, seed) => {
    write(dir, `probe_cmc_seed${seed}_layer1.json`, probe(1, t[0]));
    if (seed !== 2) write(dir, `probe_cmc_seed${seed}_layer2.json`, probe(2, t[1])); // seed 2 lacks layer 2
    // Held-out top-1 of each layer's chosen weight decay: seed 0 picks layer 2, seed 1 ties (the earlier layer,
    // 1), seed 2 has layer 1 only.
    const heldOut = [
      [0.6, 0.7],
      [0.65, 0.65],
      [0.6, 0.9],
    ][seed];
    for (const l of seed !== 2 ? [1, 2] : [1]) {
      write(dir, `wd_cmc_seed${seed}_layer${l}.json`, {
        layer: l,
        val_split: 0.1,
        chosen: 1e-4,
        candidates: [
          { weight_decay: 0, val_top1: 0.99 }, // not the chosen weight decay: ignored
          { weight_decay: 1e-4, val_top1: heldOut[l - 1] },
        ],
      });
    }
    write(dir, `knn_cmc_seed${seed}.json`, { top1: 0.5 + 0.1 * seed });
    write(dir, `encoder_cmc_seed${seed}.json`, encoder(70, 7000 + seed));
    write(dir, `supervised_seed${seed}.json`, {
      test_top1: 0.65 + 0.01 * seed,
      test_top5: 0.9,
      metrics: [{ epoch: 20, step: 800, epoch_sec: 10 }],
    });
  });
  write(dir, 'probe_random_layer1.json', probe(1, 0.3));
  write(dir, 'probe_random_layer2.json', probe(2, 0.25));
  write(dir, 'encoder_random.json', {
    encoder: 'random',
    objective: 'random',
    arch: 'alexnet_small',
    epoch: 0,
    step: 0,
  });
  write(dir, 'probe_lonely_seed4_layer1.json', probe(1, 0.55));
  write(dir, 'encoder_lonely_seed4.json', encoder(10, 1000));

  const r = buildReport(loadResults(dir));
  const md = r.markdown;
  assert.deepEqual(row(md, 'cmc'), [
    'cmc (mean ± std of 3 seeds: 0, 1, 2)',
    '62.00 ± 2.00 / 82.00 ± 2.00',
    '72.00 ± 2.83 (n=2) / 92.00 ± 2.83',
    '1 conv1 (62.00 ± 2.00)', // layer 2 has a better mean, but from two seeds only
    // Each seed's held-out choice: layer 2 (70.00), 1 (62.00), 1 (64.00).
    '1 conv1 ×2, 2 conv2 ×1 (65.33 ± 4.16)',
    '60.00 ± 10.00',
    '7,001',
    '70',
    '1m40s',
    '—',
  ]);
  const mainTable = md.split('## Weight decay')[0]; // the weight-decay table lists each seed's choices
  assert.ok(!mainTable.includes('| cmc_seed'), 'no row per seed');
  assert.match(md, /\| cmc_seed0 \| 2 conv2 \| 0: 99\.00, 0\.0001: 70\.00 \| 0\.0001 \|/);
  assert.deepEqual(row(md, 'random').slice(0, 5), [
    'random (random init)',
    '30.00 / 50.00',
    '25.00 / 45.00',
    '1 conv1 (30.00)',
    '—', // no held-out figures
  ]);
  assert.deepEqual(
    row(md, 'lonely_seed4').slice(0, 3),
    ['lonely_seed4', '55.00 / 75.00', '—'],
    'one seed prints as before',
  );
  const sup = row(md, 'supervised');
  assert.equal(sup[0], 'supervised (end-to-end classifier, mean ± std of 3 seeds: 0, 1, 2)');
  assert.equal(sup[3], '66.00 ± 1.00 / 90.00 ± 0.00');
  assert.match(md, /mean ± sample standard deviation over the seeds/);

  const svg = r.plots['accuracy_per_layer.svg'];
  assert.ok(svg.includes('>cmc, mean ± std of 3 seeds<'), svg);
  assert.ok(svg.includes('>supervised (end-to-end), mean ± std of 3 seeds<'));
  assert.ok(svg.includes('>random (random init)<'));
  // Bars: cmc at layers 1 and 2, the supervised level at both ends; none for the single runs.
  assert.equal((svg.match(/class="error-bar"/g) ?? []).length, 4);
});

test('report: inputs without seeds give the same markdown and plots as before (no error bars, no seed sentence)', () => {
  const dir = path.join(root, 'plain');
  write(dir, 'probe_cmc_layer1.json', probe(1, 0.6));
  write(dir, 'encoder_cmc.json', encoder(70, 7000));
  write(dir, 'supervised.json', { test_top1: 0.65, metrics: [{ epoch: 20, step: 800 }] });
  const r = buildReport(loadResults(dir));
  assert.deepEqual(row(r.markdown, 'cmc').slice(0, 3), ['cmc', '60.00 / 80.00', '1 conv1 (60.00)']);
  assert.equal(row(r.markdown, 'supervised')[0], 'supervised (end-to-end classifier)');
  assert.ok(!r.markdown.includes('seeds'));
  assert.ok(!r.plots['accuracy_per_layer.svg'].includes('error-bar'));
});
