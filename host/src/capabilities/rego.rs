//! Namespace `policy` of binding `cluster-image-policy`: `v1/rego` evaluates a ClusterImagePolicy's
//! Rego `spec.policy` with regorus, as policy-controller evaluates it with OPA: Rego v0 syntax,
//! the query `isCompliant = data.sigstore.isCompliant`, a boolean or a set of
//! `{"result", "error", "warning"}` objects, and policy-controller's messages.
//!
//! Compiled engines are kept per evaluating thread (regorus engines are not `Send`), keyed by
//! the policy text, and every evaluation is bounded in time and in memory ([`memory`]).
//!
//! The regex builtins (`regex.match` and the six others, and OPA's `re_match`) read patterns as
//! Go's `regexp` reads them, as OPA's do: see [`go_regex`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CapabilityError, answer, parse, unknown_operation};
use crate::go_json::go_folds_to;

mod bounded;
mod go_regex;
mod go_strings;
mod go_time;
pub(crate) mod memory;

const REGO: &str = "cluster-image-policy/policy/v1/rego";
const QUERY: &str = "isCompliant = data.sigstore.isCompliant";
/// Compiled policies kept per thread.
const MAX_ENGINES: usize = 32;
/// The longest one evaluation may run (less when the call's deadline comes sooner).
const TIME_LIMIT: Duration = Duration::from_secs(2);
/// How deep `[` and `{` may nest in a Rego text. regorus 0.14's parser first tries each of them
/// as a comprehension, parsing what follows, then parses it again as an array, set or object:
/// the time doubles with each level (16 levels take ≈ 1.3 s, 20 ≈ 25 s, and its own limit of 32
/// would take days), and compiling happens when `cip` loads the settings and on each thread's
/// first evaluation. Twelve levels compile in well under a second; policies nest a handful.
const MAX_BRACKET_NESTING: usize = 12;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    policy: String,
    input: Value,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
struct Answer {
    compliant: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

thread_local! {
    static ENGINES: RefCell<HashMap<String, regorus::Engine>> = RefCell::default();
}

/// Binding `cluster-image-policy`, namespace `policy`.
/// `deadline` is the evaluation's: the evaluation stops at it, or after [`TIME_LIMIT`] if sooner.
pub(super) fn dispatch(operation: &str, payload: &[u8], deadline: Option<Instant>) -> Result<Vec<u8>, CapabilityError> {
    match operation {
        "v1/rego" => {
            let request: Request = parse(REGO, payload)?;
            let result = evaluate_by(&request.policy, &request.input, deadline)
                .map_err(|message| CapabilityError::Failed { call: REGO, message })?;
            answer(REGO, &result)
        }
        other => Err(unknown_operation(other)),
    }
}

/// A compiled engine for `policy`, from the cache or compiled now.
fn engine(policy: &str) -> Result<regorus::Engine, String> {
    ENGINES.with_borrow_mut(|engines| {
        if let Some(engine) = engines.get(policy) {
            return Ok(engine.clone());
        }
        let nesting = bracket_nesting(policy);
        if nesting > MAX_BRACKET_NESTING {
            return Err(format!(
                "the Rego policy nests `[` and `{{` {nesting} levels deep, more than the \
                 {MAX_BRACKET_NESTING} allowed: regorus' parser takes time doubling with each level; \
                 bind inner values to names of their own"
            ));
        }
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(true);
        // A builtin's error (an invalid pattern, an operand of the wrong type) fails the
        // evaluation: regorus' default, kept on purpose. OPA as policy-controller runs it (not
        // strict) makes the call undefined instead, so that `not regex.match("[", x)` holds.
        engine.set_strict_builtin_errors(true);
        // Before the policy, and kept by every clone of the cached engine.
        register(&mut engine, &go_regex::BUILTINS)
            .and_then(|()| register(&mut engine, &go_time::BUILTINS))
            .and_then(|()| register(&mut engine, &go_strings::BUILTINS))
            .and_then(|()| register(&mut engine, &bounded::BUILTINS))
            .map_err(|e| format!("the Rego engine could not be set up: {e}"))?;
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: TIME_LIMIT,
            check_interval: NonZeroU32::MIN,
        });
        memory::apply();
        engine
            .add_policy("sigstore.rego".to_owned(), policy.to_owned())
            .map_err(|e| format!("the Rego policy does not compile: {}", explain(&e)))?;
        if engines.len() >= MAX_ENGINES {
            engines.clear();
        }
        engines.insert(policy.to_owned(), engine.clone());
        Ok(engine)
    })
}

