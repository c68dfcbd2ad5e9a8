import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CMC = fileURLToPath(new URL('../../bin/cmc.js', import.meta.url));

test('a flag typo prints the suggestion and a pointer to --help, not the whole help', () => {
  const r = spawnSync(process.execPath, [CMC, 'train', '--learning_rat', '0.1'], { encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /unknown option '--learning_rat'/);
  assert.match(r.stderr, /Did you mean --learning_rate\?/);
  assert.match(r.stderr, /cmc train --help/);
  assert.ok(!r.stderr.includes('Usage:'), `the full help was printed:\n${r.stderr}`);
  assert.ok(r.stderr.trim().split('\n').length <= 4, r.stderr);
});
