// pip flags for serverless-python-requirements: wheels only, for the Lambda runtime's Python,
// architecture and C library, whatever machine runs the packaging.
//
// pip does not widen a `--platform` tag to older glibc versions, so every acceptable manylinux tag is
// listed. A dependency without a wheel for the runtime's OS then fails `make package` instead of
// failing to import on Lambda (`GLIBC_2.28 not found`).
'use strict';

// glibc of each Lambda runtime's OS: python3.11 runs on Amazon Linux 2, newer ones on Amazon Linux 2023.
const GLIBC_MINOR = {
  'python3.10': 26,
  'python3.11': 26,
  'python3.12': 34,
  'python3.13': 34,
  'python3.14': 34,
};
const MACHINE = { x86_64: 'x86_64', arm64: 'aarch64' };

module.exports = async ({ resolveConfigurationProperty }) => {
  const runtime = await resolveConfigurationProperty(['provider', 'runtime']);
  const architecture = (await resolveConfigurationProperty(['provider', 'architecture'])) || 'x86_64';
  const glibc = GLIBC_MINOR[runtime];
  const machine = MACHINE[architecture];
  if (!glibc || !machine) {
    throw new Error(`infra/pip-args.js: add the glibc of runtime ${runtime} / ${architecture}`);
  }
  const tags = [`manylinux2014_${machine}`];
  for (let minor = 17; minor <= glibc; minor += 1) tags.push(`manylinux_2_${minor}_${machine}`);
  return [
    ...tags.map((tag) => `--platform ${tag}`),
    '--implementation cp',
    `--python-version ${runtime.replace('python', '')}`,
    '--only-binary=:all:',
    '--no-compile',
    '--disable-pip-version-check',
  ];
};
