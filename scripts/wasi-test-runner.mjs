// Runs a Rust test binary built for wasm32-wasip1 under node's WASI (preview 1), as cargo's
// runner for `make test-wasm`:
//
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings scripts/wasi-test-runner.mjs" \
//     cargo test -p cluster-image-policy --target wasm32-wasip1 --lib
//
// The module's unit tests then run where the module runs: a 32-bit `usize`, wasi-libc's
// allocator, the features the wasm build resolves. Native tests cannot see what differs there
// (`list.MinItems(4294967296)` was read as `list.MinItems(0)` by the wasm module alone).
//
// The whole file system is preopened (tests read their corpus through CARGO_MANIFEST_DIR); the
// environment is passed on. The waPC host functions a test binary imports throw when called:
// unit tests mock the host in Rust and never reach them. The exit code is the test binary's
// (a panic aborts the binary: wasm32-wasip1 is a panic=abort target).
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const [, , module, ...args] = process.argv;
const wasi = new WASI({
  version: 'preview1',
  args: [module, ...args],
  env: process.env,
  preopens: { '/': '/' },
  returnOnExit: true,
});
const compiled = await WebAssembly.compile(await readFile(module));
const imports = wasi.getImportObject();
for (const { module: from, name, kind } of WebAssembly.Module.imports(compiled)) {
  if (imports[from]?.[name] !== undefined) continue;
  if (kind !== 'function') throw new Error(`unsupported import ${from}.${name} (${kind})`);
  imports[from] ??= {};
  imports[from][name] = () => {
    throw new Error(`host function ${from}.${name} is not available to unit tests`);
  };
}
const instance = await WebAssembly.instantiate(compiled, imports);
process.exitCode = wasi.start(instance);