/// Compiles every Rego policy of `settings` (`spec.policy` and the attestations' `policy`) as
/// the capability would run it, so that `cip` refuses settings whose Rego does not compile when
/// it loads them (the module cannot compile Rego itself). The error names the field.
pub fn check_settings(settings: &Value) -> Result<(), String> {
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    for (index, policy) in list(&settings["policies"]).iter().enumerate() {
        let mut blocks = vec![(
            format!("policies[{index}].spec.policy"),
            policy["spec"]["policy"].clone(),
        )];
        for (a, authority) in list(&policy["spec"]["authorities"]).iter().enumerate() {
            for (t, attestation) in list(&authority["attestations"]).iter().enumerate() {
                blocks.push((
                    format!("policies[{index}].spec.authorities[{a}].attestations[{t}].policy"),
                    attestation["policy"].clone(),
                ));
            }
        }
        for (path, block) in blocks {
            if block["type"] == "rego"
                && let Some(text) = block["data"].as_str()
            {
                engine(text).map_err(|reason| format!("{path}.data: {reason}"))?;
            }
        }
    }
    Ok(())
}

/// The deepest nesting of `[` and `{` in a Rego text, outside strings (`"…"` with escapes, raw
/// `` `…` ``) and comments (`#` to the end of the line). Unbalanced text is left to the parser.
fn bracket_nesting(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                }
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    deepest
}

/// A regorus error in one line: the memory limit's message ([`memory::exceeded`]), or
/// [`describe`]'s.
fn explain(error: &anyhow::Error) -> String {
    memory::exceeded(error).unwrap_or_else(|| describe(&error.to_string()))
}

fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text).trim()
}

/// A regorus error in one line: its location and its message (`sigstore.rego:3:7: regex.match:
/// invalid regular expression …`), which regorus prints on separate lines around the quoted
/// source (`--> sigstore.rego:3:7`, …, `error: …`); otherwise the first line.
fn describe(error: &str) -> String {
    let location = error.lines().find_map(|line| line.trim().strip_prefix("--> "));
    let message = error.lines().find_map(|line| line.strip_prefix("error: "));
    match (location, message) {
        (Some(location), Some(message)) => format!("{}: {}", location.trim(), message.trim()),
        (None, Some(message)) => message.trim().to_owned(),
        _ => first_line(error).to_owned(),
    }
}

