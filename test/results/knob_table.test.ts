/**
 * train/results/knob_table.sh: every knob's training command differs from the base recipe's in exactly the
 * settings it names (a knob table that changed two things at once would measure neither), and its evaluation
 * goes to the method name the report shows. Checked on the script's --dry_run output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const sh = path.resolve(import.meta.dirname, '../../train/results/knob_table.sh');

function dryRun(...args: string[]): Map<string, string[][]> {
  const r = spawnSync('bash', [sh, '--data', '/data/x', '--out', '/out/y', '--dry_run', ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const byKnob = new Map<string, string[][]>();
  let cur = '';
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    if (line.startsWith('# ')) byKnob.set((cur = line.slice(2)), []);
    // printf %q escapes commas; the flags here hold no spaces.
    else byKnob.get(cur)!.push(line.trim().replace(/\\,/g, ',').split(/\s+/));
  }
  return byKnob;
}

/** `cmc train` flags as the CLI reads them: a later value overrides an earlier one; a bare flag is 'true'. */
function flags(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  const start = argv.indexOf('train') + 1;
  for (let i = start; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) m.set(a, 'true');
    else m.set(a, argv[++i]);
  }
  return m;
}

test('knob_table.sh: each knob changes exactly its own settings from the base recipe', () => {
  const runs = dryRun();
  const base = flags(runs.get('base')![0]);
  assert.equal(base.get('--softmax'), 'true');
  assert.equal(base.get('--model'), 'alexnet_mini');
  assert.equal(base.get('--epochs'), '20');
  const expected: Record<string, Record<string, string | undefined>> = {
    base_seed1: { '--seed': '1' },
    ycbcr: { '--view': 'YCbCr' },
    nce: { '--softmax': undefined, '--nce_t': '0.07' },
    t007: { '--nce_t': '0.07' },
    t02: { '--nce_t': '0.2' },
    cosine: { '--cosine': 'true' },
    crop008: { '--crop_low': '0.08' },
    small: { '--model': 'alexnet_small' },
    mini_5ep: { '--epochs': '5', '--lr_decay_epochs': '4' },
    r18_5ep: { '--model': 'resnet18v1_small', '--epochs': '5', '--lr_decay_epochs': '4' },
  };
  assert.deepEqual([...runs.keys()].sort(), ['base', ...Object.keys(expected)].sort());
  for (const [name, changes] of Object.entries(expected)) {
    const [train, evaluate] = runs.get(name)!;
    const f = flags(train);
    const keys = new Set([...base.keys(), ...f.keys()]);
    const diff: Record<string, string | undefined> = {};
    for (const k of keys) if (k !== '--name' && base.get(k) !== f.get(k)) diff[k] = f.get(k);
    assert.deepEqual(diff, changes, `${name}: changed settings`);
    assert.equal(f.get('--name'), `knob_${name}`);
    assert.equal(f.get('--data_folder'), '/data/x');
    // The evaluation reads this run's checkpoint under the knob's name.
    assert.equal(evaluate[evaluate.indexOf('--checkpoint') + 1], `runs/knob_${name}/current.ckpt`);
    assert.equal(evaluate[evaluate.indexOf('--name') + 1], name);
    assert.equal(evaluate[evaluate.indexOf('--out') + 1], '/out/y');
    assert.equal(evaluate[evaluate.indexOf('--layers') + 1], name === 'r18_5ep' ? '4,6' : '5,6');
    assert.deepEqual(
      evaluate.slice(evaluate.indexOf('--') + 1),
      name === 'r18_5ep' ? ['--workers', '1', '--feature_batch', '32'] : ['--workers', '1'],
    );
  }
});

test('knob_table.sh: --only picks knobs, an unknown one or a missing --data is refused', () => {
  assert.deepEqual([...dryRun('--only', 'base,cosine').keys()], ['base', 'cosine']);
  const bad = spawnSync('bash', [sh, '--data', '/d', '--out', '/o', '--only', 'nope', '--dry_run'], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--only named no knob/);
  const noData = spawnSync('bash', [sh, '--out', '/o'], { encoding: 'utf8' });
  assert.equal(noData.status, 2);
  assert.match(noData.stderr, /--data <folder> is required/);
});
