/**
 * AWS's cfn-lint on packaged CloudFormation templates, and the warnings the
 * framework's templates carry that real CloudFormation accepts, each with why
 * it is harmless. A template is clean when it has no error and no warning but
 * these (informational matches are not reported by default).
 */

import { spawnSync } from 'node:child_process';
import { findAwsPython } from '../../scripts/support/aws-tools';

export interface LintMatch {
  rule: string;
  level: 'Error' | 'Warning' | 'Informational';
  message: string;
  /** The path in the template, e.g. Resources/CollectLambdaFunction/DependsOn/1. */
  path: string;
  file: string;
}

export interface AcceptedWarning {
  rule: string;
  path: RegExp;
  why: string;
}

export const ACCEPTED_WARNINGS: AcceptedWarning[] = [
  {
    rule: 'W3005',
    path: /^Resources\/(Collect|Metrics)LambdaFunction\/DependsOn\/\d+$/,
    why:
      "a DependsOn on the function's role beside the Fn::GetAtt of its Role: osls writes both for a role named by its logical id " +
      '(package/compile/functions.js, compileRole); the same order, twice',
  },
  {
    rule: 'W3005',
    path: /^Resources\/HttpApiRouteGetMetrics\/DependsOn$/,
    why: "a DependsOn on the route's integration beside the Ref in its Target: osls writes both (package/compile/events/http-api.js)",
  },
];

/** The Python that has cfn-lint (scripts/support/aws-tools.ts), or an error saying how to get it. */
export function awsPython(): string {
  const python = findAwsPython();
  if (!python) throw new Error('no Python here imports moto, boto3 and cfn-lint: npm test installs them (scripts/support/services.ts), or see scripts/support/aws-tools.ts');
  return python;
}

/** Lint the templates in one cfn-lint run, for the region they are deployed to. */
export function lintTemplates(files: string[], region: string, python = awsPython()): LintMatch[] {
  const run = spawnSync(
    python,
    ['-c', "import sys; sys.argv[0] = 'cfn-lint'; from cfnlint.runner import main; sys.exit(main())", '--format', 'json', '--regions', region, '--', ...files],
    { encoding: 'utf8', timeout: 180_000 },
  );
  // Its exit status is a bit mask of the levels found (2 error, 4 warning, 8 informational); 1 is a failure of its own.
  if (run.status === null || run.status === 1 || run.status > 15) throw new Error(`cfn-lint failed (exit ${run.status ?? run.signal}): ${(run.stderr || run.stdout).slice(-2000)}`);
  return (JSON.parse(run.stdout || '[]') as any[]).map((m) => ({
    rule: m.Rule.Id,
    level: m.Level,
    message: m.Message,
    path: (m.Location.Path as unknown[]).join('/'),
    file: m.Filename,
  }));
}

export function isAccepted(match: LintMatch): boolean {
  return match.level === 'Warning' && ACCEPTED_WARNINGS.some((w) => w.rule === match.rule && w.path.test(match.path));
}

/** What makes a template unclean, as lines for an assertion message. */
export function unacceptedMatches(matches: LintMatch[]): string[] {
  return matches.filter((m) => !isAccepted(m)).map((m) => `${m.file}: ${m.level} ${m.rule} at ${m.path}: ${m.message}`);
}
