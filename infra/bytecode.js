// osls plugin: ships compiled bytecode in every Python function's zip and in the layers' zips
// (the requirements layer of serverless-python-requirements); infra/bytecode.py says why.
//
// Listed after serverless-python-requirements in serverless.yml, so its hooks run once that plugin
// has built the requirements layer: the zips then hold everything the functions import. It runs on
// `osls package` and `osls deploy` alike (and `osls deploy function`, which uploads the function's zip
// only), with an interpreter of the runtime's Python version (python3.11 for runtime python3.11; a
// layer's `compatibleRuntimes`, else the provider's runtime): SLS_BYTECODE_PYTHON if set, else
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
    this.builtLayers = new Set();
    this.hooks = {
      // After osls has zipped the functions, before serverless-python-requirements' after-hook zips
      // the requirements layer: it then finds the zip built here and keeps it.
      'package:createDeploymentArtifacts': () => this.buildRequirementsLayer(),
      'after:package:createDeploymentArtifacts': () => this.compile(),
      'after:deploy:function:packageFunction': () => this.compile(),
    };
  }

  // serverless-python-requirements with `layer:` installs the requirements into
  // .serverless/requirements and, unless .serverless/pythonRequirements.zip exists, zips them itself
  // (JavaScript deflate, about 25 s of CPU, with the files' install times). Built here instead, in
  // one pass with their bytecode: a few seconds, and the same bytes for the same requirements.
  buildRequirementsLayer() {
    const service = this.serverless.service;
    const settings = (service.custom && service.custom.pythonRequirements) || {};
    if (!settings.layer || settings.useStaticCache !== false || this.options.function) return;
    const source = path.join(this.serverless.serviceDir, '.serverless', 'requirements');
    const target = path.join(this.serverless.serviceDir, '.serverless', 'pythonRequirements.zip');
    if (!fs.existsSync(source)) return; // no requirements: no layer either
    this.run(service.provider.runtime, ['--layer', source, target]);
    this.builtLayers.add(target);
  }

  artifacts() {
    const service = this.serverless.service;
    const providerRuntime = service.provider.runtime || '';
    const byRuntime = new Map();
    const add = (runtime, artifact) => {
      const zips = byRuntime.get(runtime) || new Set();
      zips.add(path.resolve(this.serverless.serviceDir, artifact));
      byRuntime.set(runtime, zips);
    };
    const names = this.options.function ? [this.options.function] : service.getAllFunctions();
    for (const name of names) {
      const func = service.getFunction(name);
      const runtime = func.runtime || providerRuntime;
      const artifact = (func.package && func.package.artifact) || (service.package && service.package.artifact);
      if (runtime.startsWith('python') && artifact) add(runtime, artifact);
    }
    if (this.options.function) return byRuntime; // `deploy function` uploads no layer
    for (const name of service.getAllLayers()) {
      const layer = service.getLayer(name);
      // serverless-python-requirements sets `artifact`; osls sets `package.artifact` for a `path` layer.
      const artifact = (layer.package && layer.package.artifact) || layer.artifact;
      const runtimes = (layer.compatibleRuntimes || [providerRuntime]).filter((r) => r.startsWith('python'));
      if (!artifact || runtimes.length === 0) continue;
      if (this.builtLayers.has(path.resolve(this.serverless.serviceDir, artifact))) continue;
      if (runtimes.length > 1) {
        throw new this.serverless.classes.Error(
          `infra/bytecode.js: layer ${name} is for ${runtimes.join(', ')}; bytecode is for one Python version`
        );
      }
      add(runtimes[0], artifact);
    }
    return byRuntime;
  }

  compile() {
    for (const [runtime, zips] of this.artifacts()) this.run(runtime, [...zips]);
  }

  run(runtime, args) {
    const version = runtime.replace('python', '');
    const python = findPython(version);
    if (!python) {
      throw new this.serverless.classes.Error(
        `infra/bytecode.js: compiling bytecode for ${runtime} needs Python ${version}: ` +
          `install python${version} or set SLS_BYTECODE_PYTHON to one`
      );
    }
    this.log.notice(`Compiling bytecode with Python ${version}`);
    const script = path.join(__dirname, 'bytecode.py');
    const result = spawnSync(python, [script, '--python-version', version, ...args], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, PYTHONHASHSEED: '0' }, // reproducible zips (infra/bytecode.py)
    });
    if (result.status !== 0) {
      throw new this.serverless.classes.Error(`infra/bytecode.py failed (exit ${result.status})`);
    }
  }
}

module.exports = Bytecode;
