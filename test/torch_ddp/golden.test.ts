/**
 * The PyTorch trainer's memory-bank step (torch_ddp/cmc_ddp/nce.py) on the golden inputs: scores, Z, losses,
 * gradients w.r.t. the embeddings and the memories after two steps, NCE and softmax, within the golden
 * tolerance (1e-5) — the same checks test/loss/memory_bank.test.ts makes of the TypeScript bank — and the
 * trainer's RGB -> Lab (color.py) and step schedule (step.py lr_at).
 */
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assertClose, loadGolden } from '../helpers/golden.ts';
import { NO_TORCH, pythonWithTorch, runPython } from '../helpers/python_torch.ts';

const script = fileURLToPath(new URL('../../torch_ddp/checks/golden_step.py', import.meta.url));
const fixture = fileURLToPath(new URL('../fixtures/golden.json', import.meta.url));

test('PyTorch step matches the golden memory-bank values (NCE and softmax, two steps), Lab and lr schedule', (t) => {
  const py = pythonWithTorch();
  if (!py) return t.skip(NO_TORCH);
  const golden = loadGolden();
  const got = JSON.parse(runPython(py, [script, fixture]));
  for (const mode of ['nce', 'softmax'] as const) {
    for (const s of ['step1', 'step2'] as const) {
      const g = golden[mode][s];
      const r = got[mode][s];
      const at = `${mode} ${s}`;
      assertClose(r.out_l.flat(), g.out_l, 'rel', `${at} out_l`);
      assertClose(r.out_ab.flat(), g.out_ab, 'rel', `${at} out_ab`);
      assertClose(r.loss_l, g.loss_l, 'rel', `${at} loss_l`);
      assertClose(r.loss_ab, g.loss_ab, 'rel', `${at} loss_ab`);
      assertClose(r.grad_l.flat(), g.grad_l, 'unit', `${at} grad_l`);
      assertClose(r.grad_ab.flat(), g.grad_ab, 'unit', `${at} grad_ab`);
      assertClose(r.memory_l_after.flat(), g.memory_l_after, 'unit', `${at} memory_l_after`);
      assertClose(r.memory_ab_after.flat(), g.memory_ab_after, 'unit', `${at} memory_ab_after`);
      if (mode === 'nce') {
        assertClose(r.Z_l, g.Z_l, 'rel', `${at} Z_l`);
        assertClose(r.Z_ab, g.Z_ab, 'rel', `${at} Z_ab`);
      }
    }
  }
  // absolute 1e-9 on Lab in [0, 100] (skimage float64); float32 rounding (~1e-7) on the normalised input
  assertClose(got.lab.flat(), golden.rgb2lab.lab, 'unit', 'rgb2lab', 1e-9);
  assertClose(got.lab_normalized.flat(), golden.rgb2lab.lab_normalized, 'unit', 'normalised Lab', 1e-6);
  assertClose(got.lr, golden.lr_schedule.pretrain.lr, 'rel', 'lr schedule', 1e-12);
});
