// The nvidia-smi CSV line a GPU driver reads (shared/reference/device-protocols.md):
//   nvidia-smi --query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,
//              temperature.gpu,power.draw,clocks.sm --format=csv,noheader,nounits
// Fields are separated by ", "; a missing value prints "[N/A]".

export const NVIDIA_SMI_QUERY_FIELDS = [
  'index',
  'uuid',
  'name',
  'utilization.gpu',
  'memory.used',
  'memory.total',
  'temperature.gpu',
  'power.draw',
  'clocks.sm',
] as const;

export const NVIDIA_SMI_ARGS = [
  `--query-gpu=${NVIDIA_SMI_QUERY_FIELDS.join(',')}`,
  '--format=csv,noheader,nounits',
];

const NA = '[N/A]';

export interface NvidiaSmiRow {
  index: number;
  uuid: string;
  name: string;
  utilizationPct: number | null;
  memoryUsedMib: number | null;
  memoryTotalMib: number | null;
  temperatureC: number | null;
  powerW: number | null;
  smClockMhz: number | null;
}

export class NvidiaSmiParseError extends Error {
  readonly code = 'bad_reply';
  constructor(message: string) {
    super(message);
    this.name = 'NvidiaSmiParseError';
  }
}

const num = (v: number | null, digits = 0): string => (v === null || !Number.isFinite(v) ? NA : v.toFixed(digits));

export function formatNvidiaSmiLine(row: NvidiaSmiRow): string {
  // nvidia-smi prints power.draw with two decimals and the other numeric fields as integers.
  return [
    String(row.index),
    row.uuid || NA,
    row.name || NA,
    num(row.utilizationPct),
    num(row.memoryUsedMib),
    num(row.memoryTotalMib),
    num(row.temperatureC),
    num(row.powerW, 2),
    num(row.smClockMhz),
  ].join(', ');
}

function parseNum(field: string, what: string): number | null {
  if (field === NA || field === '[Not Supported]' || field === '[Unknown Error]') return null;
  // Without `nounits` nvidia-smi appends a unit (" %", " MiB", " W", " MHz"); accept both forms.
  const m = /^(-?\d+(?:\.\d+)?)(?: ?(?:%|MiB|W|MHz|C))?$/.exec(field);
  if (!m) throw new NvidiaSmiParseError(`${what}: not a number: ${JSON.stringify(field)}`);
  return Number(m[1]);
}

export function parseNvidiaSmiLine(line: string): NvidiaSmiRow {
  const fields = line.trim().split(', ');
  if (fields.length !== NVIDIA_SMI_QUERY_FIELDS.length) {
    throw new NvidiaSmiParseError(
      `expected ${NVIDIA_SMI_QUERY_FIELDS.length} fields, got ${fields.length}: ${JSON.stringify(line)}`,
    );
  }
  const f = (i: number): string => fields[i] ?? NA;
  const index = parseNum(f(0), 'index');
  if (index === null) throw new NvidiaSmiParseError('index is missing');
  return {
    index,
    uuid: f(1) === NA ? '' : f(1),
    name: f(2) === NA ? '' : f(2),
    utilizationPct: parseNum(f(3), 'utilization.gpu'),
    memoryUsedMib: parseNum(f(4), 'memory.used'),
    memoryTotalMib: parseNum(f(5), 'memory.total'),
    temperatureC: parseNum(f(6), 'temperature.gpu'),
    powerW: parseNum(f(7), 'power.draw'),
    smClockMhz: parseNum(f(8), 'clocks.sm'),
  };
}

/** Parses the whole output (one line per GPU), skipping blank lines. */
export function parseNvidiaSmiOutput(stdout: string): NvidiaSmiRow[] {
  return stdout
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '')
    .map(parseNvidiaSmiLine);
}
