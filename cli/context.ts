// What a command is given: the API client, the parsed flags and where to write.
import type { Api } from './api.js';
import type { Values } from './args.js';
import type { CommandSpec } from './spec.js';

export interface Ctx {
  api: Api;
  spec: CommandSpec;
  values: Values;
  positionals: string[];
  /** --json: print the API's JSON */
  json: boolean;
  out(s: string): void;
  err(s: string): void;
}

/** a command's result: its exit code */
export type Run = (ctx: Ctx) => Promise<number>;
