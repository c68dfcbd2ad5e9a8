/**
 * `cmc report` on generated result files (no real data, no training): the markdown table, the SVG plots,
 * SGD steps from encoder files / checkpoint headers / run folders, and clear messages for missing or broken
 * inputs. Also train/results/eval_protocol.sh's argument checks (they fail before any probe runs).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { buildReport, layerName, probeScore } from '../../train/results/report.ts';
import { checkpointInfo, loadResults, type ProbeJson } from '../../train/results/results.ts';
import { writeCheckpoint } from '../../core/formats/checkpoint.ts';
import { addReportCommand } from '../../bin/commands/report.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-report-test-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A `cmc probe --json` line: top-1 `best` at epoch 7 and `last` at epoch 10. */
function probeJson(
  layer: number,
  best: number,
  last: number,
  o: { selectedOn?: 'held_out' | 'val' | 'test'; encoder?: string; seconds?: number } = {},
): ProbeJson {
  const ep = (epoch: number, top1: number) => ({
    epoch,
    lr: 0.1,
    loss: 1,
    train_top1: top1,
    top1,
    top5: Math.min(1, top1 + 0.3),
    epoch_sec: 1,
    ...(o.selectedOn === 'val' || o.selectedOn === 'held_out' ? { val_top1: top1 + 0.01 } : {}),
  });
  return {
    encoder: o.encoder ?? '/gone/runs/cmc_run/current.ckpt',
    layer: { layer, featureDim: 100 },
    selected_on: o.selectedOn ?? 'test',
    best: ep(7, best),
    last: ep(10, last),
    epochs: [ep(7, best), ep(10, last)],
    n_train: 900,
    n_val: 0,
    n_test: 300,
    seconds: o.seconds ?? 60,
  } as ProbeJson;
}

function write(dir: string, name: string, v: unknown): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), typeof v === 'string' ? v : JSON.stringify(v) + '\n');
}

/** A results folder as train/results/eval_protocol.sh leaves it: cmc (layers 1-8), random, supervised, intermediate cmc checkpoints. */
function fixture(name: string): string {
  const dir = path.join(root, name);
  const cmc = [0.3, 0.35, 0.4, 0.45, 0.5, 0.48, 0.44, 0.42];
  const rnd = [0.2, 0.18, 0.16, 0.15, 0.14, 0.12, 0.11, 0.1];
  const sup = [0.31, 0.4, 0.5, 0.55, 0.6, 0.62, 0.63, 0.6];
  for (let l = 1; l <= 8; l++) {
    write(dir, `probe_cmc_layer${l}.json`, probeJson(l, cmc[l - 1] + 0.05, cmc[l - 1]));
    write(dir, `probe_random_layer${l}.json`, probeJson(l, rnd[l - 1] + 0.05, rnd[l - 1], { encoder: 'random' }));
    write(
      dir,
      `probe_supervised_layer${l}.json`,
      probeJson(l, sup[l - 1] + 0.05, sup[l - 1], { encoder: '/gone/runs/sup/current.ckpt' }),
    );
    write(dir, `wd_cmc_layer${l}.json`, {
      layer: l,
      val_split: 0.1,
      chosen: 1e-4,
      candidates: [
        { weight_decay: 0, val_top1: 0.3, seconds: 50 },
        // conv4 is best on the held-out images, conv5 on test.
        { weight_decay: 1e-4, val_top1: l === 4 ? 0.5 : 0.32, seconds: 50 },
      ],
    });
  }
  write(dir, 'encoder_cmc.json', {
    encoder: '/gone/runs/cmc_run/current.ckpt',
    objective: 'cmc',
    arch: 'alexnet_small',
    image_size: 64,
    epoch: 100,
    step: 40000,
    train_seconds: 7260,
  });
  write(dir, 'encoder_random.json', {
    encoder: 'random',
    objective: 'random',
    arch: 'alexnet_small',
    image_size: 64,
    epoch: 0,
    step: 0,
  });
  write(dir, 'encoder_supervised.json', {
    encoder: '/gone/runs/sup/current.ckpt',
    objective: 'supervised',
    arch: 'alexnet_small',
    image_size: 64,
    epoch: 60,
    step: 24000,
    train_seconds: 3600,
  });
  write(dir, 'knn_cmc.json', {
    encoder: '/gone/runs/cmc_run/current.ckpt',
    k: 200,
    T: 0.07,
    top1: 0.4567,
    top5: 0.9,
    n: 300,
    seconds: 30,
  });
  write(dir, 'knn_random.json', { encoder: 'random', k: 200, T: 0.07, top1: 0.1234, top5: 0.5, n: 300, seconds: 30 });
  // Intermediate checkpoints of the cmc run: epochs 10 and 50 (layer 5 probes and kNN).
  for (const [e, step, p, k] of [
    [10, 4000, 0.3, 0.25],
    [50, 20000, 0.42, 0.38],
  ]) {
    write(
      dir,
      `probe_cmc_epoch${e}_layer5.json`,
      probeJson(5, p + 0.02, p, { encoder: `/gone/runs/cmc_run/ckpt_epoch_${e}.ckpt` }),
    );
    write(dir, `knn_cmc_epoch${e}.json`, {
      encoder: `/gone/runs/cmc_run/ckpt_epoch_${e}.ckpt`,
      top1: k,
      top5: 0.8,
      seconds: 20,
    });
    write(dir, `encoder_cmc_epoch${e}.json`, {
      encoder: `/gone/runs/cmc_run/ckpt_epoch_${e}.ckpt`,
      objective: 'cmc',
      arch: 'alexnet_small',
      epoch: e,
      step,
    });
  }
  write(dir, 'supervised.json', {
    run_dir: '/gone/runs/sup',
    checkpoint: '/gone/runs/sup/current.ckpt',
    test_top1: 0.6543,
    test_top5: 0.95,
    metrics: [
      { epoch: 1, step: 400, epoch_sec: 30, test_top1: 0.2 },
      { epoch: 2, step: 800, epoch_sec: 30, test_top1: 0.6543, test_top5: 0.95 },
    ],
  });
  // The CMC run folder, with the training-time kNN monitor.
  write(
    path.join(dir, 'cmc_run'),
    'metrics.jsonl',
    [
      { epoch: 0, step: 0, knn_top1: 0.12, knn_source: 'recompute' },
      { epoch: 10, step: 4000, loss: 9, epoch_sec: 70, knn_top1: 0.26, knn_source: 'recompute' },
      { epoch: 50, step: 20000, loss: 7, epoch_sec: 70, knn_top1: 0.37, knn_source: 'recompute' },
      { epoch: 100, step: 40000, loss: 6, epoch_sec: 70, knn_top1: 0.45, knn_source: 'recompute' },
    ]
      .map((r) => JSON.stringify(r))
      .join('\n') + '\n',
  );
  return dir;
}

