#!/usr/bin/env node
// Verifies a key-signed sigstore bundle made by testkit with npm's @sigstore/verify, offline.
//
//   node verify-bundle-sigstore-js.js TRUSTED_ROOT BUNDLE DIGEST PUBLIC_KEY_PEM
//
// An independent implementation of key-signed bundles (publicKey hint, DSSE, Rekor v1 `dsse`
// entry with SET and inclusion proof): what sigstore-python does not verify. The statement must
// be cosign's sign statement for DIGEST. Prints "verified …" and exits 0, or exits 1 with the
// reason. Modules are resolved from target/sigstore-node (`make sigstore-node`).
'use strict';
const fs = require('fs');
const path = require('path');
const modules = path.join(__dirname, '..', 'target', 'sigstore-node', 'node_modules');
const { Verifier, toSignedEntity, toTrustMaterial } = require(path.join(modules, '@sigstore/verify'));
const { bundleFromJSON } = require(path.join(modules, '@sigstore/bundle'));
const { TrustedRoot } = require(path.join(modules, '@sigstore/protobuf-specs'));

const [rootPath, bundlePath, digest, keyPath] = process.argv.slice(2);
try {
  const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8')));
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const material = bundle.verificationMaterial.content;
  if (material.$case !== 'publicKey') throw new Error(`not a key-signed bundle: ${material.$case}`);
  const keyPem = fs.readFileSync(keyPath, 'utf8');
  const der = require('crypto').createPublicKey(keyPem).export({ format: 'der', type: 'spki' });
  const trust = toTrustMaterial(root, { [material.publicKey.hint]: { rawBytes: der } });
  const verifier = new Verifier(trust, { tlogThreshold: 1, ctlogThreshold: 0, timestampThreshold: 1 });
  verifier.verify(toSignedEntity(bundle));
  const envelope = bundle.content.dsseEnvelope;
  const statement = JSON.parse(Buffer.from(envelope.payload).toString('utf8'));
  const [algorithm, hex] = digest.split(':');
  const named = (statement.subject || []).some((s) => (s.digest || {})[algorithm] === hex);
  if (envelope.payloadType !== 'application/vnd.in-toto+json' || !named) {
    throw new Error(`the statement does not name ${digest}`);
  }
  console.log(`verified ${statement.predicateType} for ${digest}`);
} catch (error) {
  console.log(`not verified: ${error.message || error}`);
  process.exit(1);
}
