// `npm run build:agent`: the agent as one executable, dist/hcp-agent, with no Node install
// needed where it runs. Node's single-executable-application support (Node 20):
//   1. esbuild bundles agent/main.ts and everything it imports into one CommonJS script
//      (SEA runs exactly one CJS script whose require() only reaches built-in modules);
//   2. `node --experimental-sea-config` turns that script into a blob (without a code cache);
//   3. postject injects the blob into a copy of this Node binary, which is renamed into place.
// agent/main.ts uses top-level await, which CommonJS cannot express, so for the bundle only
// its statements are wrapped in an async function (see wrapTopLevelAwait); the file itself is
// not changed.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { build, type Plugin } from 'esbuild';
import ts from 'typescript';

const ROOT = resolve(import.meta.dirname, '..');
const ENTRY = join(ROOT, 'agent/main.ts');
const OUT = join(ROOT, 'dist/hcp-agent');
/**
 * The bundle the binary runs, kept beside it: the same code under a plain `node`, for what the
 * single executable cannot do (Node 20's SEA writes an empty heap snapshot: bench/agent.ts
 * --heap-snapshot-dir runs this instead)
 */
export const BUNDLE = join(ROOT, 'dist/hcp-agent.cjs');
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const { inject } = createRequire(import.meta.url)('postject') as {
  inject(file: string, resource: string, data: Buffer, options: { sentinelFuse: string }): Promise<void>;
};

/**
 * Optional modules their users require inside try/catch (ws: bufferutil, utf-8-validate; debug:
 * supports-color). None is installed; each is bundled as a module that throws "not found", so
 * the user takes its fallback. Left as a real require(), SEA would print a warning about
 * loading from disk at every start.
 */
const OPTIONAL = ['bufferutil', 'utf-8-validate', 'supports-color'];