/// The input as regorus values, numbers as OPA holds them (it reads the input with
/// `UseNumber` and compares numbers exactly): a whole float from 2^53 on becomes the integer
/// it is written as (`1e23` is 10^23, held in binary as 99999999999999991611392, so regorus
/// found it below the literal `1e23`, which it keeps as 10^23). Below 2^53 the float's binary
/// value and its decimal lie between the same integers, so regorus' exact comparison of a
/// float with an integer is OPA's; the module sends only numbers a float keeps (its
/// `policy::numbers`), whose order as floats is their order as decimals.
fn rego_input(input: &Value) -> regorus::Value {
    match input {
        Value::Array(items) => regorus::Value::from(items.iter().map(rego_input).collect::<Vec<_>>()),
        Value::Object(members) => regorus::Value::from(
            members
                .iter()
                .map(|(k, v)| (regorus::Value::from(k.as_str()), rego_input(v)))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
        Value::Number(n)
            if n.as_f64()
                .is_some_and(|x| n.is_f64() && x.abs() >= 9_007_199_254_740_992.0) =>
        {
            // `{:e}` with an exponent: regorus reads a whole one as a big integer.
            let x = n.as_f64().unwrap_or_default();
            regorus::Value::from_numeric_string(&format!("{x:e}"))
                .unwrap_or_else(|_| regorus::Value::from(input.clone()))
        }
        other => regorus::Value::from(other.clone()),
    }
}

/// How long an evaluation starting at `now` may run: [`TIME_LIMIT`], or what is left before
/// `deadline` when that is less.
fn time_limit(deadline: Option<Instant>, now: Instant) -> Duration {
    deadline.map_or(TIME_LIMIT, |deadline| {
        TIME_LIMIT.min(deadline.saturating_duration_since(now))
    })
}

#[cfg(test)]
fn evaluate(policy: &str, input: &Value) -> Result<Answer, String> {
    evaluate_by(policy, input, None)
}

/// [`evaluate`], stopped at `deadline` (or after [`TIME_LIMIT`] if sooner), counted once the
/// policy is compiled (compiling an uncached policy takes part of the time left).
fn evaluate_by(policy: &str, input: &Value, deadline: Option<Instant>) -> Result<Answer, String> {
    let mut engine = engine(policy)?;
    let limit = time_limit(deadline, Instant::now());
    if limit.is_zero() {
        return Err("the evaluation deadline passed before the Rego policy was evaluated".to_owned());
    }
    // On this evaluation's engine only (a clone of the cached one).
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit,
        check_interval: NonZeroU32::MIN,
    });
    memory::apply();
    let input = rego_input(input);
    engine.set_input(input);
    // A query, not `eval_rule`: an undefined `isCompliant` (another package, no rule) is then
    // "not compliant", as with OPA, rather than an error.
    let results = engine
        .eval_query("data.sigstore.isCompliant".to_owned(), false)
        .map_err(|e| format!("evaluating the Rego policy failed: {}", explain(&e)))?;
    let result = match results.result.first().and_then(|r| r.expressions.first()) {
        Some(expression) => {
            // Its values may share structure (`a1 := [a0, a0]`, 40 levels: 2^40 leaves in a few
            // hundred bytes): written out whole, the process would abort. Sized first, as the
            // capped serialisers size theirs.
            let size = bounded::tree_size(&expression.value, bounded::MAX_RESULT, 0, 0);
            if size > bounded::MAX_RESULT {
                return Err(format!(
                    "the Rego policy's isCompliant takes at least {size} bytes written out, more than the {} cip \
                     reads",
                    bounded::MAX_RESULT
                ));
            }
            serde_json::to_value(&expression.value).map_err(|e| e.to_string())?
        }
        None => Value::Null,
    };
    Ok(decide(&result))
}

/// policy-controller's reading of `isCompliant`.
fn decide(result: &Value) -> Answer {
    let not_compliant = || format!("policy is not compliant for query '{QUERY}'");
    match result {
        Value::Bool(true) => Answer {
            compliant: true,
            error: None,
            warning: None,
        },
        Value::Array(responses) => {
            let mut answer = Answer {
                compliant: false,
                error: Some(not_compliant()),
                warning: None,
            };
            // policy-controller stops at the first response Go cannot decode ("not compliant …
            // due to parsing errors"), in OPA's order of the set. That order is OPA's own, so
            // any such response makes the set not compliant here, before any is looked at: never
            // more lenient, whichever order a passing response would have come in.
            let mut rules = Vec::with_capacity(responses.len());
            for response in responses {
                let Value::Object(object) = response else {
                    return Answer {
                        compliant: false,
                        error: Some(format!("{}: unexpected result {response}", not_compliant())),
                        warning: None,
                    };
                };
                match RuleResult::read(object) {
                    Ok(rule) => rules.push(rule),
                    Err(unreadable) => {
                        return Answer {
                            compliant: false,
                            error: Some(format!("{} due to parsing errors: {unreadable}", not_compliant())),
                            warning: None,
                        };
                    }
                }
            }
            for rule in rules {
                let warning = Some(rule.warning).filter(|w| !w.is_empty());
                if rule.result {
                    return Answer {
                        compliant: true,
                        error: None,
                        warning,
                    };
                }
                if warning.is_some() {
                    answer.warning = warning;
                }
                answer.error = Some(format!("{} with errors: {}", not_compliant(), rule.error));
            }
            answer
        }
        _ => Answer {
            compliant: false,
            error: Some(not_compliant()),
            warning: None,
        },
    }
}

