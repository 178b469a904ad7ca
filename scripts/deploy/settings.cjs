/**
 * The framework's ${file(./scripts/deploy/settings.cjs)} resolver loads this
 * shim, which runs scripts/deploy/settings.ts (through tsx, a devDependency, as
 * the deploy runs from node_modules anyway): the deploy's rules are written in
 * TypeScript with the very settings table and parser the functions use.
 */

'use strict';

const path = require('node:path');
const { require: tsRequire } = require('tsx/cjs/api');

const { deploySettings, commandOf, overriddenByEnvironment, readStageFile, DeploySettingsError } = tsRequire('./settings.ts', __filename);

/** The framework resolves the file more than once; say the override once. */
let said = false;

module.exports = async ({ options }) => {
  const serviceDir = path.resolve(__dirname, '..', '..');
  const stage = options.stage || 'dev';
  try {
    const stageFile = readStageFile(serviceDir, stage);
    const overridden = stageFile ? overriddenByEnvironment(process.env, stageFile.settings) : [];
    if (overridden.length > 0 && !said) process.stderr.write(`xyn-metrics deploy settings: the environment overrides ${stageFile.file} for ${overridden.join(', ')}\n`);
    said = true;
    return deploySettings(process.env, {
      region: options.region || process.env.AWS_REGION,
      stage,
      command: commandOf(process.argv),
      serviceDir,
      stageSettings: stageFile?.settings,
      stageFile: stageFile?.file,
    });
  } catch (error) {
    if (error instanceof DeploySettingsError) throw new Error(`xyn-metrics deploy settings: ${error.message}`);
    throw error;
  }
};
