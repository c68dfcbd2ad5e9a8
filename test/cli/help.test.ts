/**
 * The help texts' words: "seed" only ever means a random seed (upstream's code is "upstream", defined once in
 * `cmc --help`), and every abbreviation of the training output is explained in `cmc train --help`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram } from '../../bin/cli.ts';

/**
 * The help of `cmd` as printed, including the text added with addHelpText, without its list of subcommands
 * (their descriptions are in their own help).
 */
function helpOf(cmd: Command): string {
  let out = '';
  cmd.configureHelp({ visibleCommands: () => [] });
  cmd.configureOutput({ writeOut: (s) => void (out += s), writeErr: (s) => void (out += s) });
  cmd.outputHelp();
  return out;
}

/** Every command's help, keyed by its path ('cmc', 'cmc train', 'cmc bench data', ...). */
function allHelp(): Map<string, string> {
  const help = new Map<string, string>();
  const walk = (cmd: Command, name: string) => {
    help.set(name, helpOf(cmd));
    for (const sub of cmd.commands) walk(sub, `${name} ${sub.name()}`);
  };
  walk(buildProgram(), 'cmc');
  return help;
}

/** "seed" naming upstream's code rather than a random seed: "the seed's", "as the seed", "seed pooling", ... */
const SEED_AS_UPSTREAM =
  /\b(?:the seed(?:'s)?|as the seed|seed(?:'s)? (?:default|pooling|behaviou?r|code|protocol|choice))\b|\(seed[,)]|seed:/i;

/** Lines of `text` that use "seed" for upstream's code. */
function seedMisuses(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => SEED_AS_UPSTREAM.test(l));
}

test('the pattern catches the ways "seed" was used for upstream, and not the random seed', () => {
  for (const bad of [
    "CMC pre-training (the seed's train_CMC.py flags)",
    'hold out a fraction (0 = on the test split, as the seed)',
    'memory bank (seed); batch',
    'seed pooling: AlexNet adaptive max',
    "'best' (seed, may be chosen on test)",
    'SGD learning rate (seed: 0.1 for AlexNet)',
  ])
    assert.deepEqual(seedMisuses(bad), [bad], bad);
  for (const good of [
    '--seed <n>  random seed (initialisation, sampling, augmentation) (default: 0)',
    'per class and seeded by --seed',
    'seed (random-init encoder, head init, shuffling, augmentation, held-out split)',
    'seed             only ever a random seed (--seed)',
  ])
    assert.deepEqual(seedMisuses(good), [], good);
});

test('no help text uses "seed" for upstream\'s code', () => {
  const bad: string[] = [];
  for (const [name, text] of allHelp()) {
    for (const l of seedMisuses(text)) bad.push(`${name}: ${l}`);
  }
  assert.deepEqual(bad, []);
});

test('cmc --help defines upstream, the test split and the held-out split', () => {
  const help = allHelp().get('cmc')!;
  assert.match(help, /upstream\s+HobbitLong\/CMC/);
  assert.match(help, /test split\s+a data set's labelled test images/);
  assert.match(help, /held-out split\s+a fraction of the training images/);
});

test('cmc train --help explains every abbreviation of the training output', () => {
  const help = allHelp().get('cmc train')!;
  const epilogue = help.slice(help.indexOf('Output (stderr)'));
  assert.ok(epilogue.length < help.length, 'no output section in cmc train --help');
  // The entries' left column ("p_l, p_ab   the probability ..."), one per line or alone on its line.
  const keys = epilogue
    .split('\n')
    .map((l) => /^ {2}(\S.*?)(?:\s{2,}\S.*)?$/.exec(l)?.[1])
    .filter((k): k is string => k !== undefined && !k.startsWith('epoch 1/8 160'));
  // The words train/trainer/train.ts and train/log/progress.ts print.
  for (const word of [
    'epoch 1/8',
    '160/180',
    'img/s',
    'ETA',
    'loss (avg)',
    'p_l',
    'p_ab',
    'lr',
    'K=',
    'Z for L>ab',
    '[knn]',
    'top-1',
    'top-5',
    'recomputed',
    'estimate',
    '[data]',
  ])
    assert.ok(
      keys.some((k) => k.includes(word)),
      `'${word}' is not explained in cmc train --help:\n${keys.join('\n')}`,
    );
  assert.match(epilogue, /kNN/);
  assert.match(epilogue, /softmax-CE/);
});
