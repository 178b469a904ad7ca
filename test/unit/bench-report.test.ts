import { describe, expect, it } from 'vitest';
import { spread } from '../../scripts/bench/cold';
import {
  COLD_SECRETS_END,
  COLD_SECRETS_START,
  coldSecretsSection,
  countRate,
  renderColdSecrets,
  replaceColdSecrets,
  type ColdSecretsReport,
  judgeTargets,
  README_TABLE_END,
  README_TABLE_START,
  replaceReadmeTable,
  type BenchReport,
  type SizeResult,
} from '../../scripts/bench/report';

const p = { p50: 1, p95: 2 };

function size(label: string, shape: SizeResult['shape'], rows: number, db: { seed: number; exact: number; dflt: number }): SizeResult {
  return {
    label,
    shape,
    rows,
    queuedTarget: 10_000,
    counts: { QUEUED: 10_000, RUNNING: 1_000, SUCCEEDED: rows * 0.88, FAILED: rows * 0.09, CANCELLED: rows * 0.03 },
    tableBytes: rows * 455,
    indexBytes: rows * 120,
    bytesPerRow: 455,
    allVisible: 1,
    reused: true,
    buildSeconds: 0,
    db: { rounds: 7, seedMs: db.seed, seedPerQueryMs: [1, 2, 3, 4], exactMs: db.exact, exactPlanningMs: 0.5, defaultMs: db.dflt, defaultPlanningMs: 1, alertingMs: 3, seqScansOnRuns: 0 },
    e2e: { ticks: 50, seedTicks: 50, seed: p, exact: p, default: p, connect: p },
    estimatedStatuses: ['SUCCEEDED'],
    largestEstimateError: { status: 'SUCCEEDED', error: 0.002 },
    exactCountsVerified: true,
  };
}

function report(sizes: SizeResult[]): BenchReport {
  return {
    date: '2026-12-01T04:00:00.000Z',
    finished: '2026-12-01T04:30:00.000Z',
    command: 'npm run bench -- --sizes 1m,10m@1m',
    machine: { cpus: 2, cpuModel: 'x', memGiB: 8, os: 'Linux', node: 'v24', loadBefore: [3, 2, 1], loadAfter: [3, 2, 1] },
    postgres: { version: '15', settings: [] },
    estimateAbove: 100_000,
    sizes,
    artifact: { zipBytes: 1, entries: [], bundleBytes: 1, runs: 3, processWithRequireMs: 1, processBaselineMs: 1, requireMs: 1 },
  };
}

describe('judgeTargets', () => {
  it('judges the seed ratio per shape (10x newest, 5x spread) and the 10M growth against 1M', () => {
    const verdicts = judgeTargets(
      report([
        size('1m', 'newest', 1e6, { seed: 600, exact: 40, dflt: 10 }),
        size('10m@1m', 'newest', 1e7, { seed: 9000, exact: 900, dflt: 14 }),
        size('1m', 'spread', 1e6, { seed: 250, exact: 60, dflt: 55 }),
        size('10m@1m', 'spread', 1e7, { seed: 3000, exact: 900, dflt: 90 }),
      ]),
    );
    const met = Object.fromEntries(verdicts.filter((v) => v.met !== undefined).map((v) => [v.name.split(' ')[0] + (v.name.includes('within') ? ' growth' : ' seed'), v.met]));
    expect(met).toEqual({ 'newest: seed': true, 'newest: growth': true, 'spread: seed': false, 'spread: growth': false });
  });

  it('judges growth on the side-by-side timings when the run has them', () => {
    const one = size('1m', 'newest', 1e6, { seed: 600, exact: 40, dflt: 10 });
    const ten = size('10m@1m', 'newest', 1e7, { seed: 9000, exact: 900, dflt: 30 });
    // Measured minutes apart 3x; side by side 1.2x.
    one.db.defaultSideBySideMs = 12;
    ten.db.defaultSideBySideMs = 14.4;
    const growth = judgeTargets(report([one, ten])).find((v) => v.name.includes('within'))!;
    expect(growth.met).toBe(true);
    expect(growth.detail).toMatch(/^14\.4 ms vs 12\.0 ms = 1\.20x, timed side by side/);
  });

  it('judges the flow target at 10M: the flow SELECT and its budget statement within 5 ms, verified, no sequential scan', () => {
    const flowed = (flowMs: number, verified = true) => {
      const s = size('10m@1m', 'newest', 1e7, { seed: 9000, exact: 900, dflt: 14 });
      s.db.flowMs = flowMs;
      s.db.flowWideMs = flowMs * 5;
      s.db.budgetStatementMs = 0.05;
      s.flow = { windowSeconds: 300, wideWindowSeconds: 3600, rows: { started: 95, finished: 96 }, wideRows: { started: 1140, finished: 1141 }, verified };
      return judgeTargets(report([s])).find((v) => v.name.includes('flow figures'))!;
    };
    expect(flowed(1.2)).toMatchObject({ met: true });
    expect(flowed(1.2).detail).toMatch(/^1\.20 ms \(the flow SELECT\) \+ 0\.05 ms \(its budget statement\) = 1\.25 ms, over 95 runs started and 96 finished/);
    expect(flowed(4.99).met).toBe(false);
    expect(flowed(1.2, false).met).toBe(false);
    expect(judgeTargets(report([size('10m@1m', 'newest', 1e7, { seed: 9000, exact: 900, dflt: 14 })])).find((v) => v.name.includes('flow figures'))).toMatchObject({ met: undefined });
  });

  it('says what was not run instead of judging it', () => {
    const verdicts = judgeTargets(report([size('1m', 'newest', 1e6, { seed: 600, exact: 40, dflt: 10 })]));
    expect(verdicts.find((v) => v.name.includes('within'))).toMatchObject({ met: undefined, detail: 'sizes 1m and 10m@1m not both run' });
  });
});

