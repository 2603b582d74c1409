// The one place the agent reads its configuration: a JSON file (--config), then environment
// (HCP_AGENT_*), then flags, later ones winning. Every problem is reported at once and the
// process exits non-zero.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
// zod's mini build, not the chained one: the chained build is 0.6 MB of the agent's bundled
// source and builds its whole API at load; the mini build is 30 KB of what is used (README "The
// agent's memory"). Its messages are in no language until a locale is configured.
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { isValidSiteId } from '../proto/topics.js';

/** 50 GiB: ~24 h of a 5,000-device site (see spoolMaxBytes) */
export const DEFAULT_SPOOL_MAX_BYTES = 50 * 1024 ** 3;

z.config(en());

const hostPort = z.string().check(
  z.refine((v) => /^[^\s:]+:\d{1,5}$/.test(v) && Number(v.split(':').pop()) <= 65535, 'must be host:port with a port up to 65535'),
);

/** a number from a flag, an environment variable or the file: a whole one within [min, max] */
const whole = (min: number, max: number) => z.coerce.number().check(z.int(), z.minimum(min), z.maximum(max));
const text = () => z.string().check(z.minLength(1));

export const AgentConfigSchema = z
  .object({
    site: z.string().check(z.refine(isValidSiteId, 'must be lowercase letters, digits and dashes (e.g. texas-1)')),
    /**
     * the gRPC AgentGateway: host:port, or several replicas' host:port,host:port… (the agent
     * dials the first and moves to the next on every reconnect: agent/grpc/gateway-client.ts)
     */
    controlPlane: z._default(
      z.string().check(z.refine((v) => v.split(',').every((a) => hostPort.safeParse(a.trim()).success), 'must be host:port (or host:port,host:port… for several replicas) with ports up to 65535')),
      '127.0.0.1:50051',
    ),
    mqtt: z._default(z.string().check(z.regex(/^mqtts?:\/\//, 'must be an mqtt:// or mqtts:// URL')), 'mqtt://127.0.0.1:1883'),
    /**
     * the site's credential (npm run keys -- create --role agent --site <id>): gRPC
     * `authorization: Bearer` metadata, and the MQTT login (user = site id, password = token).
     * From HCP_AGENT_TOKEN, the --config file or --token-file; never a flag (ps shows flags).
     */
    token: z.optional(z.string().check(z.regex(/^hcp_[A-Za-z0-9_-]{20,200}$/, 'must be an HCP key (hcp_…)'))),
    tokenFile: z.optional(text()),
    /** gRPC over TLS; on by itself when --ca-file or --cert-file is given (MQTT: the mqtts:// URL decides) */
    tls: z._default(z.union([z.boolean(), z.pipe(z.enum(['true', 'false']), z.transform((v) => v === 'true'))]), false),
    /** PEM CA the agent trusts for the control plane's TLS (gRPC and mqtts) */
    caFile: z.optional(text()),
    /** PEM client certificate and key, for a control plane that asks for client certificates (mTLS) */
    certFile: z.optional(text()),
    keyFile: z.optional(text()),
    simGpus: z._default(whole(0, 10_000), 0),
    simAsics: z._default(whole(0, 20_000), 0),
    asicModel: z._default(z.enum(['s21', 's21-pro', 's21-xp']), 's21-xp'),
    /** how the agent reads its ASICs: in-process, or the cgminer API over TCP */
    asicDriver: z._default(z.enum(['sim', 'cgminer']), 'sim'),
    /** real miners for the cgminer driver: host:port,host:port… (else the simulated ones) */
    asicEndpoints: z.optional(z.string()),
    simApiHost: z._default(text(), '127.0.0.1'),
    /** first port of the simulated miners' cgminer API; 0 = random ports */
    simApiPortBase: z._default(whole(0, 65535), 0),
    seed: z._default(z.coerce.number().check(z.int()), 1),
    /** sim clock speed: 1 = real time */
    simSpeed: z._default(z.coerce.number().check(z.positive(), z.maximum(10_000)), 1),
    /** S21 start-up time in sim seconds */
    simStartupS: z._default(z.coerce.number().check(z.minimum(0), z.maximum(3600)), 240),
    sampleIntervalMs: z._default(whole(100, 60_000), 1000),
    /**
     * the telemetry spool's bound on disk (agent/spool/spool.ts); at it the oldest segment goes.
     * 50 GiB: a 5,000-ASIC site's batch, as the simulator encodes it, is 600,628 bytes (4,500
     * ASICs + 500 GPUs: 585,188), 48.3 GiB a day at one batch a second, so 50 GiB holds ~24.8 h.
     */
    spoolMaxBytes: z._default(whole(8192, 2 ** 50), DEFAULT_SPOOL_MAX_BYTES),
    /** a spool segment is closed at this size; trimming and the bound free whole segments */
    spoolSegmentBytes: z._default(whole(4096, 1024 * 1024 * 1024), 8 * 1024 * 1024),
    /** fsync cadence of the spool; 0 = every append (a power loss then loses no batch) */
    spoolFsyncMs: z._default(whole(0, 60_000), 1000),
    /** a batch not committed this long after its last send is sent again */
    resendAfterMs: z._default(whole(100, 3_600_000), 15_000),
    /** re-sent batches awaiting their commit at a time */
    resendWindow: z._default(whole(1, 10_000), 20),
    httpHost: z._default(text(), '127.0.0.1'),
    httpPort: z._default(whole(0, 65535), 0),
    /**
     * where the agent keeps what must survive a restart: the telemetry spool, the command journal,
     * the grid trip settings and the desired state. Always on; when not given (--state-dir or
     * HCP_AGENT_STATE_DIR) it is data/agents/<site> under the working directory — the layout
     * `npm start` uses (scripts/start.ts), and keyed by site so several agents on one machine
     * never share one. A systemd unit with WorkingDirectory=/var/lib/hcp-agent gets
     * /var/lib/hcp-agent/data/agents/<site>.
     */
    stateDir: z.optional(text()),
    logLevel: z._default(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info'),
  })
  .check(
    z.superRefine((c, ctx) => {
      if (c.asicEndpoints !== undefined) {
        if (c.asicDriver !== 'cgminer') ctx.addIssue({ code: 'custom', path: ['asicEndpoints'], message: 'needs --asic-driver cgminer' });
        for (const e of c.asicEndpoints.split(',')) {
          if (!hostPort.safeParse(e.trim()).success) ctx.addIssue({ code: 'custom', path: ['asicEndpoints'], message: `${JSON.stringify(e)} is not host:port` });
        }
      }
      if (c.token && c.tokenFile) ctx.addIssue({ code: 'custom', path: ['tokenFile'], message: 'give the token one way: HCP_AGENT_TOKEN or --token-file' });
      if (!c.certFile !== !c.keyFile) ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'give --cert-file and --key-file together' });
      if (c.spoolMaxBytes < 2 * c.spoolSegmentBytes) ctx.addIssue({ code: 'custom', path: ['spoolMaxBytes'], message: 'must be at least two --spool-segment-bytes' });
      if (c.simGpus + c.simAsics === 0 && !c.asicEndpoints) {
        ctx.addIssue({ code: 'custom', path: ['simGpus'], message: 'the agent has no devices: give --sim-gpus, --sim-asics or --asic-endpoints' });
      }
    }),
  );

/** the parsed configuration; stateDir is always set (defaultStateDir) */
export type AgentConfig = z.infer<typeof AgentConfigSchema> & { stateDir: string };

/** the state dir when none is given: data/agents/<site> under the working directory */
export function defaultStateDir(site: string, cwd = process.cwd()): string {
  return resolve(cwd, join('data', 'agents', site));
}

const FLAGS = {
  config: { type: 'string' },
  site: { type: 'string' },
  'control-plane': { type: 'string' },
  mqtt: { type: 'string' },
  'token-file': { type: 'string' },
  'ca-file': { type: 'string' },
  tls: { type: 'boolean' },
  'cert-file': { type: 'string' },
  'key-file': { type: 'string' },
  'sim-gpus': { type: 'string' },
  'sim-asics': { type: 'string' },
  'asic-model': { type: 'string' },
  'asic-driver': { type: 'string' },
  'asic-endpoints': { type: 'string' },
  'sim-api-host': { type: 'string' },
  'sim-api-port-base': { type: 'string' },
  seed: { type: 'string' },
  'sim-speed': { type: 'string' },
  'sim-startup-s': { type: 'string' },
  'sample-interval-ms': { type: 'string' },
  'spool-max-bytes': { type: 'string' },
  'spool-segment-bytes': { type: 'string' },
  'spool-fsync-ms': { type: 'string' },
  'resend-after-ms': { type: 'string' },
  'resend-window': { type: 'string' },
  'http-host': { type: 'string' },
  'http-port': { type: 'string' },
  'log-level': { type: 'string' },
  'state-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

export const USAGE = `hcp-agent — one per site: reads the site's devices and reports them to the HCP control plane.

Usage: hcp-agent --site <id> [options]

  --site ID                 site id, e.g. texas-1                    (HCP_AGENT_SITE)
  --control-plane HOST:PORT gRPC AgentGateway [127.0.0.1:50051]; several replicas: H:P,H:P…, tried in turn on reconnect  (HCP_AGENT_CONTROL_PLANE)
  --mqtt URL                telemetry broker [mqtt://127.0.0.1:1883] (HCP_AGENT_MQTT)
  --token-file FILE         the site's credential (hcp_…), for gRPC and the MQTT login; or
                            HCP_AGENT_TOKEN, never a flag                (HCP_AGENT_TOKEN_FILE)
  --tls                     gRPC over TLS (on by itself with --ca-file or --cert-file; MQTT
                            uses TLS when --mqtt is an mqtts:// URL)      (HCP_AGENT_TLS)
  --ca-file FILE            PEM CA to trust for the control plane's TLS (gRPC and mqtts://)
  --cert-file F --key-file F  PEM client certificate and key, when the control plane asks (mTLS)
  --sim-gpus N              simulated H100s [0]                      (HCP_AGENT_SIM_GPUS)
  --sim-asics N             simulated S21s [0]                       (HCP_AGENT_SIM_ASICS)
  --asic-model M            s21 | s21-pro | s21-xp [s21-xp]          (HCP_AGENT_ASIC_MODEL)
  --asic-driver D           sim | cgminer [sim]: cgminer reads ASICs over the cgminer API (TCP 4028)
  --asic-endpoints LIST     real miners for the cgminer driver: host:port,host:port…
  --sim-api-port-base P     first port of the simulated miners' cgminer API; 0 = random [0]
  --seed N                  simulation seed [1]
  --sim-speed X             simulation clock speed [1]
  --sim-startup-s S         S21 start-up time in sim seconds [240]
  --sample-interval-ms MS   sampling and publishing interval [1000]
  --spool-max-bytes N       telemetry spool bound on disk; the oldest segment goes first
                            [53687091200 = 50 GiB, ~24 h of a 5,000-device site]
  --spool-segment-bytes N   spool segment size; trimming frees whole segments [8388608]
  --spool-fsync-ms MS       spool fsync cadence, 0 = every append [1000]
  --resend-after-ms MS      re-send a batch not committed this long after its send [15000]
  --resend-window N         re-sent batches awaiting their commit at a time [20]
  --http-host H --http-port P   local /health and /metrics [127.0.0.1, 0 = random]
  --state-dir DIR           keeps the telemetry spool, the command journal, the grid trip
                            settings and the site's desired state across restarts; one per
                            site                     [data/agents/<site>] (HCP_AGENT_STATE_DIR)
  --log-level L             fatal|error|warn|info|debug|trace|silent [info]
  --config FILE             JSON file with any of the options above (camelCase keys)
  -h, --help                this text
`;

export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
export const envName = (key: string) => `HCP_AGENT_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

export type ParsedArgs = { help: true } | { version: true } | { config: AgentConfig };

export function parseAgentArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }));
  } catch (err) {
    const msg = (err as Error).message;
    // flags show in `ps`: the credential is never one
    throw new ConfigError([/'--token'/.test(msg) ? `${msg}: the site credential comes from HCP_AGENT_TOKEN or --token-file, never a flag` : msg]);
  }
  if (values.help) return { help: true };
  if (values.version) return { version: true };

  const problems: string[] = [];
  let fromFile: Record<string, unknown> = {};
  if (typeof values.config === 'string') {
    try {
      const parsed: unknown = JSON.parse(readFileSync(values.config, 'utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) problems.push(`--config ${values.config}: not a JSON object`);
      else fromFile = parsed as Record<string, unknown>;
    } catch (err) {
      problems.push(`--config ${values.config}: ${(err as Error).message}`);
    }
  }
  const keys = Object.keys(AgentConfigSchema.shape);
  const fromEnv = Object.fromEntries(keys.flatMap((k) => (env[envName(k)] ? [[k, env[envName(k)]]] : [])));
  const fromFlags = Object.fromEntries(
    Object.entries(values).flatMap(([k, v]) => (k === 'config' || v === undefined ? [] : [[camel(k), v]])),
  );
  for (const k of Object.keys(fromFile)) if (!keys.includes(k)) problems.push(`--config: unknown option ${JSON.stringify(k)}`);
  const r = AgentConfigSchema.safeParse({ ...fromFile, ...fromEnv, ...fromFlags });
  if (!r.success) {
    for (const i of r.error.issues) {
      const key = String(i.path[0] ?? '');
      const flag = key === 'token' ? 'HCP_AGENT_TOKEN' : key ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : 'options';
      problems.push(`${flag}: ${i.message}`);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  const config: AgentConfig = { ...r.data!, stateDir: r.data!.stateDir ?? defaultStateDir(r.data!.site) };
  if (config.tokenFile) config.token = readTokenFile(config.tokenFile);
  return { config };
}

/** the credential in a token file (one line); its text is never put in an error */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError([`--token-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  if (!AgentConfigSchema.shape.token.safeParse(text).success) throw new ConfigError([`--token-file ${file}: does not hold an HCP key (hcp_…)`]);
  return text;
}
