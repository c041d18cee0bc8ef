// osls plugin: `osls package` builds offline (no AWS credentials) although the service has a layer.
//
// When it compiles a layer, osls asks CloudFormation for the deployed stack's hash of that layer, so
// that `osls deploy` does not upload a layer it has already deployed
// (https://github.com/serverless/serverless/issues/8187: `package` then needs credentials). That
// lookup only matters to a deploy: for the `package` command alone it is skipped here, and the
// package is the same as a deploy's. `osls deploy` keeps it (and so uploads the requirements layer
// only when its hash changed: infra/bytecode.py writes it reproducibly).
'use strict';

class OfflinePackage {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = {
      'before:package:compileLayers': () => this.skipDeployedLayerLookup(),
    };
  }

  skipDeployedLayerLookup() {
    if (this.serverless.processedInput.commands.join(' ') !== 'package') return;
    const compiler = this.serverless.pluginManager.plugins.find(
      (plugin) => plugin.constructor.name === 'AwsCompileLayers'
    );
    if (!compiler || typeof compiler.compareWithLastLayer !== 'function') {
      throw new this.serverless.classes.Error(
        'infra/offline-package.js: osls no longer has AwsCompileLayers.compareWithLastLayer; check this plugin'
      );
    }
    compiler.compareWithLastLayer = async () => {}; // no deployed stack to compare with
  }
}

module.exports = OfflinePackage;
