/**
 * Evaluation commands: `cmc probe` (linear probe on frozen features, upstream's LinearProbing.py),
 * `cmc knn` (weighted kNN on frozen features) and `cmc supervised` (the supervised-from-scratch baseline).
 *
 *   cmc probe --checkpoint runs/x/current.ckpt --data_folder data/cifar --layer 5 --mode cached --json
 *   cmc probe --random --model alexnet_small --image_size 32 --data_folder data/cifar --layer 5
 *   cmc knn --checkpoint runs/x/current.ckpt --data_folder data/cifar            # embeddings, k 200, T 0.07
 *   cmc probe --checkpoint runs/x/current.ckpt --data_folder data/cifar --layer 5 --probe_views L   # the L encoder alone
 *   cmc supervised --data_folder data/cifar --model alexnet_small --image_size 32 --epochs 30
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import path from 'node:path';
import { BACKENDS, type BackendName } from '../../train/engine/backend.ts';
import type { PoolType } from '../../core/network/pooling.ts';
import type { EncoderChoice } from '../../train/eval/encoder.ts';
import { knnEvaluate } from '../../train/eval/knn_eval.ts';
import { probe, PROBE_DEFAULTS } from '../../train/eval/linear_probe.ts';
import { HELD_OUT_DEFAULT, PROBE_SELECTIONS, type ProbeSelection } from '../../train/eval/selection.ts';
import { describeTestSplit } from '../../train/eval/splits.ts';
import { SUPERVISED_DEFAULTS, trainSupervised, type SupervisedConfig } from '../../train/trainer/supervised.ts';
import type { SourceKind } from '../../train/data/sources.ts';
import { int, intList, num, repeatableList, viewList } from '../options.ts';

const DATASETS = ['auto', 'raw', 'imagefolder', 'cifar10', 'stl10'];

/** 'HxW', 'N' (square) or 'none'. */
function poolSize(v: string): [number, number] | null {
  if (v === 'none') return null;
  const m = /^(\d+)(?:x(\d+))?$/.exec(v);
  if (!m) throw new InvalidArgumentError(`expected HxW, N or none, got '${v}'`);
  const h = Number(m[1]),
    w = Number(m[2] ?? m[1]);
  if (h < 1 || w < 1) throw new InvalidArgumentError(`pool sizes must be >= 1, got '${v}'`);
  return [h, w];
}

/** Options shared by probe and knn: which encoder, which data, which backend. */
function encoderOptions(cmd: Command): Command {
  return cmd
    .option('--checkpoint <ckpt>', 'checkpoint of `cmc train` or `cmc supervised` (e.g. runs/<name>/current.ckpt)')
    .option('--random', 'use a randomly initialised encoder instead (baseline); needs --model and --image_size', false)
    .option(
      '--model <arch>',
      'architecture for --random: alexnet | alexnet_small | alexnet_mini | resnet{18,50,101}v{1,2,3}[_small]',
      'alexnet_small',
    )
    .option('--image_size <px>', 'input size for --random', int, 32)
    .option('--feat_dim <d>', 'embedding size for --random', int, 128)
    .addOption(new Option('--view <space>', 'colour space for --random').choices(['Lab', 'YCbCr']).default('Lab'))
    .option('--views <list>', 'views of the --random encoder (as cmc train --views)', viewList)
    .option(
      '--probe_views <list>',
      "use only these views' encoders, features concatenated in this order (e.g. L: the L encoder alone); default all",
      nameList,
    )
    .requiredOption(
      '--data_folder <path>',
      'dataset with labelled train and test splits (raw, ImageFolder train/ + val/, CIFAR-10, STL-10); one without a test split is refused unless --test_split is given',
    )
    .option(
      '--test_split <f>',
      'for a dataset without a test split (e.g. an ImageFolder without val/): hold out this fraction of the training images, per class and seeded by --seed, as the test split (said in the output and JSON)',
      num,
      0,
    )
    .addOption(new Option('--dataset <kind>', 'dataset format').choices(DATASETS).default('auto'))
    .option('--pool <size>', 'override the adaptive pooling of the layer: HxW, N or none', poolSize)
    .addOption(new Option('--pool_type <type>', 'override the pooling type').choices(['max', 'avg']))
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKENDS).default('auto'))
    .option('--workers <n>', 'data-loading worker threads', int, 2)
    .option('--seed <n>', 'seed (random-init encoder, head init, shuffling, augmentation, held-out split)', int, 0)
    .option('--json', 'print the result as JSON on stdout', false);
}

