// Real CUE (cuelang.org/go v0.4.3 compiled to wasm: npm's cue-wasm@1.0.0, installed by
// `make test-tools` into target/test-tools/cue-wasm) deciding generated policies as
// policy-controller decides them (pkg/policy/eval.go, evaluateCue):
//
//   v := cuecontext.New().CompileString(policy); v.Err() != nil     -> the policy is refused
//   a := ctx.CompileBytes(input); v.Unify(a).Validate() != nil      -> the input conflicts
//
// cue-wasm exposes one Go call only, `_toJSONImpl(text)`: CompileString(text), Err(), then
// MarshalJSON(). So:
//  * the policy alone: Err() non-nil (its message is not a "marshal error") is a refusal;
//  * the policy unified with the input: the input's JSON text is appended to the policy as an
//    embedded struct (the same conjuncts as Value.Unify; there are no definitions, so no
//    closedness differs), and Err(), which reports every error of the value but incomplete
//    ones, is the verdict: non-nil is a conflict;
//  * when Err() is nil, MarshalJSON() may still fail on a value that is not concrete (a field
//    the policy names but the input lacks, `string`, `>3`, a disjunction without default).
//    Validate() without cue.Concrete accepts those, so "cannot convert incomplete value" is
//    answered as ok (with the message in "incomplete"); any other marshal error is answered
//    as "unknown" and fails the comparison (never taken as a verdict either way). One more is
//    known to be incomplete: struct.MinFields failing on an open struct (every JSON object is
//    open) is coded IncompleteError by CUE's pkg/struct (more fields may come), which Err()
//    leaves out and Validate() without Concrete ignores; it is answered as ok as well.
//
// Input: a file of JSON lines {"policy": <CUE text>, "inputs": [<JSON text>, ...]}; the inputs
// are JSON *texts* so that numbers reach CUE as written (1.0 stays a float, big integers stay
// integers; JSON.parse would turn them into doubles). Output: one JSON line per policy,
// {"policy_error": msg} or {"verdicts": [{"ok": true} | {"ok": true, "incomplete": msg} |
// {"conflict": msg} | {"unknown": msg}, ...]}.
//
// Usage: node scripts/cue-eval.mjs <cases.jsonl>, with CUE_WASM_DIR the npm prefix holding
// node_modules/cue-wasm (default: target/test-tools/cue-wasm beside this script's repository).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const prefix = process.env.CUE_WASM_DIR
  ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'target', 'test-tools', 'cue-wasm');
// The package's ESM entry: its CommonJS one requires a CommonJS file the package marks as ESM.
const entry = join(prefix, 'node_modules', 'cue-wasm', 'dist', 'cue-wasm-index.modern.js');
const CUE = await import(pathToFileURL(entry).href);
await CUE.init();
const toJSON = globalThis.CueWasmAPI._toJSONImpl;

const MARSHAL = 'cue: marshal error:';
const INCOMPLETE = /cannot convert incomplete value|does not satisfy struct\.MinFields\(/;

function verdict(text) {
  const { error } = toJSON(text);
  if (error === null || error === undefined || error === '') return { ok: true };
  const message = String(error);
  if (!message.startsWith(MARSHAL)) return { conflict: message };
  if (INCOMPLETE.test(message)) return { ok: true, incomplete: message };
  return { unknown: message };
}

const out = [];
for (const line of readFileSync(process.argv[2], 'utf8').split('\n')) {
  if (line.trim() === '') continue;
  const { policy, inputs } = JSON.parse(line);
  const alone = verdict(policy);
  if (alone.conflict !== undefined) {
    out.push(JSON.stringify({ policy_error: alone.conflict }));
    continue;
  }
  if (alone.unknown !== undefined) {
    out.push(JSON.stringify({ verdicts: inputs.map(() => alone) }));
    continue;
  }
  out.push(JSON.stringify({ verdicts: inputs.map((input) => verdict(`${policy}\n${input}\n`)) }));
}
// The Go program never returns (it serves its functions): exit once stdout is flushed (a pipe
// is written asynchronously; exiting at once would cut the answers short).
process.stdout.write(out.join('\n') + (out.length ? '\n' : ''), () => process.exit(0));
