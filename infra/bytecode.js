// osls plugin: ships compiled bytecode in every Python function's zip (infra/bytecode.py says why).
//
// Listed after serverless-python-requirements in serverless.yml, so its hooks run once the
// requirements are injected: the zips then hold everything the function imports. It runs on
// `osls package` and `osls deploy` alike (and `osls deploy function`), with an interpreter of the
// runtime's Python version (python3.11 for runtime python3.11): SLS_BYTECODE_PYTHON if set, else
// `python3.X` on PATH, else one installed by pyenv. Without one, packaging fails rather than ship
// zips whose every cold start compiles from source.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

function versionOf(python) {
  const result = spawnSync(python, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], {
    encoding: 'utf8',
  });
  return result.status === 0 ? result.stdout.trim() : null;
}

function findPython(version) {
  const candidates = [];
  if (process.env.SLS_BYTECODE_PYTHON) candidates.push(process.env.SLS_BYTECODE_PYTHON);
  candidates.push(`python${version}`);
  const pyenv = path.join(process.env.PYENV_ROOT || path.join(os.homedir(), '.pyenv'), 'versions');
  if (fs.existsSync(pyenv)) {
    for (const installed of fs.readdirSync(pyenv).sort()) {
      if (installed.startsWith(`${version}.`)) {
        candidates.push(path.join(pyenv, installed, 'bin', `python${version}`));
      }
    }
  }
  return candidates.find((python) => versionOf(python) === version) || null;
}

class Bytecode {
  constructor(serverless, options, { log } = {}) {
    this.serverless = serverless;
    this.options = options || {};
    this.log = log || { notice: (message) => serverless.cli.log(message) };
    this.hooks = {
      'after:package:createDeploymentArtifacts': () => this.compile(),
      'after:deploy:function:packageFunction': () => this.compile(),
    };
  }

  artifacts() {
    const service = this.serverless.service;
    const providerRuntime = service.provider.runtime || '';
    const byRuntime = new Map();
    const names = this.options.function ? [this.options.function] : service.getAllFunctions();
    for (const name of names) {
      const func = service.getFunction(name);
      const runtime = func.runtime || providerRuntime;
      const artifact = (func.package && func.package.artifact) || (service.package && service.package.artifact);
      if (!runtime.startsWith('python') || !artifact) continue;
      const zips = byRuntime.get(runtime) || new Set();
      zips.add(path.resolve(this.serverless.serviceDir, artifact));
      byRuntime.set(runtime, zips);
    }
    return byRuntime;
  }

  compile() {
    const script = path.join(__dirname, 'bytecode.py');
    for (const [runtime, zips] of this.artifacts()) {
      const version = runtime.replace('python', '');
      const python = findPython(version);
      if (!python) {
        throw new this.serverless.classes.Error(
          `infra/bytecode.js: compiling bytecode for ${runtime} needs Python ${version}: ` +
            `install python${version} or set SLS_BYTECODE_PYTHON to one`
        );
      }
      this.log.notice(`Compiling bytecode with Python ${version} into ${zips.size} artifact(s)`);
      const result = spawnSync(python, [script, '--python-version', version, ...zips], {
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      if (result.status !== 0) {
        throw new this.serverless.classes.Error(`infra/bytecode.py failed (exit ${result.status})`);
      }
    }
  }
}

module.exports = Bytecode;