const optionalMissing: Plugin = {
  name: 'optional-missing',
  setup(b) {
    const filter = new RegExp(`^(${OPTIONAL.join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'optional-missing' }));
    b.onLoad({ filter: /.*/, namespace: 'optional-missing' }, (args) => ({
      contents: `throw Object.assign(new Error(${JSON.stringify(`Cannot find module '${args.path}' (not bundled into hcp-agent)`)}), { code: 'MODULE_NOT_FOUND' });`,
      loader: 'js',
    }));
  },
};

/**
 * The source of a module with top-level await rewritten so it is valid CommonJS once bundled:
 * import declarations stay at the top (they are hoisted anyway), every other statement moves,
 * in order, into an async function that is called once. Returns undefined when the module has
 * no top-level await (nothing to do).
 */
export function wrapTopLevelAwait(source: string, fileName: string): string | undefined {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const hasTla = (node: ts.Node): boolean => {
    if (ts.isFunctionLike(node) || ts.isClassLike(node)) return false;
    if (ts.isAwaitExpression(node) || (ts.isForOfStatement(node) && node.awaitModifier)) return true;
    return ts.forEachChild(node, hasTla) ?? false;
  };
  const imports: string[] = [];
  const body: string[] = [];
  let tla = false;
  let exports = false;
  for (const st of sf.statements) {
    const text = source.slice(st.getFullStart(), st.getEnd());
    if (ts.isImportDeclaration(st) || ts.isImportEqualsDeclaration(st)) {
      imports.push(text);
      continue;
    }
    exports ||= ts.isExportDeclaration(st) || ts.isExportAssignment(st) || (ts.canHaveModifiers(st) && !!ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword));
    tla ||= hasTla(st);
    body.push(text);
  }
  if (!tla) return undefined;
  if (exports) throw new Error(`${fileName}: top-level await together with exports cannot be bundled as CommonJS`);
  return [
    ...imports,
    '\nasync function __hcpAgentMain(): Promise<void> {',
    ...body,
    '\n}\n',
    // what an ESM entry does when its top-level await rejects: print it, exit 1
    '__hcpAgentMain().catch((err: unknown) => { console.error(err); process.exit(1); });\n',
  ].join('');
}

const tlaWrap: Plugin = {
  name: 'wrap-top-level-await',
  setup(b) {
    b.onLoad({ filter: /[\\/]agent[\\/]main\.ts$/ }, (args) => {
      if (resolve(args.path) !== ENTRY) return undefined;
      const source = readFileSync(args.path, 'utf8');
      const wrapped = wrapTopLevelAwait(source, args.path);
      return { contents: wrapped ?? source, loader: 'ts', resolveDir: resolve(args.path, '..') };
    });
  },
};

async function main(): Promise<void> {
  const t0 = performance.now();
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  // private work dir + rename at the end: concurrent builds (a test, a terminal) never see a
  // half-written binary
  const work = mkdtempSync(join(ROOT, 'dist/.build-agent-'));
  try {
    const script = join(work, 'hcp-agent.cjs');
    const result = await build({
      entryPoints: [ENTRY],
      outfile: script,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      plugins: [tlaWrap, optionalMissing],
      // no import.meta in CommonJS: derive it from the script's own path
      define: {
        'import.meta.url': '__hcp_import_meta_url',
        'import.meta.dirname': '__dirname',
        'import.meta.filename': '__filename',
      },
      banner: { js: 'var __hcp_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
      legalComments: 'none',
      // The script's source is a V8 string for the agent's life, beside its copy in the blob's
      // pages. esbuild keeps comments, and a few hold non-Latin-1 characters (—, →), which made
      // V8 store the whole 3.2 MB source as a two-byte string: 6.1 MB of a 49 MB heap at 5,000
      // ASICs (bench/heap-retainers.ts --of '(string)'). Without whitespace and comments it is
      // 2.2 MB of ASCII (esbuild escapes non-ASCII in strings: charset ascii). Names stay as written,
      // so a stack trace still reads, by column in dist/hcp-agent.cjs.
      minifyWhitespace: true,
      logLevel: 'warning',
      metafile: true,
    });
    if (result.errors.length > 0) throw new Error('esbuild failed');
    // Anything still required at run time must be built in: the SEA's require() cannot load
    // files from disk.
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const stray = Object.values(result.metafile.outputs)
      .flatMap((o) => o.imports)
      .filter((i) => i.external && !builtins.has(i.path));
    if (stray.length > 0) throw new Error(`bundle requires modules from disk: ${[...new Set(stray.map((i) => i.path))].join(', ')}`);

    const blob = join(work, 'hcp-agent.blob');
    const seaConfig = join(work, 'sea-config.json');
    // No code cache: it makes the blob 0.4 MB larger and the binary's resident pages 1.6 MB more
    // (at 5,000 ASICs), to save compiling at start what V8 compiles lazily anyway.
    writeFileSync(seaConfig, JSON.stringify({ main: script, output: blob, disableExperimentalSEAWarning: true, useCodeCache: false }, null, 2));
    try {
      execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { cwd: work, stdio: 'pipe' });
    } catch (err) {
      const e = err as { stdout?: Buffer; stderr?: Buffer };
      process.stderr.write(`${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`);
      throw err;
    }

    const exe = join(work, 'hcp-agent');
    copyFileSync(process.execPath, exe);
    chmodSync(exe, 0o755);
    // postject's ELF library warns about every unnamed .note section of the Node binary
    // (harmless); keep any other message
    const warn = console.warn;
    console.warn = (...a: unknown[]) => {
      if (!/^warning: Can't find string offset for section name/.test(String(a[0]))) warn(...a);
    };
    try {
      await inject(exe, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });
    } finally {
      console.warn = warn;
    }
    renameSync(script, BUNDLE);
    renameSync(exe, OUT);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const mb = (statSync(OUT).size / 1024 / 1024).toFixed(1);
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  process.stdout.write(`built ${OUT} (${mb} MiB, node ${process.version}) in ${s}s\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main().catch((err: unknown) => {
    process.stderr.write(`build:agent failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
