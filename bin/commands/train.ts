import { Command, Option } from 'commander';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../train/trainer/config.ts';
import { train } from '../../train/trainer/train.ts';
import { SYNTHETIC_CLASSES, writeSyntheticDataset } from '../../train/data/synthetic.ts';
import { BACKENDS } from '../../train/engine/backend.ts';
import { int, intList, num, repeatableList, viewList } from '../options.ts';
import { OBJECTIVES } from '../../train/trainer/objective.ts';
import { VIEW_NAMES } from '../../core/preprocess/views.ts';

const D = TRAIN_DEFAULTS;

/**
 * What the words and abbreviations of the training output mean (train/trainer/train.ts and
 * train/log/progress.ts print them); test/cli/help.test.ts checks that each one is here.
 */
const OUTPUT_HELP = `
Output (stderr), e.g.
  epoch 1/8 160/180 53.3 img/s ETA 0s  loss 12.201 (avg 11.676)  p_l 1.42e-3  p_ab 1.96e-3  lr 0.03
  epoch 1/8        the epoch under way, of --epochs
  160/180          training images done in this epoch, of all
  img/s, ETA       images per second so far; estimated time left in this epoch
  loss (avg)       the loss of the last batch (NCE, or softmax-CE with --softmax or --negatives batch), and
                   its mean over the epoch so far
  p_l, p_ab        the probability the L (ab) embedding gives its positive, averaged over the batch: the NCE
                   output of the true pair, or its softmax probability with --softmax (upstream logs it as
                   "prob"); with more views, [L>ab 1.23 ...] is each pair's loss (anchor view > other view)
  lr               the learning rate of this epoch (--learning_rate, decayed at --lr_decay_epochs)
  K=64             negatives per positive (--nce_k)
  Z for L>ab       the NCE normalisation constant of a pair, estimated once on the first batch
                   (upstream NCE/NCEAverage.py)
  [knn] top-1, top-5
                   weighted kNN (--knn_freq, --knn_k neighbours, temperature --nce_t): the share of test-split
                   images whose true class is the first (among the first five) of the vote; epoch 0 is the
                   encoder at random init, the baseline to beat
  recomputed       kNN with the training images' features computed afresh by the encoders
                   (--knn_source recompute); "memory bank" reuses the bank's rows instead (fast, lags)
  estimate         the time per step, per epoch and for the run, measured on the first steps
  [data]           a warning about the data (an unreadable image is skipped and named)

Files: <model_path>/<name>/ holds current.ckpt (every epoch), ckpt_epoch_N.ckpt (every --save_freq epochs
and the last) and metrics.jsonl; TensorBoard files go to <tb_path>/<name>/. The defaults (runs/ in the
current folder) are git-ignored in the repository; --demo writes under the temp folder. Ctrl+C prints the
last checkpoint and the exact --resume command.
`;

