import { Command, Option } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { decodeModel } from '../../core/onnx/onnx_proto.ts';
import { addTfjsExport, EXPORT_FORMATS, exportModel, type ExportFormat } from '../../train/export/export.ts';
import { refreshProvenance } from '../../train/export/provenance.ts';
import { int } from '../options.ts';
import { formatBytes, plural } from '../units.ts';

/**
 * `cmc export --checkpoint runs/demo/current.ckpt [--head head.json] [--name N] [--version V] [--out models]
 * [--format onnx|triton] [--layer L] [--json]`: writes <out>/<name>/ (encoder.onnx, head.onnx and
 * classifier.onnx with a head, manifest.json) or, with --format triton, a Triton model folder
 * <out>/<name>/config.pbtxt + <out>/<name>/1/model.onnx. --format tfjs writes the ONNX files plus tfjs graph
 * models <out>/<name>/tfjs/{encoder,classifier}/ (model.json + shards; --quantize_float16 halves them);
 * `cmc export --format tfjs --from models/<name>` adds them to an existing ONNX export (no checkpoint needed).
 */
export function addExportCommand(program: Command): void {
  program
    .command('export')
    .description(
      'export a checkpoint (and optionally a linear-probe head) to ONNX with a manifest (and tfjs graph models), or as a Triton model folder',
    )
    .option('--checkpoint <ckpt>', 'training checkpoint (runs/<name>/current.ckpt)')
    .option(
      '--from <model_dir>',
      'with --format tfjs and no --checkpoint: add tfjs graph models to this existing ONNX export folder',
    )
    .option(
      '--quantize_float16',
      'tfjs: store the weights as float16 (half the size; see README for the accuracy)',
      false,
    )
    .option(
      '--refresh_provenance <model_dir>',
      "rewrite an existing export's training and probe configs without machine paths (data sets by name and checksum); graphs and weights stay as they are",
    )
    .option('--head <head.json>', 'linear-probe head file (adds head.onnx and classifier.onnx)')
    .option('--name <name>', "model name (default: the checkpoint's run name)")
    .option('--version <v>', 'model version string', '1')
    .option('--out <dir>', 'parent folder: the model goes to <out>/<name> (Triton: the model repository)', 'models')
    .addOption(new Option('--format <fmt>', 'output layout').choices([...EXPORT_FORMATS]).default('onnx'))
    .option(
      '--layer <n>',
      "block whose flattened outputs (views in order) form the `features` output (default: the head's layer, else 6)",
      int,
    )
    .option(
      '--export_views <list>',
      "export only these views' encoders, in this order (e.g. L); default: the head's views, else all",
      (v: string) =>
        v
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean),
    )
    .option('--max_batch_size <n>', 'Triton max_batch_size', int, 64)
    .option('--json', 'print the manifest as JSON on stdout', false)
    .action(
      async (o: {
        checkpoint?: string;
        from?: string;
        refresh_provenance?: string;
        quantize_float16: boolean;
        head?: string;
        name?: string;
        version: string;
        out: string;
        format: ExportFormat;
        layer?: number;
        export_views?: string[];
        max_batch_size: number;
        json: boolean;
      }) => {
        if (o.quantize_float16 && o.format !== 'tfjs')
          throw new Error('--quantize_float16 applies to --format tfjs only');
        if (o.refresh_provenance !== undefined) {
          if (o.checkpoint !== undefined || o.head !== undefined || o.from !== undefined)
            throw new Error('--refresh_provenance takes an existing export folder and nothing else');
          for (const f of refreshProvenance(o.refresh_provenance)) console.log(f);
          return;
        }
        if (o.from !== undefined) {
          if (o.checkpoint !== undefined || o.head !== undefined)
            throw new Error('--from takes an existing export folder; give it without --checkpoint and --head');
          if (o.format !== 'tfjs') throw new Error('--from works with --format tfjs only');
          const files = new FileLog();
          const r = await addTfjsExport({
            modelDir: o.from,
            quantize: o.quantize_float16 ? 'float16' : undefined,
            log: files.log,
          });
          files.flush([...r.files, r.manifestPath]);
          if (o.json) console.log(JSON.stringify({ out_dir: r.outDir, files: r.files, manifest: r.manifest }));
          else for (const f of [...r.files, r.manifestPath]) console.log(describeFile(f));
          return;
        }
        if (o.checkpoint === undefined)
          throw new Error('--checkpoint is required (or, with --format tfjs, --from <model_dir>)');
        const { readModelCheckpoint } = await import('../../core/formats/checkpoint.ts');
        // Read once, checked as a training checkpoint, so a wrong file is refused before any work.
        const ck = readModelCheckpoint(o.checkpoint);
        const ckpt = { header: ck.header, tensors: ck.tensors };
        const cfg = ck.header.config;
        const name =
          o.name ??
          (cfg?.name || (cfg?.model ? `cmc_${cfg.model}` : path.basename(path.dirname(path.resolve(o.checkpoint)))));
        if (!/^[A-Za-z0-9._-]+$/.test(name))
          throw new Error(`--name must be a plain folder name (letters, digits, . _ -), got '${name}'`);
        const files = new FileLog();
        const r = await exportModel({
          checkpoint: ckpt,
          head: o.head,
          outDir: path.join(o.out, name),
          name,
          version: o.version,
          format: o.format,
          layer: o.layer,
          views: o.export_views,
          maxBatchSize: o.max_batch_size,
          quantize: o.quantize_float16 ? 'float16' : undefined,
          log: files.log,
        });
        files.flush([...r.files, r.manifestPath]);
        if (o.json) console.log(JSON.stringify({ out_dir: r.outDir, files: r.files, manifest: r.manifest }));
        else for (const f of [...r.files, r.manifestPath]) console.log(describeFile(f));
      },
    );
}

/**
 * The exporter logs a line per file it writes; the command lists the files itself, once, with their sizes
 * (describeFile). FileLog holds the exporter's lines back and, at the end, prints only those that name no
 * written file or folder (anything else the exporter has to say).
 */
class FileLog {
  private readonly lines: string[] = [];
  readonly log = (line: string): void => void this.lines.push(line);

  flush(written: string[]): void {
    const files = written.map((f) => path.resolve(f));
    // A line names a written file, or the folder of a tfjs graph model (model.json and its shards).
    const listed = (p: string) => files.some((f) => f === p || f.startsWith(p + path.sep));
    for (const line of this.lines) {
      const named = /^\[export\] (.+?)(?: \(.*\))?$/.exec(line)?.[1];
      if (named === undefined || !listed(path.resolve(named))) console.error(line);
    }
  }
}

/** `file  6.9 MB, 71 nodes`: the size, and the node count of an ONNX file or a tfjs graph model. */
export function describeFile(file: string): string {
  const bytes = fs.statSync(file).size;
  let nodes: number | undefined;
  if (file.endsWith('.onnx')) nodes = decodeModel(fs.readFileSync(file)).graph?.node?.length;
  else if (path.basename(file) === 'model.json') {
    const topology = (JSON.parse(fs.readFileSync(file, 'utf8')) as { modelTopology?: { node?: unknown[] } })
      .modelTopology;
    nodes = topology?.node?.length;
  }
  return `${file}  ${formatBytes(bytes)}${nodes === undefined ? '' : `, ${plural(nodes, 'node')}`}`;
}