function encoderChoice(o: Record<string, unknown>): EncoderChoice {
  if (o.random && o.checkpoint) throw new Error('give either --checkpoint or --random, not both');
  if (!o.random && !o.checkpoint)
    throw new Error('--checkpoint is required (or --random for a randomly initialised encoder)');
  const views = o.probe_views as string[] | undefined;
  if (o.checkpoint) return { checkpoint: o.checkpoint as string, views };
  return {
    checkpoint: null,
    arch: o.model as string,
    imageSize: o.image_size as number,
    featDim: o.feat_dim as number,
    view: o.view as 'Lab' | 'YCbCr',
    trainViews: o.views as string[] | undefined,
    views,
  };
}

/** A comma list of names (checked against the model later). */
function nameList(v: string): string[] {
  const names = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new InvalidArgumentError('expected a comma list of view names');
  return names;
}

export function addEvalCommands(program: Command): void {
  const D = PROBE_DEFAULTS;
  encoderOptions(
    program
      .command('probe')
      .description(
        "linear probe (upstream's LinearProbing.py): frozen encoders in eval mode, features of --layer (L then ab, " +
          "upstream's pooling: AlexNet adaptive max to 10/6/5/5/none, ResNet adaptive avg to 8/6/4/3/none/vector), one " +
          'Linear layer trained with SGD; top-1/top-5 on the test split every epoch; the reported epoch is chosen on ' +
          `${100 * HELD_OUT_DEFAULT}% of the training images held out (--select_on); writes that epoch's head as JSON`,
      ),
  )
    .option(
      '--layer <n>',
      'block to probe: AlexNet 1-5 (6 fc6, 7 fc7, 8 embedding: extensions); ResNet 1-6 (7 embedding)',
      int,
      5,
    )
    .option('--epochs <n>', 'epochs', int, D.epochs)
    .option(
      '--learning_rate <lr>',
      'SGD learning rate (upstream: 0.1 for AlexNet; 30 for resnet50v1/v2, 50 for v3)',
      num,
      D.lr,
    )
    .option('--momentum <m>', 'SGD momentum', num, D.momentum)
    .option('--weight_decay <wd>', 'weight decay', num, D.weightDecay)
    .option('--batch_size <n>', 'batch size', int, D.batchSize)
    .option(
      '--feature_batch <n>',
      'images per forward pass of the frozen encoder in cached mode (default: max(batch_size, 64)); lower it for large encoders (e.g. 32 for resnet18v1_small at 64 px)',
      int,
    )
    .option('--lr_decay_epochs <list>', 'epochs after which lr is multiplied by lr_decay_rate', intList, D.decayEpochs)
    .option('--lr_decay_rate <r>', 'learning-rate decay factor', num, D.decayRate)
    .addOption(
      new Option(
        '--mode <mode>',
        "'augmented' = upstream's (train augmentation through the frozen encoder every epoch); " +
          "'cached' = features computed once with the val transform (much faster)",
      )
        .choices(['augmented', 'cached'])
        .default(D.mode),
    )
    .option(
      '--val_split <f>',
      `hold out this fraction of the training images (per class, seeded by --seed; never trained on) as the held-out split the epoch is chosen on (default ${HELD_OUT_DEFAULT} with --select_on held_out, else 0); 0 without --select_on reports the last epoch`,
      num,
    )
    .addOption(
      new Option(
        '--select_on <split>',
        'where the reported epoch is chosen: held_out (the best held-out top-1), test (the best test top-1, ' +
          "as upstream's LinearProbing.py: optimistic, and labelled so), last (the schedule's last epoch)",
      ).choices([...PROBE_SELECTIONS]),
    )
    .option(
      '--crop_low <s>',
      "RandomResizedCrop lower bound in augmented mode (default: the checkpoint's, else 0.2)",
      num,
    )
    .option(
      '--select_wd <list>',
      'choose the weight decay from these values on the held-out images (cached mode), ' +
        'then refit on all training images and report the last epoch',
      (v: string) => v.split(',').map((x) => num(x.trim())),
    )
    .option(
      '--out <file>',
      'head JSON path (default: <checkpoint folder>/linear_layer<N>.json, or runs/probe/linear_random_<model>_layer<N>.json)',
    )
    .action(async (o: Record<string, unknown>) => {
      const enc = encoderChoice(o);
      const layer = o.layer as number;
      const out =
        (o.out as string | undefined) ??
        (enc.checkpoint
          ? path.join(path.dirname(enc.checkpoint), `linear_layer${layer}.json`)
          : path.join(
              'runs',
              'probe',
              `linear_random_${path.basename(enc.arch ?? 'model', '.json')}_layer${layer}.json`,
            ));
      const r = await probe({
        ...enc,
        dataFolder: o.data_folder as string,
        dataset: o.dataset as SourceKind | 'auto',
        layer,
        epochs: o.epochs as number,
        lr: o.learning_rate as number,
        momentum: o.momentum as number,
        weightDecay: o.weight_decay as number,
        batchSize: o.batch_size as number,
        featureBatch: o.feature_batch as number | undefined,
        decayEpochs: o.lr_decay_epochs as number[],
        decayRate: o.lr_decay_rate as number,
        mode: o.mode as 'cached' | 'augmented',
        valSplit: o.val_split as number | undefined,
        selectOn: o.select_on as ProbeSelection | undefined,
        cropLow: o.crop_low as number | undefined,
        pool: o.pool as [number, number] | null | undefined,
        poolType: o.pool_type as PoolType | undefined,
        backend: o.backend as BackendName,
        seed: o.seed as number,
        workers: o.workers as number,
        out,
        selectWeightDecay: o.select_wd as number[] | undefined,
        testSplit: o.test_split as number,
      });
      if (o.json) {
        console.log(
          JSON.stringify({
            encoder: r.encoder,
            layer: r.layer,
            selected_on: r.selectedOn,
            chosen_on: r.chosenOn,
            best: r.best,
            last: r.last,
            epochs: r.epochs,
            wd_selection: r.wdSelection,
            config: {
              weight_decay: r.wdSelection?.chosen ?? o.weight_decay,
              lr: o.learning_rate,
              epochs: o.epochs,
              mode: o.mode,
              val_split: r.heldOutFraction,
              select_on: r.selectedOn,
              seed: o.seed,
              batch_size: o.batch_size,
            },
            n_train: r.nTrain,
            n_held_out: r.nHeldOut,
            n_test: r.nTest,
            test_split: r.testSplit,
            head: r.headPath,
            backend: r.backend,
            seconds: r.seconds,
          }),
        );
      } else {
        console.log(
          `layer ${layer}: reported epoch ${r.best.epoch} test top-1 ${(100 * r.best.top1).toFixed(2)}% top-5 ${(100 * r.best.top5).toFixed(2)}%` +
            ` (${r.chosenOn}); last epoch top-1 ${(100 * r.last.top1).toFixed(2)}%; head: ${r.headPath}` +
            (r.testSplit.source === 'held_out' ? `; test split: ${describeTestSplit(r.testSplit)}` : ''),
        );
      }
    });

  encoderOptions(
    program
      .command('knn')
      .description(
        'weighted kNN (Wu et al.) of the test split against the train split, both recomputed with the frozen encoders in eval mode and the val transform',
      ),
  )
    .option('--layer <n>', 'block whose features are compared (default: the last = the L2-normalised embeddings)', int)
    .option('--k <n>', 'neighbours', int, 200)
    .option('--nce_t <t>', 'temperature of the vote weights exp(sim / T)', num, 0.07)
    .option('--batch_size <n>', 'feature-extraction batch size', int, 256)
    .option('--feature_batch <n>', "the same as --batch_size (the name cmc probe's option has)", int)
    .action(async (o: Record<string, unknown>) => {
      const r = await knnEvaluate({
        ...encoderChoice(o),
        seed: o.seed as number,
        dataFolder: o.data_folder as string,
        dataset: o.dataset as SourceKind | 'auto',
        layer: o.layer as number | undefined,
        k: o.k as number,
        T: o.nce_t as number,
        backend: o.backend as BackendName,
        workers: o.workers as number,
        batchSize: (o.feature_batch ?? o.batch_size) as number,
        pool: o.pool as [number, number] | null | undefined,
        poolType: o.pool_type as PoolType | undefined,
        testSplit: o.test_split as number,
      });
      if (o.json) {
        console.log(
          JSON.stringify({
            encoder: r.encoder,
            layer: r.layer,
            k: r.k,
            T: r.T,
            top1: r.top1,
            top5: r.top5,
            n: r.n,
            n_train: r.nTrain,
            test_split: r.testSplit,
            backend: r.backend,
            seconds: r.seconds,
          }),
        );
      } else {
        console.log(
          `kNN (k ${r.k}, T ${r.T}, layer ${r.layer.layer}): top-1 ${(100 * r.top1).toFixed(2)}%  top-5 ${(100 * r.top5).toFixed(2)}%  ` +
            `(${r.testSplit.source === 'held_out' ? describeTestSplit(r.testSplit) : `${r.n} test images`})`,
        );
      }
    });

  const S = SUPERVISED_DEFAULTS;
  program
    .command('supervised')
    .description(
      'supervised-from-scratch baseline: the same two-view encoder pair trained with cross-entropy through one linear ' +
        'classifier on the concatenated pre-normalisation fc8 outputs; same augmentation, SGD and schedule as `cmc train`; ' +
        'writes a checkpoint `cmc probe` / `cmc knn` read',
    )
    .requiredOption('--data_folder <path>', 'labelled dataset (a test split, when present, is evaluated every epoch)')
    .addOption(new Option('--dataset <kind>', 'dataset format').choices(DATASETS).default(S.dataset))
    .option(
      '--extra_folder <path>',
      "more labelled training images after --data_folder's (the same classes; e.g. an upper bound on every label); repeatable or a comma list. The test split stays --data_folder's",
      repeatableList,
      S.extra_folder,
    )
    .option('--model_path <path>', 'folder for run folders', S.model_path)
    .option(
      '--model <arch>',
      'alexnet | alexnet_small | alexnet_mini | resnet{18,50,101}v{1,2,3}[_small], or a CmcSpec .json file',
      S.model,
    )
    .option('--image_size <px>', 'crop size fed to the encoders', int, S.image_size)
    .option('--feat_dim <d>', 'embedding size (fc8 width per view)', int, S.feat_dim)
    .addOption(new Option('--view <space>', 'colour space split into views').choices(['Lab', 'YCbCr']).default(S.view))
    .option('--crop_low <s>', 'RandomResizedCrop lower area bound', num, S.crop_low)
    .option('--batch_size <n>', 'batch size', int, S.batch_size)
    .option('--epochs <n>', 'number of epochs', int, S.epochs)
    .option('--learning_rate <lr>', 'SGD learning rate', num, S.learning_rate)
    .option(
      '--lr_decay_epochs <list>',
      'epochs after which lr is multiplied by lr_decay_rate',
      intList,
      S.lr_decay_epochs,
    )
    .option('--lr_decay_rate <r>', 'learning-rate decay factor', num, S.lr_decay_rate)
    .option(
      '--cosine',
      'cosine learning-rate schedule from --learning_rate to learning_rate * lr_decay_rate^3 (--lr_decay_epochs unused)',
      S.cosine,
    )
    .option('--momentum <m>', 'SGD momentum', num, S.momentum)
    .option('--weight_decay <wd>', 'L2 weight decay (coupled, all parameters)', num, S.weight_decay)
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKENDS).default(S.backend))
    .option('--seed <n>', 'random seed', int, S.seed)
    .option('--workers <n>', 'data-loading worker threads', int, S.workers)
    .option('--name <run>', 'run folder name (default: supervised_<model>_lr_..._bsz_..._view_...)', S.name)
    .option(
      '--val_split <f>',
      'hold out this fraction of the training images per class and score it every epoch, to choose the epochs and schedule on it (0: train on all)',
      num,
      S.val_split,
    )
    .option('--json', 'print the result as JSON on stdout', false)
    .action(async (o: Record<string, unknown>) => {
      const cfg = { ...S } as SupervisedConfig;
      for (const k of Object.keys(S) as (keyof SupervisedConfig)[])
        if (o[k] !== undefined) (cfg as unknown as Record<string, unknown>)[k] = o[k];
      const r = await trainSupervised(cfg);
      const last = r.metrics[r.metrics.length - 1];
      if (o.json) {
        console.log(
          JSON.stringify({
            run_dir: r.runDir,
            checkpoint: r.checkpoint,
            backend: r.backend,
            test_top1: last?.test_top1,
            test_top5: last?.test_top5,
            ...(r.bestHeldOut
              ? {
                  best_held_out: {
                    epoch: r.bestHeldOut.epoch,
                    held_out_top1: r.bestHeldOut.held_out_top1,
                    test_top1: r.bestHeldOut.test_top1,
                  },
                }
              : {}),
            metrics: r.metrics,
          }),
        );
      } else {
        console.log(`checkpoint: ${r.checkpoint}`);
        if (last)
          console.log(
            `epoch ${last.epoch}: loss ${last.loss.toFixed(4)}` +
              (last.test_top1 !== undefined ? `, test top-1 ${(100 * last.test_top1).toFixed(2)}%` : ''),
          );
        const best = r.bestHeldOut;
        if (best)
          console.log(
            `best held-out top-1 ${(100 * best.held_out_top1!).toFixed(2)}% at epoch ${best.epoch}` +
              (best.test_top1 !== undefined ? ` (test top-1 there ${(100 * best.test_top1).toFixed(2)}%)` : ''),
          );
      }
    });
}