export function addTrainCommand(program: Command): void {
  program
    .command('train')
    .description(
      "CMC pre-training with upstream's flags and defaults (train_CMC.py); checkpoints every epoch, --resume to continue",
    )
    .option(
      '--data_folder <path>',
      'dataset: ImageFolder tree, CIFAR-10 / STL-10 binaries, or the raw uint8 layout',
      D.data_folder,
    )
    .option(
      '--extra_folder <path>',
      "more training images for pre-training only, after --data_folder's in one memory bank (labels unused; kNN and evaluation keep to --data_folder); repeatable or a comma list",
      repeatableList,
      D.extra_folder,
    )
    .option('--model_path <path>', 'folder for run folders (checkpoints, metrics.jsonl)', D.model_path)
    .option('--tb_path <path>', 'folder for TensorBoard event files', D.tb_path)
    .option('--model <arch>', 'alexnet | alexnet_small | alexnet_mini | resnet{18,50,101}v{1,2,3}[_small]', D.model)
    .option('--batch_size <n>', 'batch size', int, D.batch_size)
    .option('--epochs <n>', 'number of epochs', int, D.epochs)
    .option('--learning_rate <lr>', 'SGD learning rate', num, D.learning_rate)
    .option(
      '--lr_decay_epochs <list>',
      'epochs after which lr is multiplied by lr_decay_rate',
      intList,
      D.lr_decay_epochs,
    )
    .option('--lr_decay_rate <r>', 'learning-rate decay factor', num, D.lr_decay_rate)
    .option(
      '--cosine',
      'cosine learning-rate schedule from --learning_rate to learning_rate * lr_decay_rate^3 (--lr_decay_epochs unused)',
      D.cosine,
    )
    .option('--momentum <m>', 'SGD momentum', num, D.momentum)
    .option('--weight_decay <wd>', 'L2 weight decay (coupled, all parameters)', num, D.weight_decay)
    .option('--nce_k <k>', 'negatives per positive', int, D.nce_k)
    .option('--nce_t <t>', 'temperature', num, D.nce_t)
    .option('--nce_m <m>', 'memory-bank momentum', num, D.nce_m)
    .option('--feat_dim <d>', 'embedding size', int, D.feat_dim)
    .option('--softmax', 'softmax cross-entropy (InfoNCE) instead of the NCE loss', D.softmax)
    .addOption(
      new Option(
        '--negatives <src>',
        "negatives per pair: memory = K rows of the other view's memory bank (upstream); batch = the other view's embeddings of the rest of the batch (softmax-CE at nce_t; ours, for small data)",
      )
        .choices(['memory', 'batch'])
        .default(D.negatives),
    )
    .option('--crop_low <s>', 'RandomResizedCrop lower area bound', num, D.crop_low)
    .addOption(
      new Option('--view <space>', 'colour space of the default views L,ab (YCbCr: Y and CbCr, as upstream)')
        .choices(['Lab', 'YCbCr'])
        .default(D.view),
    )
    .addOption(
      new Option(
        '--views <list>',
        `views, each with its own encoder and memory bank, from ${VIEW_NAMES.join(', ')} (e.g. L,ab,DbDr,grad)`,
      )
        .argParser(viewList)
        .default(D.views, D.views.join(',')),
    )
    .addOption(
      new Option('--objective <kind>', 'pairs contrasted: core = the core view with each other view, full = every pair')
        .choices([...OBJECTIVES])
        .default(D.objective),
    )
    .addOption(
      new Option('--core_view <name>', 'core view of --objective core').default(D.core_view, 'the first of --views'),
    )
    .option(
      '--resume <ckpt>',
      'continue a run from its checkpoint (e.g. runs/<name>/current.ckpt); with a new --name, fork it into its own folder (e.g. a longer schedule from an earlier ckpt_epoch_N)',
      D.resume,
    )
    .addOption(
      new Option('--dataset <kind>', 'dataset format')
        .choices(['auto', 'raw', 'imagefolder', 'cifar10', 'stl10'])
        .default(D.dataset),
    )
    .option('--image_size <px>', 'crop size fed to the encoders', int, D.image_size)
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKENDS).default(D.backend))
    .option('--seed <n>', 'random seed (initialisation, sampling, augmentation)', int, D.seed)
    .option('--knn_freq <n>', 'weighted kNN top-1 on the test split every N epochs (0 = off)', int, D.knn_freq)
    .option('--knn_k <n>', 'neighbours for kNN', int, D.knn_k)
    .addOption(
      new Option(
        '--knn_source <src>',
        'training-set features for kNN: recompute with the encoders, or reuse the memory bank (fast, lags)',
      )
        .choices(['recompute', 'memory'])
        .default(D.knn_source),
    )
    .option('--workers <n>', 'data-loading worker threads', int, D.workers)
    .option('--print_freq <n>', 'progress line every N batches (when not on a terminal)', int, D.print_freq)
    .option('--save_freq <n>', 'keep a ckpt_epoch_N file every N epochs', int, D.save_freq)
    .option('--name <run>', 'run folder name (default: derived from the hyper-parameters)', D.name)
    .option('--demo', 'train a small model on generated images (no data needed): alexnet_mini, 32 px, 20 epochs', false)
    .option('--json', 'print the final metrics as JSON on stdout', false)
    .addHelpText('after', OUTPUT_HELP)
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const cfg = { ...D } as TrainConfig;
      for (const k of Object.keys(D) as (keyof TrainConfig)[]) {
        if (o[k] !== undefined) (cfg as unknown as Record<string, unknown>)[k] = o[k];
      }
      let demoRun = false;
      if (o.demo) {
        demoRun = true;
        // Shapes in random colours: the class is the shape, so colour (which random features already see) says
        // nothing about it, and what L and ab agree on (the silhouette) is what training can add.
        const dir = writeSyntheticDataset(path.join(os.tmpdir(), 'cmc-demo-data'), {
          size: 32,
          train: 512,
          test: 128,
          colours: 'random',
        });
        const explicit = (k: string) => cmd.getOptionValueSource(k) === 'cli';
        // The run goes to the temp folder too (not runs/ in the current folder), keeping only the final checkpoint.
        const runs = path.join(os.tmpdir(), 'cmc-demo-runs');
        const demo: Partial<TrainConfig> = {
          data_folder: dir,
          // alexnet_mini with upstream's softmax-CE loss (--softmax, T 0.1), 20 epochs: about a minute, and the
          // setting that raised kNN above random init for every seed tried (docs/RESULTS.md#the-demo); the
          // small AlexNet with NCE for 3 epochs, the earlier demo, lowered it for two of three seeds.
          model: 'alexnet_mini',
          image_size: 32,
          batch_size: 64,
          epochs: 20,
          softmax: true,
          nce_t: 0.1,
          nce_k: 511,
          learning_rate: 0.03,
          lr_decay_epochs: [],
          knn_freq: 1,
          knn_k: 50,
          name: 'demo',
          workers: 1,
          print_freq: 2,
          model_path: runs,
          tb_path: path.join(runs, 'tensorboard'),
        };
        for (const [k, v] of Object.entries(demo)) if (!explicit(k)) (cfg as unknown as Record<string, unknown>)[k] = v;
        if (!explicit('save_freq')) cfg.save_freq = cfg.epochs;
        // Each demo starts afresh (metrics.jsonl would otherwise append to the last demo's), unless resumed.
        if (!explicit('model_path') && !explicit('name') && !cfg.resume) {
          for (const d of [path.join(runs, 'demo'), path.join(runs, 'tensorboard', 'demo')])
            fs.rmSync(d, { recursive: true, force: true });
        }
        console.error(
          `[cmc] demo: ${cfg.epochs} epochs of ${cfg.model} on ${dir} (generated shapes in random colours, 4 classes: ${SYNTHETIC_CLASSES.join(', ')})`,
        );
      }
      const explicit = (Object.keys(D) as (keyof TrainConfig)[]).filter((k) => cmd.getOptionValueSource(k) === 'cli');
      // Ctrl+C (or a SIGTERM) ends the run at once: checkpoint writes are synchronous and atomic, so the last
      // one is whole; say where it is and how to continue.
      let saved: { file: string; epoch: number } | null = null;
      const stop = (signal: NodeJS.Signals) => {
        const how = ['backend', 'workers']
          .filter((k) => explicit.includes(k as keyof TrainConfig))
          .map((k) => ` --${k} ${shellQuote(String(cfg[k as keyof TrainConfig]))}`)
          .join('');
        console.error(
          saved
            ? `\ncmc: interrupted (${signal}); the last checkpoint is ${saved.file} (epoch ${saved.epoch} done). Resume with: cmc train --resume ${shellQuote(saved.file)}${how}`
            : `\ncmc: interrupted (${signal}) before the first checkpoint was written; nothing to resume, start the run again`,
        );
        process.exit(signal === 'SIGINT' ? 130 : 143);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      let r;
      try {
        r = await train(cfg, { explicit, onCheckpoint: (file, epoch) => (saved = { file, epoch }) });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      const last = r.metrics[r.metrics.length - 1];
      if (o.json) {
        console.log(
          JSON.stringify({
            run_dir: r.runDir,
            checkpoint: r.checkpoint,
            backend: r.backend,
            knn_at_init: r.knnAtInit,
            metrics: r.metrics,
          }),
        );
      } else {
        console.log(`checkpoint: ${r.checkpoint}`);
        if (last)
          console.log(
            `epoch ${last.epoch}: loss ${last.loss.toFixed(4)}${last.knn_top1 !== undefined ? `, kNN top-1 ${(100 * last.knn_top1).toFixed(1)}%` : ''}${r.knnAtInit ? ` (random init ${(100 * r.knnAtInit.top1).toFixed(1)}%)` : ''}`,
          );
      }
      if (demoRun) {
        // ckpt_epoch_N of the last epoch is a copy of current.ckpt: the demo keeps one file (14 MB for alexnet_mini).
        const copy = path.join(r.runDir, `ckpt_epoch_${cfg.epochs}.ckpt`);
        if (path.basename(r.checkpoint) === 'current.ckpt' && fs.existsSync(copy)) fs.rmSync(copy);
        const mb = fs.readdirSync(r.runDir).reduce((a, f) => a + fs.statSync(path.join(r.runDir, f)).size, 0) / 2 ** 20;
        console.error(`[cmc] demo run folder: ${r.runDir} (${mb.toFixed(0)} MB; delete it when done)`);
      }
      if (demoRun)
        console.error(
          demoVerdict(r.knnAtInit?.top1, last?.knn_top1, last?.epoch ?? cfg.epochs, SYNTHETIC_CLASSES.length),
        );
    });
}

