// The model subcommands of `whittle`, dispatched before the manager's own options are parsed (each parses
// its own): inspect, import, run, deploy, train, quantize, compress, optimize, nas.
import { reportCommandError } from './command-error.js';
import { compressCommand } from './compress.js';
import { deployCommand } from './deploy.js';
import { importCommand } from './import.js';
import { inspectCommand } from './inspect.js';
import { nasCommand } from './nas.js';
import { optimizeCommand } from './optimize.js';
import { quantizeCommand } from './quantize.js';
import { runCommand } from './run.js';
import { trainCommand } from './train.js';

const COMMANDS: Record<string, (args: string[]) => number | Promise<number>> = {
  inspect: inspectCommand,
  import: importCommand,
  run: runCommand,
  deploy: deployCommand,
  train: trainCommand,
  quantize: quantizeCommand,
  compress: compressCommand,
  optimize: optimizeCommand,
  nas: nasCommand,
};

export const MODEL_COMMANDS_HELP = `  inspect PKG           a package's layers, formats, sizes, MACs, memory plan and signature status
                        (--key PUBLIC_KEY.pem to verify the signature, --batch N, --json)
  import MODEL --out PKG  an ONNX (.onnx), TFLite (.tflite, float or int8) or TensorFlow.js Layers
                        model (model.json) as a signed package (--key PRIVATE_KEY.pem, default: the manager's key; --id, --labels FILE;
                        --batch N; --input-shape NAME=1,3,224,224 fixes an input's symbolic dimensions)
  run PKG --input FILE  run a package here; FILE: ONNX TensorProto (.pb) or an image, once per input
                        (--json: every output as {name: {shape, data}}; --top K; --key PUBLIC_KEY.pem;
                        --memory-budget BYTES; --threads N; a .pb input's first dimension sets the batch)
`;

/** Runs a model command; undefined when `command` is not one. Reported errors print as one line, exit 1. */
export async function runModelCommand(
  command: string | undefined,
  args: string[],
): Promise<number | undefined> {
  const run = command === undefined ? undefined : COMMANDS[command];
  if (run === undefined) return undefined;
  try {
    return await run(args);
  } catch (error) {
    return reportCommandError(`whittle ${command}`, error);
  }
}
