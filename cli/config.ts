// Where the CLI finds the control plane and its key: the one place it reads process.env.
//   URL: --url, else $HCP_URL, else the config file's "url", else http://127.0.0.1:8080
//   key: $HCP_API_KEY, else the config file's "key" (never a flag: argv shows in `ps`)
// The config file (--config, else $XDG_CONFIG_HOME/hcp/config.json or ~/.config/hcp/config.json)
// is optional; when it holds a key and others may read it, a warning says so (like ssh's).
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './args.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface CliConfig {
  url: string;
  key: string | null;
  /** where the key came from, for messages (never the key itself) */
  keySource: string | null;
  warnings: string[];
}

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'hcp', 'config.json');
}

function readConfigFile(path: string, explicit: boolean, warnings: string[]): { url?: string; key?: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return {};
    throw new UsageError(`cannot read the config file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`the config file ${path} is not JSON: ${(e as Error).message}`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new UsageError(`the config file ${path} must hold an object like {"url": "…", "key": "hcp_…"}`);
  const o = j as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => k !== 'url' && k !== 'key');
  if (unknown.length) throw new UsageError(`the config file ${path} has unknown fields: ${unknown.join(', ')} (known: url, key)`);
  for (const k of ['url', 'key'] as const) {
    if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k] === '')) throw new UsageError(`the config file ${path}: "${k}" must be a non-empty string`);
  }
  if (o.key !== undefined) {
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077) warnings.push(`the config file ${path} holds a key and is readable by others (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${path}`);
  }
  return { url: o.url as string | undefined, key: o.key as string | undefined };
}

function checkUrl(url: string, from: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`${from} is not a URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${from} must be an http:// or https:// URL, not ${JSON.stringify(url)}`);
  return url.replace(/\/+$/, '');
}

export function loadConfig(flags: { url?: string; config?: string }, env: NodeJS.ProcessEnv = process.env): CliConfig {
  const warnings: string[] = [];
  const path = flags.config ?? defaultConfigPath(env);
  const file = readConfigFile(path, flags.config !== undefined, warnings);
  const [url, from] = flags.url !== undefined ? [flags.url, '--url']
    : env.HCP_URL ? [env.HCP_URL, 'HCP_URL']
    : file.url ? [file.url, `the config file's url`]
    : [DEFAULT_URL, 'the default URL'];
  const envKey = env.HCP_API_KEY?.trim();
  const key = envKey || file.key?.trim() || null;
  const keySource = envKey ? 'HCP_API_KEY' : file.key ? path : null;
  return { url: checkUrl(url, from), key, keySource, warnings };
}