/** `s` as one POSIX shell word (quoted only when it needs to be). */
function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The demo's last line: did pre-training raise kNN top-1 above the random-init encoder, by how many points,
 * what that means, and what to try next. Within 2 points either way counts as no change (the test split has
 * 128 images: one image is 0.8 points).
 */
export function demoVerdict(
  initTop1: number | undefined,
  finalTop1: number | undefined,
  epochs: number,
  classes: number,
): string {
  const next = 'next: your own images with `cmc train --data_folder <ImageFolder> ...` (docs/NEWCOMER.md)';
  if (initTop1 === undefined || finalTop1 === undefined)
    return `[cmc] demo: no kNN to compare (--knn_freq 0?); ${next}`;
  const pts = 100 * (finalTop1 - initTop1);
  const nums = `kNN top-1 ${(100 * finalTop1).toFixed(1)}% after ${epochs} epoch${epochs === 1 ? '' : 's'} vs ${(100 * initTop1).toFixed(1)}% at random init (${pts >= 0 ? '+' : ''}${pts.toFixed(1)} points; chance ${(100 / classes).toFixed(0)}%)`;
  if (pts > 2) return `[cmc] demo: training learned: ${nums}; ${next}`;
  return `[cmc] demo: no gain from training: ${nums}; a random encoder already tells these shapes apart and runs this short vary with --seed; ${next}`;
}