/// policy-controller's `cosignRuleResult`, read from one response of an `isCompliant` set as
/// `evaluateRegoEvalMapResult` reads it: the response encoded with Go's `json.Marshal` (keys
/// in byte order) and decoded with `json.Unmarshal` into `{Warning, Error string; Result bool}`.
/// So keys name the fields without regard to case (`Result`, `reſult`), the last key naming a
/// field wins, `null` leaves a field as it was, and a value of another type (`"result": 1`, a
/// `warning` that is an object) makes the whole response not compliant (Go's decoder returns
/// an error, which policy-controller takes as "not compliant … due to parsing errors").
#[derive(Debug, Default, PartialEq, Eq)]
struct RuleResult {
    warning: String,
    error: String,
    result: bool,
}

impl RuleResult {
    fn read(object: &serde_json::Map<String, Value>) -> Result<Self, String> {
        let mut rule = Self::default();
        let mut keys: Vec<&String> = object.keys().collect();
        keys.sort_unstable();
        let mut first_error = None;
        for key in keys {
            let value = &object[key];
            let field = ["warning", "error", "result"]
                .into_iter()
                .find(|name| key == name)
                .or_else(|| {
                    ["warning", "error", "result"]
                        .into_iter()
                        .find(|name| go_folds_to(key, name))
                });
            let mismatch = match (field, value) {
                (None, _) | (Some(_), Value::Null) => None,
                (Some("result"), Value::Bool(b)) => {
                    rule.result = *b;
                    None
                }
                (Some("warning"), Value::String(text)) => {
                    rule.warning.clone_from(text);
                    None
                }
                (Some("error"), Value::String(text)) => {
                    rule.error.clone_from(text);
                    None
                }
                (Some(name), value) => Some(format!(
                    "{key:?} ({name}) is {value}, not a {}",
                    if name == "result" { "boolean" } else { "string" }
                )),
            };
            if first_error.is_none() {
                first_error = mismatch;
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(rule),
        }
    }
}

/// An OPA builtin `cip` registers in place of regorus' own: its operands, its value.
type Builtin = fn(Vec<regorus::Value>) -> anyhow::Result<regorus::Value>;

/// Registers `builtins` (name, number of operands, implementation) on `engine` as extensions,
/// which regorus looks up before its own builtins; before any policy is added to it.
fn register(engine: &mut regorus::Engine, builtins: &[(&str, u8, Builtin)]) -> anyhow::Result<()> {
    for &(name, operands, builtin) in builtins {
        engine.add_extension(name.to_owned(), operands, Box::new(builtin))?;
    }
    Ok(())
}

/// regorus' own builtin `name` on `args`, for an extension that checks its operands before
/// handing them on (extensions are looked up first, so the builtin they shadow is reached only
/// here). Its error messages point at a source of their own: the call, written out.
fn regorus_builtin(name: &str, args: &[regorus::Value]) -> anyhow::Result<regorus::Value> {
    use regorus::unstable::{BUILTINS, Expr, Ref, Source, Span};
    let Some((builtin, _)) = BUILTINS.get(name) else {
        anyhow::bail!("{name}: not a builtin of regorus");
    };
    let call = format!("{name}(…)");
    let end = u32::try_from(call.len()).unwrap_or(u32::MAX);
    let source = Source::from_contents(name.to_owned(), call)?;
    let span = Span {
        source,
        line: 1,
        col: 1,
        start: 0,
        end,
    };
    let params: Vec<Ref<Expr>> = args
        .iter()
        .map(|_| {
            Ref::new(Expr::Null {
                span: span.clone(),
                value: regorus::Value::Null,
                eidx: 0,
            })
        })
        .collect();
    builtin(&span, &params, args, true)
}

/// Operand `index` (from 0) of an extension as an integer within `i128`, with an error
/// otherwise (OPA's for a non-integer; `cip`'s own past `i128`).
fn integer(builtin: &str, args: &[regorus::Value], index: usize) -> anyhow::Result<i128> {
    match &args[index] {
        regorus::Value::Number(n) if n.is_integer() => match n.as_i128() {
            Some(n) => Ok(n),
            None => anyhow::bail!("{builtin}: operand {} is an integer too large for cip", index + 1),
        },
        regorus::Value::Number(_) => anyhow::bail!(
            "{builtin}: operand {} must be integer number but got floating-point number",
            index + 1
        ),
        other => anyhow::bail!(
            "{builtin}: operand {} must be number but got {}",
            index + 1,
            type_name(other)
        ),
    }
}

/// How much of an operand an extension's error message quotes.
const QUOTED: usize = 64;

/// `text` quoted for an error message, cut after [`QUOTED`] characters.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// OPA's name of a value's type, in builtins' operand errors.
fn type_name(value: &regorus::Value) -> &'static str {
    use regorus::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    }
}

