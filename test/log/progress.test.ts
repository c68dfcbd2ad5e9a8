import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Progress, RunEstimate } from '../../train/log/progress.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function capture(): { stream: NodeJS.WriteStream; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write: (c, _e, cb) => (lines.push(...String(c).split('\n').filter(Boolean)), cb()),
  }) as unknown as NodeJS.WriteStream;
  return { stream, lines };
}

test('progress off a terminal: a line on the first update, then every `every` updates or after `everySec` of silence', async () => {
  const { stream, lines } = capture();
  const p = new Progress(1000, 'epoch 1/1', { every: 10, everySec: 0.2, stream });
  p.tick(1);
  assert.equal(lines.length, 1, 'the first update prints at once');
  for (let i = 2; i <= 9; i++) p.tick(1);
  assert.equal(lines.length, 1);
  p.tick(1);
  assert.equal(lines.length, 2, 'the 10th update prints');
  await sleep(250);
  p.tick(1);
  assert.equal(lines.length, 3, 'a slow update prints after everySec');
  assert.match(lines[2], /^epoch 1\/1 11\/1000 [\d.]+ img\/s ETA /);
});

test('the run estimate: one line after the first steps, per step / epoch / run, and a pointer when it would take days', async () => {
  const logs: string[] = [];
  const e = new RunEstimate(100_000, 300, 'wasm', (l) => logs.push(l));
  for (let i = 0; i < 6; i++) {
    await sleep(5);
    e.step();
  }
  assert.equal(logs.length, 1, logs.join('\n'));
  assert.match(
    logs[0],
    /^\[cmc\] estimate from the first 4 steps: \d+ ms per step, ~\S+ per epoch, ~\S+ for 300 epochs; that is [\d.]+ days on wasm: for a first run try --model alexnet_mini/,
  );
  const short: string[] = [];
  const s = new RunEstimate(2, 1, 'cpu', (l) => short.push(l));
  s.step();
  s.step();
  assert.equal(short.length, 1);
  assert.doesNotMatch(short[0], /days/);
});
