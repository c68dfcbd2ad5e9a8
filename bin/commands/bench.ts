import { Command, Option } from 'commander';
import { BACKENDS, type BackendName } from '../../train/engine/backend.ts';
import { runTrainStepBench } from '../../bench/train_step.ts';
import { runProfile } from '../../bench/profile.ts';
import { openSource, writeSyntheticDatasetIfNeeded } from '../../bench/data_source.ts';
import { throughput } from '../../train/data/loader.ts';
import { addServeBenchCommand } from './serve.ts';
import { runMemoryBankBench } from '../../bench/memory_bank.ts';
import { int } from '../options.ts';

/** One memory-bank scoring path on both sides of a --torch comparison, so the ratio compares engines. */
const scoringOption = () =>
  new Option(
    '--scoring <path>',
    "memory-bank scoring (PyTorch takes the same with --torch): 'bank' = one B×N product, then the sampled columns; 'gather' = B·(K+1) rows, the original code's; 'auto' = bank when N <= B·(K+1)",
  )
    .choices(['auto', 'bank', 'gather'])
    .default('auto');

export function addBenchCommand(program: Command): void {
  const bench = program.command('bench').description('benchmarks (printed figures, never pass/fail)');
  addServeBenchCommand(bench);
  bench
    .command('train-step')
    .description('time one full CMC training step (both encoders fwd+bwd, memory bank, SGD), median after warm-up')
    .option('--model <arch>', 'encoder architecture (alexnet, alexnet_small, resnet50v1, ...)', 'alexnet_small')
    .option('--image_size <px>', 'input resolution', int, 64)
    .option('--batch_size <n>', 'batch size', int, 128)
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKENDS).default('auto'))
    .option('--nce_k <n>', 'negatives per positive', int, 4096)
    .option('--n_data <n>', 'memory bank rows (dataset size)', int, 5000)
    .option('--feat_dim <n>', 'embedding size', int, 128)
    .addOption(scoringOption())
    .option('--softmax', 'softmax-CE loss instead of NCE', false)
    .option('--warmup <n>', 'untimed warm-up steps', int, 2)
    .option('--steps <n>', 'timed steps (median reported)', int, 8)
    .option(
      '--compare_unfused',
      'also time each step with the fused kernels off, alternately (CMC_FUSED_KERNELS=0 for all steps)',
      false,
    )
    .option('--torch', 'also run the PyTorch reference (bench/torch_train_step.py) side by side', false)
    .option('--torch_threads <n>', 'PyTorch threads (default: the threads our backend uses)', int)
    .option('--python <path>', 'python with torch for --torch', '/usr/bin/python3')
    .option('--json', 'print the result as JSON', false)
    .action(async (o) => {
      const r = await runTrainStepBench({
        model: o.model,
        imageSize: o.image_size,
        batchSize: o.batch_size,
        backend: o.backend as BackendName,
        nceK: o.nce_k,
        nData: o.n_data,
        featDim: o.feat_dim,
        softmax: o.softmax,
        scoring: o.scoring,
        warmup: o.warmup,
        steps: o.steps,
        compareUnfused: o.compare_unfused,
        torch: o.torch,
        torchThreads: o.torch_threads,
        python: o.python,
      });
      if (o.json) {
        console.log(JSON.stringify(r));
        return;
      }
      console.log(
        `${r.arch} @${r.image_size}px B=${r.batch_size} K=${r.nce_k} (${r.scoring} scoring) on ${r.backend} (${r.device}, ${r.threads} thread(s))`,
      );
      console.log(
        `  ${r.ms_per_step.toFixed(1)} ms/step  ${r.images_per_s.toFixed(1)} images/s  ${r.effective_gflops.toFixed(1)} effective GFLOPS`,
      );
      console.log(`  ${r.readbacks_per_step} read(s) back from the backend per step`);
      if (r.unfused_ms_per_step !== undefined) {
        console.log(
          `  fusion off (alternate steps): ${r.unfused_ms_per_step.toFixed(1)} ms/step; step by step ${r.unfused_ratio!.toFixed(2)}x the fused step (median)`,
        );
      }
      console.log(
        `  peak RSS ${r.peak_rss_mb.toFixed(0)} MiB, peak tensors ${r.peak_tensor_mb.toFixed(0)} MiB, ${r.param_count} params`,
      );
      if (r.torch) {
        if (typeof r.torch.ms_per_step === 'number') {
          console.log(
            `  PyTorch ${r.torch.version} (${r.torch.threads} thread(s), ${String(r.torch.scoring)} scoring): ${r.torch.ms_per_step.toFixed(1)} ms/step`,
          );
          console.log(`  ratio ours/PyTorch: ${r.ratio_vs_torch!.toFixed(2)}x`);
        } else console.log(`  PyTorch: ${String(r.torch.error)}`);
      }
    });

  bench
    .command('profile')
    .description('per-kernel time of a training step (where the time goes)')
    .option('--model <arch>', 'encoder architecture', 'alexnet_small')
    .option('--image_size <px>', 'input resolution', int, 64)
    .option('--batch_size <n>', 'batch size', int, 128)
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKENDS).default('auto'))
    .option('--nce_k <n>', 'negatives per positive', int, 4096)
    .option('--n_data <n>', 'memory bank rows', int, 5000)
    .option('--steps <n>', 'profiled steps (averaged)', int, 2)
    .option('--top <n>', 'rows to print', int, 25)
    .option('--json', 'print the result as JSON', false)
    .action(async (o) => {
      const r = await runProfile({
        model: o.model,
        imageSize: o.image_size,
        batchSize: o.batch_size,
        backend: o.backend as BackendName,
        nceK: o.nce_k,
        nData: o.n_data,
        steps: o.steps,
      });
      if (o.json) return void console.log(JSON.stringify(r));
      console.log(`step ${r.step_ms.toFixed(0)} ms (profiled), kernels ${r.kernel_ms.toFixed(0)} ms`);
      console.log(
        'kernel'.padEnd(26) +
          'calls'.padStart(7) +
          'ms/step'.padStart(10) +
          'share'.padStart(8) +
          '  slowest call (ms, input shapes)',
      );
      for (const k of r.rows.slice(0, o.top)) {
        console.log(
          k.kernel.padEnd(26) +
            k.calls.toFixed(0).padStart(7) +
            k.total_ms.toFixed(1).padStart(10) +
            `${(100 * k.share).toFixed(1)}%`.padStart(8) +
            `  ${k.worst_ms.toFixed(1)} ${k.worst_shapes}`,
        );
      }
    });

  bench
    .command('data')
    .description('data-loader throughput: decode + RandomResizedCrop + flip + Lab, images/s per worker count')
    .option('--data_folder <path>', 'dataset (default: generated 64 px images)', '')
    .option('--image_size <px>', 'crop size', int, 64)
    .option('--batch_size <n>', 'batch size', int, 128)
    .option('--workers <list>', 'worker counts to compare', '0,1,2')
    .option('--batches <n>', 'timed batches per worker count', int, 20)
    .option('--json', 'print the result as JSON', false)
    .action(async (o) => {
      const dir = o.data_folder || writeSyntheticDatasetIfNeeded(o.image_size);
      const source = await openSource('auto', dir, 'train');
      const rows = [];
      for (const w of String(o.workers).split(',').map(Number)) {
        const r = await throughput(source, {
          workers: w,
          batchSize: o.batch_size,
          batches: o.batches,
          transform: { mode: 'train', size: o.image_size, view: 'Lab', cropLow: 0.2 },
        });
        rows.push(r);
        if (!o.json)
          console.log(
            `workers ${w}: ${r.imagesPerSec.toFixed(0)} images/s (${r.images} images in ${r.seconds.toFixed(2)} s; start-up ${r.startupSeconds.toFixed(2)} s)`,
          );
      }
      source.close();
      if (o.json) console.log(JSON.stringify({ data: dir, image_size: o.image_size, rows }));
    });

  bench
    .command('memory-bank')
    .description(
      'the memory-bank part of a step alone (scores, loss, gradient w.r.t. the embeddings, update), optionally next to PyTorch',
    )
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKENDS).default('auto'))
    .option('--batch_size <n>', 'batch size', int, 128)
    .option('--nce_k <n>', 'negatives per positive', int, 16384)
    .option('--feat_dim <n>', 'embedding size', int, 128)
    .option('--n_data <n>', 'memory-bank rows', int, 50000)
    .option('--softmax', 'softmax-CE instead of NCE', false)
    .addOption(scoringOption())
    .option('--warmup <n>', 'untimed steps', int, 2)
    .option('--steps <n>', 'timed steps (median reported)', int, 5)
    .option('--torch', 'also run the PyTorch reference', false)
    .option('--torch_threads <n>', 'PyTorch threads (default: ours)', int)
    .option('--python <path>', 'python with torch', '/usr/bin/python3')
    .option('--json', 'print the result as JSON', false)
    .action(async (o) => {
      const r = await runMemoryBankBench({
        backend: o.backend as BackendName,
        batchSize: o.batch_size,
        nceK: o.nce_k,
        featDim: o.feat_dim,
        nData: o.n_data,
        softmax: o.softmax,
        scoring: o.scoring,
        warmup: o.warmup,
        steps: o.steps,
        torch: o.torch,
        python: o.python,
        torchThreads: o.torch_threads,
      });
      if (o.json) return void console.log(JSON.stringify(r));
      console.log(
        `memory bank B=${r.batch_size} K=${r.nce_k} D=${r.feat_dim} N=${r.n_data} (${r.path} path) on ${r.backend} (${r.device}): ${(r.memory_bank_ms as number).toFixed(1)} ms`,
      );
      const t = r.torch as { memory_bank_ms?: number; version?: string; threads?: number; error?: string } | undefined;
      if (t)
        console.log(
          t.memory_bank_ms !== undefined
            ? `PyTorch ${t.version} (${t.threads} threads): ${t.memory_bank_ms.toFixed(1)} ms; ratio ours/PyTorch ${(r.ratio_vs_torch as number).toFixed(2)}x`
            : `PyTorch: ${t.error}`,
        );
    });
}