/// Operand `index` (from 0) of an extension as a string, with OPA's error otherwise.
fn string<'a>(builtin: &str, args: &'a [regorus::Value], index: usize) -> anyhow::Result<&'a str> {
    match &args[index] {
        regorus::Value::String(text) => Ok(&**text),
        other => anyhow::bail!(
            "{builtin}: operand {} must be string but got {}",
            index + 1,
            type_name(other)
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MULTI_SIG: &str = r#"package sigstore
default isCompliant = false
isCompliant {
  input.authorizations["security-team"]
  input.authorizations["release-team"]
}
"#;

    const WITH_MESSAGES: &str = r#"package sigstore
isCompliant[response] {
  result := count(input.authorityMatches) >= 2
  errorMsg := "two authorities must match"
  warnMsg := "checked by rego"
  response := {"result": result, "error": errorMsg, "warning": warnMsg}
}
"#;

    #[test]
    fn boolean_decision_over_authorizations() {
        let both = json!({"authorizations": {"security-team": true, "release-team": true}});
        let one = json!({"authorizations": {"security-team": true, "release-team": false}});
        assert!(evaluate(MULTI_SIG, &both).unwrap().compliant);
        let refused = evaluate(MULTI_SIG, &one).unwrap();
        assert!(!refused.compliant);
        assert_eq!(
            refused.error.as_deref(),
            Some("policy is not compliant for query 'isCompliant = data.sigstore.isCompliant'")
        );
    }

    #[test]
    fn set_results_are_read_as_go_decodes_them() {
        // Found by a review: a policy copying input into `warning` turned "a warning, so not
        // satisfied" into a pass when the value was not a string; policy-controller's Go
        // decoding refuses it.
        let policy = |response: &str| format!("package sigstore\nisCompliant[r] {{ r := {response} }}\n");
        for (response, compliant) in [
            (r#"{"result": true, "warning": input.w}"#, false),
            (r#"{"result": true, "error": 5}"#, false),
            (r#"{"result": 1}"#, false),
            (r#"{"result": "true"}"#, false),
            (r#"{"result": true, "reſult": false}"#, false),
            (r#"{"Result": true}"#, true),
            (r#"{"RESULT": true, "warning": null}"#, true),
            (r#"{"result": true, "unknown": {"x": 1}}"#, true),
            (r#"{"result": null}"#, false),
        ] {
            let answer = evaluate(&policy(response), &json!({"w": {"x": 1}})).unwrap();
            assert_eq!(answer.compliant, compliant, "{response}: {answer:?}");
        }
        let answer = evaluate(&policy(r#"{"result": true, "error": 5}"#), &json!({})).unwrap();
        assert!(
            answer
                .error
                .as_deref()
                .is_some_and(|e| e.contains("due to parsing errors")),
            "{answer:?}"
        );
        // The last key naming a field wins, in byte order: `result` (r) after `Result` (R).
        let answer = evaluate(&policy(r#"{"Result": false, "result": true}"#), &json!({})).unwrap();
        assert!(answer.compliant, "{answer:?}");
        // A response Go cannot decode fails the set, whatever another response says.
        let two = "package sigstore\nisCompliant[r] { r := {\"result\": false, \"error\": 5} }\n\
                   isCompliant[r] { r := {\"result\": true} }\n";
        let answer = evaluate(two, &json!({})).unwrap();
        assert!(!answer.compliant, "{answer:?}");
        assert!(
            answer
                .error
                .as_deref()
                .is_some_and(|e| e.contains("due to parsing errors")),
            "{answer:?}"
        );
    }

    #[test]
    fn set_of_results_carries_error_and_warning() {
        let two = json!({"authorityMatches": {"a": {}, "b": {}}});
        let one = json!({"authorityMatches": {"a": {}}});
        assert_eq!(
            evaluate(WITH_MESSAGES, &two).unwrap(),
            Answer {
                compliant: true,
                error: None,
                warning: Some("checked by rego".to_owned())
            }
        );
        let refused = evaluate(WITH_MESSAGES, &one).unwrap();
        assert!(!refused.compliant);
        assert!(
            refused
                .error
                .as_deref()
                .unwrap()
                .ends_with("with errors: two authorities must match"),
            "{refused:?}"
        );
    }

    /// Why the module refuses such literals at load (`first_rounded_literal` in its
    /// `policy/rego.rs`): regorus reads `7.0000000000000001` as the float 7.0, so 7 satisfies
    /// `>= 7.0000000000000001` here, where OPA, comparing exactly, refuses it. Integers it keeps
    /// exact, against floats too.
    #[test]
    fn regorus_rounds_float_literals_and_keeps_integers() {
        let rounded = "package sigstore\nisCompliant { input.a >= 7.0000000000000001 }\n";
        assert!(evaluate(rounded, &json!({"a": 7})).unwrap().compliant);
        let exact = "package sigstore\nisCompliant { input.a > 9007199254740992.0 }\n";
        assert!(
            evaluate(exact, &json!({"a": 9_007_199_254_740_993_u64}))
                .unwrap()
                .compliant
        );
        assert!(
            !evaluate(exact, &json!({"a": 9_007_199_254_740_992_u64}))
                .unwrap()
                .compliant
        );
    }

    /// Whole floats from 2^53 on reach regorus as the integers they are written as, as OPA
    /// holds them: `1e23` is not below the literal `1e23`, and 1.0000000000000002e17
    /// (100000000000000020 written, 100000000000000016 in binary) is above 100000000000000018.
    #[test]
    fn large_whole_input_floats_are_the_integers_written() {
        let below = "package sigstore\nisCompliant { input.a < 1e23 }\n";
        assert!(!evaluate(below, &json!({"a": 1e23})).unwrap().compliant);
        let equal = "package sigstore\nisCompliant { input.a == 1e23 }\n";
        assert!(evaluate(equal, &json!({"a": 1e23})).unwrap().compliant);
        let above = "package sigstore\nisCompliant { input.a > 100000000000000018 }\n";
        assert!(evaluate(above, &json!({"a": 1.0000000000000002e17})).unwrap().compliant);
        let listed = "package sigstore\nisCompliant { input.a[0] > 100000000000000018 }\n";
        assert!(
            evaluate(listed, &json!({"a": [1.0000000000000002e17]}))
                .unwrap()
                .compliant
        );
        let small = "package sigstore\nisCompliant { input.a > 7; input.b == 0.1 }\n";
        assert!(evaluate(small, &json!({"a": 7.5, "b": 0.1})).unwrap().compliant);
    }

    #[test]
    fn undefined_decision_and_compile_errors() {
        let other_package = "package other\nisCompliant = true\n";
        assert!(!evaluate(other_package, &json!({})).unwrap().compliant);
        let broken = "package sigstore\nisCompliant { input.x == }\n";
        let error = evaluate(broken, &json!({})).unwrap_err();
        // regorus' location and message, not the first of the lines it prints them on.
        assert_eq!(
            error,
            "the Rego policy does not compile: sigstore.rego:2:13: expecting }"
        );
        let error = evaluate("package sigstore\nisCompliant { foo(1) }\n", &json!({})).unwrap_err();
        assert_eq!(
            error,
            "evaluating the Rego policy failed: sigstore.rego:2:18: could not find function foo"
        );
    }

    #[test]
    fn brackets_nested_past_what_regorus_parses_in_time_are_refused() {
        let nested = |levels: usize, open: &str, close: &str| {
            format!(
                "package sigstore\nisCompliant {{ x := {}true{}; x != null }}\n",
                open.repeat(levels),
                close.repeat(levels)
            )
        };
        // One level for the rule's body, twelve for the value: compiled, and evaluated.
        assert!(evaluate(&nested(11, "[", "]"), &json!({})).unwrap().compliant);
        // Without the check, 25 levels would take regorus hours to parse.
        for policy in [
            nested(12, "[", "]"),
            nested(25, "{\"a\": ", "}"),
            nested(25, "[{", "}]"),
        ] {
            let error = evaluate(&policy, &json!({})).unwrap_err();
            assert!(error.contains("more than the 12 allowed"), "{error}");
        }
        // Brackets in strings, raw strings and comments do not count.
        let quoted = format!(
            "package sigstore\n# {}\nisCompliant {{ x := \"[{{\\\"{}\"; y := `{}`; x != y }}\n",
            "[".repeat(40),
            "{".repeat(40),
            "[".repeat(40)
        );
        assert_eq!(bracket_nesting(&quoted), 1, "{quoted}");
        assert!(evaluate(&quoted, &json!({})).unwrap().compliant);
    }

    #[test]
    fn attestation_rego_policies_are_compiled_with_the_settings() {
        let settings = |data: &str| {
            json!({"policies": [{"spec": {"authorities": [{"key": {}, "attestations": [
                {"name": "sbom", "predicateType": "spdx", "policy": {"type": "rego", "data": data}}
            ]}]}}]})
        };
        assert_eq!(check_settings(&settings(MULTI_SIG)), Ok(()));
        let error = check_settings(&settings("package sigstore\nisCompliant { input.x == }\n")).unwrap_err();
        assert!(
            error.starts_with(
                "policies[0].spec.authorities[0].attestations[0].policy.data: the Rego policy does not compile"
            ),
            "{error}"
        );
    }

    /// What the module's `validate_settings` asks for (`first_keyword_without_import` in its
    /// `policy/rego.rs`): without the import, `isCompliant if { false }` holds (a rule named
    /// `if`); with it, it does not.
    #[test]
    fn future_keywords_are_keywords_after_their_import() {
        let body = "default isCompliant = false\nisCompliant if { false }\n";
        let bare = format!("package sigstore\n{body}");
        assert!(evaluate(&bare, &json!({})).unwrap().compliant);
        for import in ["import future.keywords.if", "import future.keywords", "import rego.v1"] {
            let imported = format!("package sigstore\n{import}\n{body}");
            assert!(!evaluate(&imported, &json!({})).unwrap().compliant, "{import}");
        }
        let contains = "package sigstore\nimport future.keywords.contains\nimport future.keywords.if\n\
                        import future.keywords.in\nisCompliant contains {\"result\": true} if { some x in [1]; x == 1 }\n";
        assert!(evaluate(contains, &json!({})).unwrap().compliant, "{contains}");
    }

    #[test]
    fn host_call_round_trip() {
        let payload = serde_json::to_vec(&json!({"policy": MULTI_SIG, "input": {"authorizations": {}}})).unwrap();
        let answer: Value = serde_json::from_slice(&dispatch("v1/rego", &payload, None).unwrap()).unwrap();
        assert_eq!(answer["compliant"], json!(false));
        assert!(dispatch("v2/rego", &payload, None).is_err());
    }

    /// Found by a review: the limit was a fixed 2 s whatever the call's deadline, so an
    /// evaluation could run past the evaluation timeout.
    #[test]
    fn the_time_limit_is_what_is_left_before_the_deadline() {
        let now = Instant::now();
        assert_eq!(time_limit(None, now), TIME_LIMIT);
        assert_eq!(time_limit(Some(now + Duration::from_secs(60)), now), TIME_LIMIT);
        assert_eq!(
            time_limit(Some(now + Duration::from_millis(300)), now),
            Duration::from_millis(300)
        );
        assert_eq!(time_limit(Some(now), now + Duration::from_secs(1)), Duration::ZERO);
        // The call's deadline reaches the evaluation (no elapsed time is asserted: timings
        // belong in benchmarks): a policy looping until stopped is stopped, and a deadline
        // already passed stops it before it starts.
        let spin = "package sigstore\nisCompliant { count([x | x := numbers.range(1, 100000)[_]; \
                    y := numbers.range(1, 100000)[_]; x == y]) > 0 }\n";
        let payload = serde_json::to_vec(&json!({"policy": spin, "input": {}})).unwrap();
        let started = Instant::now();
        dispatch("v1/rego", &payload, Some(started + Duration::from_millis(300))).unwrap_err();
        let past = dispatch("v1/rego", &payload, Some(started)).unwrap_err();
        assert!(past.to_string().contains("deadline passed"), "{past}");
    }
}