describe('countRate', () => {
  it('is the estimated statuses counted over the time exact mode spent on them', () => {
    // 880,000 SUCCEEDED runs; exact took 44 ms more than the default.
    expect(countRate(size('1m', 'newest', 1e6, { seed: 600, exact: 54, dflt: 10 }))).toBeCloseTo(20e6);
    expect(countRate(size('1m', 'newest', 1e6, { seed: 600, exact: 10, dflt: 12 }))).toBeUndefined();
  });
});

describe('replaceReadmeTable', () => {
  const readme = `# x\n\n${README_TABLE_START}\nold table\n${README_TABLE_END}\n\nafter\n`;

  it('replaces only what is between the markers, keeping them for the next run', () => {
    const out = replaceReadmeTable(readme, report([size('1m', 'spread', 1e6, { seed: 250, exact: 60, dflt: 20 })]));
    expect(out).not.toContain('old table');
    expect(out).toContain(`${README_TABLE_START}\n| active runs |`);
    expect(out).toContain('| spread through the history | 1M | 20.0 ms | 60.0 ms | 250 ms |');
    expect(out.endsWith(`${README_TABLE_END}\n\nafter\n`)).toBe(true);
    expect(replaceReadmeTable(out, report([]))).toContain(README_TABLE_END);
  });

  it('refuses a README without the markers', () => {
    expect(() => replaceReadmeTable('# x\n', report([]))).toThrow(/markers/);
  });
});

describe('the cold start with a secret from SSM (--cold-secrets)', () => {
  const sp = (median: number) => ({ runs: 15, median, p25: median - 1, p75: median + 1, min: median - 2, max: median + 2 });
  const t = (wall: number, cpu = wall / 2) => ({ wallMs: sp(wall), cpuMs: sp(cpu) });
  const cold = (readAdds: number): ColdSecretsReport => ({
    date: '2026-12-02T04:00:00.000Z',
    command: 'npm run bench -- --cold-secrets --against /tmp/sdk',
    machine: { cpus: 2, cpuModel: 'x', memGiB: 8, os: 'Linux', node: 'v24', loadBefore: [3, 2, 1], loadAfter: [3, 2, 1] },
    sources: { 'no SDK (aws4), this tree': 'commit abc', 'AWS SDK v3 (import)': 'commit def' },
    cold: {
      runs: 15,
      node: t(50),
      variants: [
        { label: 'no SDK (aws4), this tree', loadsSdk: false, require: t(90), plain: t(100), ssm: t(100 + readAdds), readAdds: t(readAdds) },
        { label: 'AWS SDK v3 (import)', loadsSdk: true, require: t(90), plain: t(100), ssm: t(1100), readAdds: t(1000, 400) },
      ],
    },
  });

  it('spread: median, nearest-rank quartiles and range', () => {
    expect(spread([5, 1, 4, 2, 3])).toEqual({ runs: 5, median: 3, p25: 2, p75: 4, min: 1, max: 5 });
  });

  it('renders both variants and judges the target on the SDK-free one', () => {
    const met = renderColdSecrets(cold(12.5));
    expect(met.startsWith(COLD_SECRETS_START) && met.endsWith(COLD_SECRETS_END)).toBe(true);
    expect(met).toContain('| AWS SDK v3 (import) | 90.0 (89.0–91.0; 88.0–92.0) | 100 (99.0–101; 98.0–102) | 1100 (1099–1101; 1098–1102) | 1000 (999–1001; 998–1002) |');
    expect(met).toContain('| AWS SDK v3 (import) | 45.0 (44.0–46.0; 43.0–47.0) | 50.0 (49.0–51.0; 48.0–52.0) | 550 (549–551; 548–552) | 400 (399–401; 398–402) |');
    expect(met).toContain('no SDK (aws4), this tree: CPU time **met**, 6.25 ms (median); wall time **met**, 12.5 ms (median); against 400 ms CPU and 1000 ms wall for AWS SDK v3 (import).');
    expect(renderColdSecrets(cold(80))).toContain('CPU time **met**, 40.0 ms (median); wall time **NOT met**, 80.0 ms (median)');
    expect(renderColdSecrets({ ...cold(-3), cold: { ...cold(-3).cold } })).toContain('-3.00 (-4.00–-2.00');
  });

  it('goes before "## Targets" the first time, replaces itself after, and a full render keeps it', () => {
    const page = '# Benchmarks\n\n## Figures\n\nx\n\n## Targets\n\nt\n';
    const once = replaceColdSecrets(page, renderColdSecrets(cold(10)));
    expect(once.indexOf(COLD_SECRETS_START)).toBeLessThan(once.indexOf('## Targets'));
    expect(once.indexOf(COLD_SECRETS_START)).toBeGreaterThan(once.indexOf('## Figures'));
    const twice = replaceColdSecrets(once, renderColdSecrets(cold(20)));
    expect(twice.split(COLD_SECRETS_START)).toHaveLength(2);
    expect(twice).toContain('wall time **met**, 20.0 ms (median)');
    expect(replaceColdSecrets(page, coldSecretsSection(twice)!)).toBe(twice);
    expect(coldSecretsSection(page)).toBeUndefined();
  });
});
