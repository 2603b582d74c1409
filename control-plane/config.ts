// The one place the control plane reads process.env. Every bad value is reported at once and the
// process exits non-zero (STYLE.md: options are validated and rejected up front).
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const ms = z.coerce.number().int().min(1);

export const ControlPlaneConfigSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  HCP_DATA_DIR: z.string().min(1).default('./data'),
  HCP_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  HCP_HTTP_PORT: port.default(8080),
  HCP_GRPC_HOST: z.string().min(1).default('127.0.0.1'),
  HCP_GRPC_PORT: port.default(50051),
  /** 'embedded' runs Aedes in-process; 'external' only subscribes to HCP_MQTT_URL */
  HCP_BROKER: z.enum(['embedded', 'external']).default('embedded'),
  HCP_MQTT_HOST: z.string().min(1).default('127.0.0.1'),
  HCP_MQTT_PORT: port.default(1883),
  HCP_MQTT_URL: z.string().regex(/^mqtts?:\/\//, 'must be an mqtt:// or mqtts:// URL').optional(),
  /** users of the embedded broker and what they may publish (mqtt/acl.ts); unset: anyone, anything */
  HCP_MQTT_USERS_FILE: z.string().min(1).optional(),
  HCP_HEARTBEAT_MS: ms.default(2000),
  /** a site or device with no sign of life for this long is offline */
  HCP_STALE_AFTER_MS: ms.default(10000),
  HCP_INGEST_FLUSH_MS: ms.default(250),
  HCP_INGEST_MAX_ROWS: ms.default(5000),
  /** let an agent with a new site id register it on hello (logged and audited) */
  HCP_AUTO_REGISTER_SITES: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /** grid under-frequency response (ERCOT: load trips at 59.7 Hz; grid/frequency-guard.ts) */
  HCP_GRID_TRIP_HZ: z.coerce.number().min(40).max(70).default(59.7),
  HCP_GRID_RECOVER_HZ: z.coerce.number().min(40).max(70).default(59.95),
  HCP_GRID_RESTORE_HOLD_S: z.coerce.number().min(0).default(60),
  HCP_GRID_RESTORE_STAGES: z.coerce.number().int().min(1).max(100).default(4),
  HCP_GRID_RESTORE_STAGE_S: z.coerce.number().min(0).default(30),
  /** regions whose agents arm their local under-frequency trip; comma-separated, or 'none' */
  HCP_GRID_TRIP_REGIONS: z
    .string()
    .default('ercot')
    .transform((v) => (v.trim() === 'none' ? [] : v.split(',').map((r) => r.trim()).filter(Boolean)))
    .refine((rs) => rs.every((r) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(r)), 'must be region ids separated by commas'),
  /** scheduler: running batch/training work younger than this is not preempted by batch/training */
  HCP_SCHED_MIN_RUNTIME_S: z.coerce.number().int().min(0).default(60),
  /** scheduler: a site offline this long has its workloads requeued elsewhere */
  HCP_SCHED_SITE_GRACE_S: z.coerce.number().int().min(0).default(30),
  /** scheduler: queue rank improves one priority level per this many seconds waited (0 = strict priority) */
  HCP_SCHED_AGING_S: z.coerce.number().int().min(0).default(300),
  /** scheduler: minimum spacing of placement passes */
  HCP_SCHED_PASS_MS: ms.default(20),
  /** scheduler: a workload whose Allocate failed this many times is failed */
  HCP_SCHED_MAX_ALLOCATE_ATTEMPTS: z.coerce.number().int().min(1).default(5),
  /** the economic engine: 'off' leaves every site as operators set it */
  HCP_ECONOMICS: z.enum(['on', 'off']).default('on'),
  HCP_ECONOMICS_INTERVAL_MS: z.coerce.number().int().min(1000).default(60_000),
  /** the engine's model of the fleet: S21 start-up time and minimum on/off durations */
  HCP_ECONOMICS_STARTUP_S: z.coerce.number().min(0).default(240),
  HCP_ECONOMICS_MIN_ON_S: z.coerce.number().min(0).default(900),
  HCP_ECONOMICS_MIN_OFF_S: z.coerce.number().min(0).default(600),
  /** a price this many times break-even sheds inside the minimum on time */
  HCP_ECONOMICS_SPIKE_MULTIPLE: z.coerce.number().min(1).default(3),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type ControlPlaneConfig = z.infer<typeof ControlPlaneConfigSchema>;

export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export function loadControlPlaneConfig(env: NodeJS.ProcessEnv = process.env): ControlPlaneConfig {
  const picked = Object.fromEntries(
    Object.keys(ControlPlaneConfigSchema.shape)
      .filter((k) => env[k] !== undefined && env[k] !== '')
      .map((k) => [k, env[k]]),
  );
  const r = ControlPlaneConfigSchema.safeParse(picked);
  if (!r.success) throw new ConfigError(r.error.issues.map((i) => `${i.path.join('.')}: ${i.message} (got ${JSON.stringify(picked[String(i.path[0])])})`));
  return r.data;
}

/** the broker URL ingest subscribes to */
export function mqttUrlOf(c: ControlPlaneConfig, embeddedPort: number): string {
  if (c.HCP_BROKER === 'external') return c.HCP_MQTT_URL ?? `mqtt://${c.HCP_MQTT_HOST}:${c.HCP_MQTT_PORT}`;
  return `mqtt://127.0.0.1:${embeddedPort}`;
}
