/**
 * The command-line interface: one `cmc` tool with subcommands. Each command lives in bin/commands/ and
 * registers itself on the program; results go to stdout (as JSON with --json), progress to stderr.
 */
import { Command, CommanderError } from 'commander';
import { addBenchCommand } from './commands/bench.ts';
import { addTrainCommand } from './commands/train.ts';
import { addPlotCommand } from './commands/plot.ts';
import { addReportCommand } from './commands/report.ts';
import { addEvalCommands } from './commands/eval.ts';
import { addServeCommand } from './commands/serve.ts';
import { addExportCommand } from './commands/export.ts';
import { addImportTorchCommand } from './commands/import_torch.ts';
import { addSpecCommand } from './commands/spec.ts';

/** The words the commands' help texts use, defined once (README.md "Words used in these docs" says the same). */
const WORDS = `
Words used in the help texts:
  upstream         HobbitLong/CMC (https://github.com/HobbitLong/CMC), the original PyTorch code; a flag
                   "as upstream" keeps its behaviour (train_CMC.py, LinearProbing.py)
  test split       a data set's labelled test images (an ImageFolder's val/ or test/): every reported
                   accuracy is measured on it, nothing is chosen on it
  held-out split   a fraction of the training images set aside to choose something (the probe's epoch)
  seed             only ever a random seed (--seed)

'cmc <command> --help' lists a command's flags with their defaults; docs/NEWCOMER.md walks through them.
`;

export function buildProgram(): Command {
  const program = new Command('cmc')
    .description('Contrastive Multiview Coding in TypeScript: train, evaluate, export, serve')
    .exitOverride()
    .addHelpText('after', WORDS);
  addTrainCommand(program);
  addEvalCommands(program);
  addExportCommand(program);
  addImportTorchCommand(program);
  addSpecCommand(program);
  addServeCommand(program);
  addBenchCommand(program);
  addPlotCommand(program);
  addReportCommand(program);
  pointToHelpAfterError(program, 'cmc');
  return program;
}

/** A flag typo gets commander's suggestion and a pointer to the command's help, not ~80 lines of it. */
function pointToHelpAfterError(command: Command, path: string): void {
  command.showHelpAfterError(`(run '${path} --help' for the options)`);
  for (const sub of command.commands) pointToHelpAfterError(sub, `${path} ${sub.name()}`);
}

export async function main(argv: string[]): Promise<void> {
  silenceTfjsBanner();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    // Expected failures (bad flags, missing data, unavailable backend) print one clear line, no stack.
    const err = e as Error;
    console.error(`cmc: ${err.message}`);
    if (process.env.CMC_DEBUG) console.error(err.stack);
    process.exitCode = 1;
  }
}

/** tfjs prints a multi-line advert for tfjs-node on first use in Node; our backend line says more. */
function silenceTfjsBanner(): void {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('looks like you are running TensorFlow.js in Node.js')) return;
    warn(...args);
  };
}
