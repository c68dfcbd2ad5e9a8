// The heartbeat until the first step finishes (train/trainer/first_step.ts): the decision, not the timer.
import test from 'node:test';
import assert from 'node:assert/strict';
import { firstStepHeartbeat, firstStepNotice, HEARTBEAT_SEC } from '../../train/trainer/first_step.ts';

test('a heartbeat line only once ~10 s have passed without a finished step', () => {
  const what = 'alexnet, batch 128 at 224 px on wasm';
  assert.equal(HEARTBEAT_SEC, 10);
  assert.equal(firstStepNotice(0, 0, what), null);
  assert.equal(firstStepNotice(9.9, 0, what), null, 'too early');
  assert.equal(firstStepNotice(10, 0, what), `[cmc] still on the first step after 10 s (${what})`);
  assert.equal(firstStepNotice(30.4, 0, what), `[cmc] still on the first step after 30 s (${what})`);
  assert.equal(firstStepNotice(30, 1, what), null, 'a step has finished');
  assert.equal(firstStepNotice(NaN, 0, what), null);
});

test('the heartbeat keeps no process alive, and says nothing after the first step', () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  const lines: string[] = [];
  const beat = firstStepHeartbeat('x', (l) => lines.push(l));
  assert.equal(timers(), before, "its timer is unref'd");
  beat.step();
  beat.step();
  beat.stop();
  assert.deepEqual(lines, []);
});