/** The table row whose first cell starts with `label`, split into cells. */
function row(md: string, label: string): string[] {
  const line = md.split('\n').find((l) => l.startsWith(`| ${label}`));
  assert.ok(line, `a row for '${label}' in:\n${md}`);
  return line
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());
}

test('the table: per-layer top-1 / top-5, best layer, the layer chosen on held-out images, kNN, SGD steps, epochs, times, the supervised baseline', () => {
  const res = loadResults(fixture('full'));
  const r = buildReport(res);
  const md = r.markdown;
  const header = row(md, 'method');
  assert.deepEqual(header.slice(0, 10), [
    'method',
    '1 conv1',
    '2 conv2',
    '3 conv3',
    '4 conv4',
    '5 conv5',
    '6 fc6',
    '7 fc7',
    '8 emb',
    'best layer (top-1)',
  ]);
  assert.deepEqual(header.slice(10), [
    'layer chosen on held-out (top-1)',
    'kNN top-1',
    'SGD steps',
    'epochs',
    'train time',
    'eval time',
  ]);
  // selected_on 'test' -> the last epoch (never a test-chosen number by default).
  const cmc = row(md, 'cmc |');
  assert.equal(cmc[0], 'cmc');
  assert.equal(cmc[1], '30.00 / 60.00');
  assert.equal(cmc[5], '50.00 / 80.00');
  assert.equal(cmc[9], '5 conv5 (50.00)', 'best on the test split');
  assert.equal(cmc[10], '4 conv4 (45.00)', 'chosen on the held-out images');
  assert.equal(cmc[11], '45.67');
  assert.deepEqual(cmc.slice(12, 15), ['40,000', '100', '2h01m']);
  // eval time: 8 probes x 60 s + kNN 30 s + 8 x 2 selection probes x 50 s = 1310 s.
  assert.equal(cmc[15], '21m50s');
  const rnd = row(md, 'random (random init)');
  assert.equal(rnd[8], '10.00 / 40.00');
  assert.equal(rnd[9], '1 conv1 (20.00)');
  assert.equal(rnd[10], '—', 'no held-out figures');
  assert.equal(rnd[11], '12.34');
  assert.deepEqual(rnd.slice(12, 14), ['0', '0']);
  const sup = row(md, 'supervised (supervised encoder)');
  assert.equal(sup[9], '7 fc7 (63.00)');
  assert.equal(sup[12], '24,000');
  const e2e = row(md, 'supervised (end-to-end classifier)');
  assert.equal(e2e[9], '65.43 / 95.00');
  assert.equal(e2e[10], '—');
  assert.deepEqual(e2e.slice(12, 15), ['800', '2', '1m00s']);
  // Rows in order: CMC, supervised encoder, random init, end-to-end.
  const order = [
    '| cmc |',
    '| supervised (supervised encoder)',
    '| random (random init)',
    '| supervised (end-to-end',
  ].map((s) => md.indexOf(s));
  assert.deepEqual(
    [...order].sort((a, b) => a - b),
    order,
  );
  // Weight-decay selection and the intermediate checkpoints.
  assert.match(md, /\| cmc \| 5 conv5 \| 0: 30\.00, 0\.0001: 32\.00 \| 0\.0001 \|/);
  assert.match(md, /Held-out fraction of train: 0\.1\./);
  assert.match(md, /## cmc: accuracy against SGD steps/);
  assert.deepEqual(row(md, 'cmc epoch 10').slice(1, 4), ['10', '4,000', '25.00']);
  assert.deepEqual(row(md, 'cmc (final)').slice(1, 4), ['100', '40,000', '45.67']);
  assert.equal(r.notes.length, 0, r.notes.join('\n'));
  assert.doesNotMatch(md, /## Notes/);
});

test('a table mixing AlexNet and ResNet encoders names columns by number and each row by its own layers', () => {
  const dir = path.join(root, 'mixed_arch');
  for (const [m, arch, layers] of [
    ['mini', 'alexnet_mini', [5, 6]],
    ['r18', 'resnet18v1_small', [4, 6]],
  ] as const) {
    for (const l of layers) {
      write(
        dir,
        `probe_${m}_layer${l}.json`,
        probeJson(l, 0.5 + l / 100, 0.5 + l / 100, { encoder: `/gone/${m}.ckpt` }),
      );
      write(dir, `wd_${m}_layer${l}.json`, {
        layer: l,
        val_split: 0.1,
        chosen: 0,
        candidates: [{ weight_decay: 0, val_top1: l === layers[0] ? 0.6 : 0.5 }],
      });
    }
    write(dir, `encoder_${m}.json`, { encoder: `/gone/${m}.ckpt`, objective: 'cmc', arch, epoch: 5, step: 785 });
  }
  const md = buildReport(loadResults(dir)).markdown;
  assert.deepEqual(row(md, 'method').slice(1, 6), [
    'L4',
    'L5',
    'L6',
    'best layer (top-1)',
    'layer chosen on held-out (top-1)',
  ]);
  assert.deepEqual(row(md, 'mini |').slice(4, 6), ['6 fc6 (56.00)', '5 conv5 (55.00)']);
  assert.deepEqual(row(md, 'r18 |').slice(4, 6), ['6 pool (56.00)', '4 layer3 (54.00)']);
  assert.match(md, /\| r18 \| 4 layer3 \| 0: 60\.00 \| 0 \|/);
});

test('--metric: auto uses the held-out choice when there is one, else the last epoch; best and last on request', () => {
  const onTest = probeJson(5, 0.6, 0.5);
  const onVal = probeJson(5, 0.6, 0.5, { selectedOn: 'val' }); // written before the probe said 'held_out'
  const onHeldOut = probeJson(5, 0.6, 0.5, { selectedOn: 'held_out' });
  assert.equal(probeScore(onTest, 'auto').top1, 0.5);
  assert.equal(probeScore(onVal, 'auto').top1, 0.6);
  assert.equal(probeScore(onHeldOut, 'auto').top1, 0.6);
  assert.equal(probeScore(onTest, 'best').top1, 0.6);
  assert.equal(probeScore(onVal, 'last').top1, 0.5);
  const md = buildReport(loadResults(fixture('metric')), { metric: 'best' }).markdown;
  assert.equal(row(md, 'cmc |')[5], '55.00 / 85.00');
  assert.match(md, /best epoch chosen on the test split/);
  assert.equal(layerName(3, 'resnet50v2'), '3 layer2');
  assert.equal(layerName(3, 'my_net.json'), 'L3');
});

test('SVG plots: accuracy per layer (cmc, random, supervised, end-to-end level) and accuracy against SGD steps', () => {
  const r = buildReport(loadResults(fixture('plots')), {
    plotLinks: { 'accuracy_per_layer.svg': 'plots/accuracy_per_layer.svg' },
  });
  assert.deepEqual(Object.keys(r.plots).sort(), ['accuracy_per_layer.svg', 'accuracy_vs_steps.svg']);
  const perLayer = r.plots['accuracy_per_layer.svg'];
  for (const s of [
    '>cmc<',
    '>random (random init)<',
    '>supervised (supervised encoder)<',
    '>supervised (end-to-end)<',
    '>conv1<',
    '>fc7<',
    '>emb<',
    'linear probe top-1 per layer',
  ]) {
    assert.ok(perLayer.includes(s), `accuracy_per_layer.svg has ${s}`);
  }
  assert.equal((perLayer.match(/<path /g) ?? []).length, 4);
  assert.equal(
    (perLayer.match(/<circle /g) ?? []).length,
    24,
    'markers on the 3 probed methods x 8 layers, none on the level line',
  );
  const steps = r.plots['accuracy_vs_steps.svg'];
  for (const s of [
    '>kNN during training, cmc_run (recomputed)<',
    '>cmc kNN (cmc knn)<',
    '>cmc linear probe, 5 conv5<',
    '>random init: probe 5 conv5<',
    '>random init: kNN<',
    'SGD steps of CMC training',
  ]) {
    assert.ok(steps.includes(s), `accuracy_vs_steps.svg has ${s}`);
  }
  assert.equal((steps.match(/<path /g) ?? []).length, 5);
  assert.equal(
    (steps.match(/stroke-dasharray/g) ?? []).length,
    4,
    'the two random-init levels are dashed (line + legend)',
  );
  // The probe series: epochs 10, 50 and the final checkpoint (3 points); the x axis reaches 40000 steps.
  assert.ok(steps.includes('>40000<'));
  assert.match(r.markdown, /!\[accuracy per layer\]\(plots\/accuracy_per_layer\.svg\)/);
});

test('two methods of the same kind are drawn in different colours', () => {
  const dir = fixture('two_cmc');
  for (let l = 1; l <= 8; l++) write(dir, `probe_cmc20_layer${l}.json`, probeJson(l, 0.41, 0.4));
  for (let l = 1; l <= 8; l++)
    write(
      dir,
      `probe_supervised20_layer${l}.json`,
      probeJson(l, 0.61, 0.6, { encoder: '/gone/runs/sup20/current.ckpt' }),
    );
  write(dir, 'supervised_supervised20.json', {
    run_dir: '/gone/runs/sup20',
    checkpoint: '/gone/runs/sup20/current.ckpt',
    test_top1: 0.7,
    test_top5: 0.95,
    metrics: [{ epoch: 1, step: 400, test_top1: 0.7 }],
  });
  const perLayer = buildReport(loadResults(dir), {}).plots['accuracy_per_layer.svg'];
  const strokeOf = (name: string) => {
    const m = perLayer.match(new RegExp(`stroke="(#[0-9a-f]{6})"[^>]*/>\\s*<text[^>]*>${name}<`));
    assert.ok(m, `legend entry ${name}`);
    return m![1];
  };
  assert.notEqual(strokeOf('cmc'), strokeOf('cmc20'));
  // A supervised run's end-to-end line takes the colour of its encoder's probe line.
  assert.equal(strokeOf('supervised20 \\(end-to-end\\)'), strokeOf('supervised20 \\(supervised encoder\\)'));
  assert.notEqual(strokeOf('supervised20 \\(end-to-end\\)'), strokeOf('supervised \\(end-to-end\\)'));
});

test('the steps plot defaults to the CMC method trained in the --run folder', () => {
  const dir = path.join(root, 'which_run');
  for (const [m, run, p] of [
    ['cmc20', 'short_run', 0.4],
    ['cmc40', 'long_run', 0.5],
  ] as const) {
    for (const l of [3, 5])
      write(dir, `probe_${m}_layer${l}.json`, probeJson(l, p, p, { encoder: `/gone/runs/${run}/current.ckpt` }));
    write(dir, `knn_${m}.json`, { encoder: `/gone/runs/${run}/current.ckpt`, top1: p, top5: 0.9, seconds: 20 });
  }
  write(
    path.join(root, 'which_run_runs', 'long_run'),
    'metrics.jsonl',
    '{"epoch":0,"step":0,"knn_top1":0.2,"knn_source":"recompute"}\n{"epoch":40,"step":800,"epoch_sec":4,"knn_top1":0.45,"knn_source":"recompute"}\n',
  );
  const steps = buildReport(loadResults(dir, { runs: [path.join(root, 'which_run_runs', 'long_run')] })).plots[
    'accuracy_vs_steps.svg'
  ];
  assert.ok(steps.includes('cmc40 kNN (cmc knn)'), steps);
  assert.ok(!steps.includes('cmc20'));
});

test('SGD steps come from the checkpoint header, else from a run folder of the same name; unknown ones are noted', () => {
  const dir = path.join(root, 'steps');
  const ckpt = path.join(dir, 'runs', 'myrun', 'ckpt_epoch_3.ckpt');
  writeCheckpoint(ckpt, {
    header: {
      format: 'cmc-train-checkpoint',
      objective: 'supervised',
      epoch: 3,
      step: 120,
      spec: { arch: 'alexnet_mini', imageSize: 32 },
      config: { epochs: 9 },
      metrics: [1, 2, 3].map((e) => ({ epoch: e, epoch_sec: 5 })),
    },
    tensors: { 'model/w': { shape: [2], data: new Float32Array([1, 2]) } },
  });
  assert.deepEqual(checkpointInfo(ckpt), {
    encoder: ckpt,
    objective: 'supervised',
    arch: 'alexnet_mini',
    image_size: 32,
    epoch: 3,
    step: 120,
    train_seconds: 15,
    epochs_planned: 9,
  });
  assert.equal(checkpointInfo(path.join(dir, 'nope.ckpt')), null);
  const res = path.join(dir, 'results');
  write(res, 'probe_sup_layer5.json', probeJson(5, 0.5, 0.5, { encoder: ckpt }));
  // Checkpoint gone, but the run folder (given with --run) has its epoch.
  write(
    res,
    'probe_cmc_epoch2_layer5.json',
    probeJson(5, 0.3, 0.3, { encoder: '/gone/runs/other_run/ckpt_epoch_2.ckpt' }),
  );
  write(
    path.join(dir, 'other_run'),
    'metrics.jsonl',
    '{"epoch":1,"step":50,"epoch_sec":4}\n{"epoch":2,"step":100,"epoch_sec":4,"knn_top1":0.3,"knn_source":"memory"}\n',
  );
  // Nothing known.
  write(res, 'knn_mystery.json', { encoder: '/gone/x.ckpt', top1: 0.2 });
  const loaded = loadResults(res, { runs: [path.join(dir, 'other_run')] });
  assert.equal(loaded.evaluated.get('sup')!.encoder!.step, 120);
  assert.equal(loaded.evaluated.get('sup')!.encoder!.objective, 'supervised');
  assert.deepEqual(loaded.evaluated.get('cmc_epoch2')!.encoder, {
    encoder: '/gone/runs/other_run/ckpt_epoch_2.ckpt',
    objective: 'cmc',
    epoch: 2,
    step: 100,
    train_seconds: 8,
  });
  const r = buildReport(loaded);
  assert.ok(
    r.notes.some((n) => /mystery: SGD steps unknown/.test(n)),
    r.notes.join('\n'),
  );
  assert.match(r.markdown, /\| sup \(supervised encoder\) \| 50\.00 \/ 80\.00 \|/);
  assert.ok(r.plots['accuracy_vs_steps.svg'].includes('(memory bank)'));
  assert.ok(r.notes.some((n) => /no random-init results/.test(n)));
});

test('missing and broken inputs: clear errors, or notes naming the files', () => {
  assert.throws(() => loadResults(path.join(root, 'does-not-exist')), /results folder .*does-not-exist does not exist/);
  const empty = path.join(root, 'empty');
  fs.mkdirSync(empty, { recursive: true });
  write(empty, 'notes.txt', 'hello');
  assert.throws(
    () => loadResults(empty),
    /no result files found\. Expected probe_<method>\[_epoch<E>\]_layer<L>\.json/,
  );
  assert.throws(
    () => loadResults(fixture('norun'), { runs: [path.join(root, 'no-such-run')] }),
    /run folder .*no-such-run: no metrics\.jsonl there/,
  );

  const dir = path.join(root, 'partial');
  for (const l of [1, 2, 3]) write(dir, `probe_cmc_layer${l}.json`, probeJson(l, 0.4, 0.4));
  write(dir, 'probe_random_layer2.json', probeJson(2, 0.1, 0.1, { encoder: 'random' }));
  write(dir, 'probe_cmc_layer4.json', '{"encoder": "x", "best": {"epo');
  write(dir, 'probe_cmc_layer5.json', { hello: 1 });
  write(dir, 'knn_random.json', { top5: 0.3 });
  // Log lines before the JSON (stdout and stderr captured together) are tolerated.
  write(dir, 'probe_cmc_layer6.json', `[probe] epoch 1/1\n${JSON.stringify(probeJson(6, 0.2, 0.2))}\n`);
  const r = buildReport(loadResults(dir));
  const notes = r.notes.join('\n');
  assert.match(notes, /skipped probe_cmc_layer4\.json: not valid JSON/);
  assert.match(notes, /skipped probe_cmc_layer5\.json: not a `cmc probe --json` result \(no best\.top1\)/);
  assert.match(notes, /skipped knn_random\.json: not a `cmc knn --json` result/);
  assert.match(
    notes,
    /random: no probe for layers 1, 3, 6 \(missing probe_random_layer1\.json, probe_random_layer3\.json, probe_random_layer6\.json\)/,
  );
  assert.match(r.markdown, /## Notes/);
  assert.deepEqual(row(r.markdown, 'random (random init)').slice(1, 5), ['—', '10.00 / 40.00', '—', '—']);
  assert.equal(row(r.markdown, 'cmc |')[4], '20.00 / 50.00');
});

test('the CLI writes the markdown and the plots, with image links relative to the markdown', async () => {
  const dir = fixture('cli');
  const out = path.join(root, 'cli-out', 'REPORT.md');
  const plots = path.join(root, 'cli-out', 'figs');
  const program = new Command('cmc').exitOverride();
  addReportCommand(program);
  const errs: string[] = [];
  const err = console.error;
  console.error = (...a: unknown[]) => errs.push(a.join(' '));
  try {
    await program.parseAsync([
      'node',
      'cmc',
      'report',
      dir,
      '--out',
      out,
      '--plots',
      plots,
      '--title',
      'imagenette64',
      '--layer',
      '5',
    ]);
  } finally {
    console.error = err;
  }
  const md = fs.readFileSync(out, 'utf8');
  assert.match(md, /^# Results: imagenette64/);
  assert.match(md, /!\[accuracy vs steps\]\(figs\/accuracy_vs_steps\.svg\)/);
  for (const f of ['accuracy_per_layer.svg', 'accuracy_vs_steps.svg'])
    assert.match(fs.readFileSync(path.join(plots, f), 'utf8'), /^<svg /);
  assert.ok(errs.some((l) => l.includes(`wrote ${out}`)));
});

test('train/results/eval_protocol.sh checks its arguments before running anything', () => {
  const sh = path.resolve(import.meta.dirname, '../../train/results/eval_protocol.sh');
  const run = (...args: string[]) => spawnSync('bash', [sh, ...args], { encoding: 'utf8' });
  const help = run('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /weight-decay selection/);
  assert.match(run('--out', root).stderr, /--data <folder> is required/);
  assert.match(run('--data', '/no/such/data', '--out', root).stderr, /data folder \/no\/such\/data does not exist/);
  assert.match(
    run('--data', root, '--out', root).stderr,
    /give --checkpoint <ckpt> or --random <model> --image_size <px>/,
  );
  assert.match(run('--data', root, '--out', root, '--random', 'alexnet_small').stderr, /--random needs --image_size/);
  assert.match(
    run('--data', root, '--out', root, '--checkpoint', '/no/x.ckpt').stderr,
    /checkpoint \/no\/x\.ckpt does not exist/,
  );
  assert.match(
    run('--data', root, '--out', root, '--random', 'alexnet_small', '--image_size', '32', '--val_split', '0').stderr,
    /needs --val_split > 0/,
  );
  assert.equal(run('--bogus').status, 2);
  // The checkpoint is read through train/results/results.ts (a path the script names): a file that is not a
  // checkpoint gets the script's own message, not a stack trace of a missing function.
  const junk = path.join(root, 'junk.ckpt');
  fs.writeFileSync(junk, 'not a checkpoint');
  const r = run('--data', root, '--out', path.join(root, 'out_junk'), '--checkpoint', junk);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /junk\.ckpt is not a readable cmc checkpoint/);
  assert.doesNotMatch(r.stderr, /is not a function/);
});
