//! Values of the CUE subset, their unification (`&`), and the check of a compiled policy
//! against a concrete JSON input.
//!
//! The input is always concrete, so unifying the policy with it amounts to checking that each
//! input value the policy constrains satisfies the constraint. As with policy-controller's
//! `Validate()` (not concrete), a field the policy names but the input lacks is no conflict.

use std::fmt;

use serde_json::Value as Json;

use super::parser::{Expr, Field, File, UnaryOp};
use super::{CueError, Pos};
use crate::policy::numbers;
use crate::policy::time::{RFC3339, RFC3339_NANO, parse_rfc3339};

const NULL: u8 = 1;
const BOOL: u8 = 2;
const INT: u8 = 4;
const FLOAT: u8 = 8;
const NUMBER: u8 = INT | FLOAT;
const STRING: u8 = 16;
const STRUCT: u8 = 32;
const LIST: u8 = 64;
const ANY: u8 = 127;

/// The packages of the subset.
const PACKAGES: [&str; 4] = ["time", "strings", "list", "struct"];

/// A constraint on a string, list or struct, from a package.
#[derive(Clone, Debug, PartialEq)]
pub enum Validator {
    HasPrefix(String),
    HasSuffix(String),
    Contains(String),
    Time,
    MinItems(usize),
    MaxItems(usize),
    MinFields(usize),
    MaxFields(usize),
}

/// An evaluated value.
#[derive(Clone, Debug)]
pub enum Val {
    Top,
    Bottom(String),
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A basic type: its kinds and its name.
    Kind(u8, &'static str),
    /// `<x`, `<=x`, `>x`, `>=x`, `!=x` with a concrete scalar.
    Bound(UnaryOp, Box<Val>),
    Regex {
        negate: bool,
        source: String,
        regex: crate::regexp::Regexp,
    },
    Validator(Validator),
    /// Fields in order: label, value, optional.
    Struct(Vec<(String, Val, bool)>),
    /// Elements and, for an open list, the type of the others.
    List(Vec<Val>, Option<Box<Val>>),
    And(Vec<Val>),
    Or(Vec<(Val, bool)>),
    /// An imported package (only as the base of a selector).
    Package(&'static str),
    /// A package function (only as the callee of a call).
    Func(&'static str),
}

/// The first conflict between a policy and its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// CUE path of the conflicting value, e.g. `authorizations."release-team"`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl Val {
    fn is_scalar(&self) -> bool {
        matches!(
            self,
            Val::Null | Val::Bool(_) | Val::Int(_) | Val::Float(_) | Val::Str(_)
        )
    }

    fn kinds(&self) -> u8 {
        match self {
            Val::Top => ANY,
            Val::Bottom(_) | Val::Package(_) | Val::Func(_) => 0,
            Val::Null => NULL,
            Val::Bool(_) => BOOL,
            Val::Int(_) => INT,
            Val::Float(_) => FLOAT,
            Val::Str(_) => STRING,
            Val::Kind(k, _) => *k,
            // `!=null` takes any other value; `!=` a number or a string takes that kind only.
            Val::Bound(UnaryOp::Ne, x) if matches!(**x, Val::Null) => ANY & !NULL,
            Val::Bound(_, x) if matches!(**x, Val::Str(_)) => STRING,
            Val::Bound(..) => NUMBER,
            Val::Regex { .. } => STRING,
            Val::Validator(v) => match v {
                Validator::HasPrefix(_) | Validator::HasSuffix(_) | Validator::Contains(_) | Validator::Time => STRING,
                Validator::MinItems(_) | Validator::MaxItems(_) => LIST,
                Validator::MinFields(_) | Validator::MaxFields(_) => STRUCT,
            },
            Val::Struct(_) => STRUCT,
            Val::List(..) => LIST,
            Val::And(vs) => vs.iter().fold(ANY, |k, v| k & v.kinds()),
            Val::Or(alts) => alts.iter().fold(0, |k, (v, _)| k | v.kinds()),
        }
    }

    fn to_json(&self) -> Json {
        match self {
            Val::Bool(b) => Json::Bool(*b),
            Val::Int(n) => Json::from(*n),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Val::Str(s) => Json::String(s.clone()),
            _ => Json::Null,
        }
    }

    /// The value a reference stands for where a concrete one is needed: the default of a
    /// disjunction, or the value itself.
    fn resolved(self) -> Val {
        match self {
            Val::Or(alts) => {
                let mut defaults: Vec<Val> = alts.iter().filter(|(_, d)| *d).map(|(v, _)| v.clone()).collect();
                if defaults.len() == 1 {
                    defaults.remove(0)
                } else {
                    Val::Or(alts)
                }
            }
            // `>=1 & <=1` is the number 1 (CUE's SimplifyBounds), e.g. for `b: >a`.
            Val::And(vs) => match bounds(&vs) {
                Ok(Some(n)) => n.val(),
                _ => Val::And(vs),
            },
            other => other,
        }
    }
}

/// A whole number beyond 64 bits: serde_json reads `100000000000000000000` (an int in CUE) and
/// `1e20` (a float) alike, so such a number only passes what both an int and a float pass.
fn int_or_float(json: &Json) -> bool {
    matches!(json, Json::Number(n) if n.is_f64() && n.as_f64().is_some_and(|x| x.fract() == 0.0 && x.abs() >= 2f64.powi(63)))
}

fn kind_of(json: &Json) -> u8 {
    match json {
        Json::Null => NULL,
        Json::Bool(_) => BOOL,
        Json::Number(n) if n.is_f64() => FLOAT,
        Json::Number(_) => INT,
        Json::String(_) => STRING,
        Json::Array(_) => LIST,
        Json::Object(_) => STRUCT,
    }
}

fn kind_name(kinds: u8) -> &'static str {
    match kinds {
        NULL => "null",
        BOOL => "bool",
        INT => "int",
        FLOAT => "float",
        NUMBER => "number",
        STRING => "string",
        STRUCT => "struct",
        LIST => "list",
        _ => "_",
    }
}

/// Why the subset refuses a policy while unifying its values.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Refusal {
    /// Two disjunctions unified at one value while an alternative of either carries a validator
    /// (`!=`, `=~`, `!~`, a validating builtin), anywhere inside it.
    ///
    /// CUE's evaluator before its new one (evalv3, the default from v0.13) decides such a value
    /// by the order of the alternatives: a validator that fails in one alternative stays on the
    /// shared value and fails the alternatives tried after it. So `c: {a: !=1} | {}` with
    /// `c: 1 | {}` refuses `{"c": {"a": 1}}`, which `{}` admits, while `c: {} | {a: !=1}`
    /// admits it (checked against CUE v0.4.3 in `tests/cue_against_cue.rs`; cue-lang/cue#3149
    /// shows it in v0.8.2, and policy-controller runs v0.7.0). The subset refuses the policy
    /// rather than admit what policy-controller would deny.
    OrderDependent {
        /// The validator, as CUE prints it.
        validator: String,
    },
    /// The evaluation built more than [`Budget::VALUES`] values.
    TooLarge,
}

impl Refusal {
    fn at(self, pos: Pos) -> CueError {
        let message = match self {
            Refusal::OrderDependent { validator } => format!(
                "two disjunctions are unified here and an alternative carries the validator {validator}: \
                 CUE's evaluator before v0.13 (policy-controller runs v0.7.0) lets a validator of \
                 one alternative fail the alternatives after it (cue-lang/cue#3149), so it decides \
                 this policy by the order of the alternatives; write one disjunction that spells \
                 out the combinations, or move the validator out of the alternatives"
            ),
            Refusal::TooLarge => format!(
                "the policy grows past {} values as it is evaluated (disjunctions unified with one \
                 another multiply their alternatives, and each reference evaluates what it names \
                 again): write it with fewer alternatives or references",
                Budget::VALUES
            ),
        };
        CueError::invalid(pos, message)
    }
}

/// What one policy's evaluation may build. Disjunctions unified with one another multiply
/// (`(a | b) & (c | d)` has four alternatives, twenty such pairs a million) and references
/// evaluate what they name again, so a short text can ask for more than the module's memory
/// and time: past the budget the policy is refused, naming it, instead of trapping the module
/// or running past the host's deadline.
struct Budget {
    left: usize,
}

impl Budget {
    /// Values (evaluation steps, unifications, alternatives and the values they copy) one
    /// policy may build: hundreds of times what any policy of the article or policy-controller's
    /// documentation builds, and a few milliseconds of the module's time.
    const VALUES: usize = 200_000;

    fn new() -> Self {
        Self { left: Self::VALUES }
    }

    fn spend(&mut self, values: usize) -> Result<(), Refusal> {
        self.left = self.left.checked_sub(values).ok_or(Refusal::TooLarge)?;
        Ok(())
    }
}

impl Val {
    /// The first validator inside this value, if any: what CUE keeps as a check to run once the
    /// value is complete (bounds `<`, `<=`, `>`, `>=` it merges at once, and they are not).
    fn validator_within(&self) -> Option<&Val> {
        match self {
            Val::Bound(UnaryOp::Ne, _) | Val::Regex { .. } | Val::Validator(_) => Some(self),
            Val::Struct(fields) => fields.iter().find_map(|(_, v, _)| v.validator_within()),
            Val::List(items, rest) => items.iter().chain(rest.as_deref()).find_map(Val::validator_within),
            Val::And(vs) => vs.iter().find_map(Val::validator_within),
            Val::Or(alts) => alts.iter().find_map(|(v, _)| v.validator_within()),
            _ => None,
        }
    }

    /// The values this one is made of, itself included: what a copy of it costs.
    fn weight(&self) -> usize {
        1 + match self {
            Val::Bound(_, v) => v.weight(),
            Val::Struct(fields) => fields.iter().map(|(_, v, _)| v.weight()).sum(),
            Val::List(items, rest) => items.iter().chain(rest.as_deref()).map(Val::weight).sum(),
            Val::And(vs) => vs.iter().map(Val::weight).sum(),
            Val::Or(alts) => alts.iter().map(|(v, _)| v.weight()).sum(),
            _ => 0,
        }
    }

    /// Whether this value is in conflict, or holds one in a field, an element or a conjunct
    /// (not in a disjunction's alternative: those in conflict are dropped). CUE drops an
    /// alternative in conflict anywhere inside, as `{c: 1 & 2} | 1` is `1`.
    /// A single number, string, bool or null: what the input cannot change under a reference.
    fn is_concrete_scalar(&self) -> bool {
        match self {
            Val::Null | Val::Bool(_) | Val::Int(_) | Val::Float(_) | Val::Str(_) => true,
            // `>=1 & <=1` is the number 1.
            Val::And(vs) => matches!(bounds(vs), Ok(Some(_))),
            _ => false,
        }
    }

    fn fails(&self) -> bool {
        first_bottom(self, &mut Vec::new()).is_some()
    }
}

/// Unifies two values (`a & b`) within `budget`; refuses what policy-controller's CUE decides
/// by the order of alternatives ([`Refusal::OrderDependent`]).
fn meet(a: Val, b: Val, budget: &mut Budget) -> Result<Val, Refusal> {
    budget.spend(1)?;
    Ok(match (a, b) {
        (Val::Top, x) | (x, Val::Top) => x,
        (Val::Bottom(m), _) | (_, Val::Bottom(m)) => Val::Bottom(m),
        (Val::Or(alts), other) | (other, Val::Or(alts)) => {
            if let Val::Or(others) = &other
                && let Some(v) = alts.iter().chain(others).find_map(|(v, _)| v.validator_within())
            {
                return Err(Refusal::OrderDependent {
                    validator: v.to_string(),
                });
            }
            let copy = other.weight();
            // Each alternative is copied into its unification: the originals stay for the
            // message when none is left.
            budget.spend(alts.iter().map(|(v, _)| v.weight()).sum())?;
            let mut kept: Vec<(Val, bool)> = Vec::with_capacity(alts.len());
            for (v, d) in &alts {
                budget.spend(copy)?;
                let v = meet(v.clone(), other.clone(), budget)?;
                if !v.fails() {
                    kept.push((v, *d));
                }
            }
            match kept.len() {
                0 => Val::Bottom(format!("{other} matches no alternative of {}", Val::Or(alts))),
                1 => kept.remove(0).0,
                _ => Val::Or(kept),
            }
        }
        (Val::Struct(mut a), Val::Struct(b)) => {
            for (label, value, optional) in b {
                match a.iter_mut().find(|(l, _, _)| *l == label) {
                    Some((_, v, o)) => {
                        *v = meet(std::mem::replace(v, Val::Top), value, budget)?;
                        *o = *o && optional;
                    }
                    None => a.push((label, value, optional)),
                }
            }
            Val::Struct(a)
        }
        (Val::List(a, ra), Val::List(b, rb)) => meet_lists(a, ra, b, rb, budget)?,
        (a, b) if a.is_scalar() && b.is_scalar() => {
            if equal(&a, &b) {
                a
            } else {
                Val::Bottom(format!("conflicting values {a} and {b}"))
            }
        }
        (a, b) if a.is_scalar() || b.is_scalar() => {
            let (scalar, constraint) = if a.is_scalar() { (a, b) } else { (b, a) };
            match check(&constraint, &scalar.to_json(), &mut Vec::new()) {
                Ok(()) => scalar,
                Err(c) => Val::Bottom(c.message),
            }
        }
        (a, b) => {
            if a.kinds() & b.kinds() == 0 {
                return Ok(Val::Bottom(format!(
                    "conflicting values {a} and {b} (mismatched types)"
                )));
            }
            let mut all: Vec<Val> = Vec::new();
            let conjuncts = [a, b].into_iter().flat_map(|v| match v {
                Val::And(vs) => vs,
                v => vec![v],
            });
            for v in conjuncts {
                // One struct and one list per conjunction: `list.MinItems(1) & [...] & [1, ...]`
                // is the list `[1, ...]` under the validator, as in CUE.
                let same = all.iter().position(|w| {
                    matches!(
                        (w, &v),
                        (Val::Struct(_), Val::Struct(_)) | (Val::List(..), Val::List(..))
                    )
                });
                match same {
                    Some(i) => match meet(std::mem::replace(&mut all[i], Val::Top), v, budget)? {
                        bottom @ Val::Bottom(_) => return Ok(bottom),
                        merged => all[i] = merged,
                    },
                    None => all.push(v),
                }
            }
            match empty_conjunction(&all) {
                Some(message) => Val::Bottom(message),
                None => Val::And(all),
            }
        }
    })
}

/// A number operand of a bound: exact for integers, as f64 otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn of(v: &Val) -> Option<Num> {
        match v {
            Val::Int(n) => Some(Num::Int(i128::from(*n))),
            Val::Float(x) => Some(Num::Float(*x)),
            _ => None,
        }
    }

    fn f64(self) -> f64 {
        match self {
            Num::Int(n) => n as f64,
            Num::Float(x) => x,
        }
    }

    /// Exact, as CUE compares: `9007199254740993` is above the float it rounds to.
    fn cmp(self, other: Num) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (Num::Int(a), Num::Float(b)) => numbers::cmp_int_float(a, b),
            (Num::Float(a), Num::Int(b)) => numbers::cmp_int_float(b, a).map(std::cmp::Ordering::reverse),
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
        }
    }

    /// An input number as serde_json read it: exact when it is an integer of 64 bits.
    fn of_json(n: &serde_json::Number) -> Option<Num> {
        if let Some(i) = n.as_i64() {
            Some(Num::Int(i128::from(i)))
        } else if let Some(u) = n.as_u64() {
            Some(Num::Int(i128::from(u)))
        } else {
            n.as_f64().map(Num::Float)
        }
    }

    /// Exact between integers, whole floats from 2^53 on taken as the integers they are
    /// written as; otherwise as f64, whose sign is then the exact difference's.
    fn sub(self, other: Num) -> Num {
        let exact = |n: Num| match n {
            Num::Float(x) => numbers::large_whole(x).map_or(n, Num::Int),
            n => n,
        };
        match (exact(self), exact(other)) {
            (Num::Int(a), Num::Int(b)) => Num::Int(a - b),
            (a, b) => Num::Float(a.f64() - b.f64()),
        }
    }

    /// `floor` or `ceil` for an integer bound, of the number as written: from 2^53 on a float
    /// is whole, and its decimal (`1.0000000000000002e17`, 100000000000000020) is the integer.
    fn round(self, up: bool) -> Num {
        let Num::Float(x) = self else {
            return self;
        };
        match numbers::large_whole(x) {
            Some(whole) => Num::Int(whole),
            // Below 2^53 (or not finite): `floor`/`ceil` are exact.
            None if x.is_finite() && x.abs() < 2f64.powi(63) => {
                Num::Int((if up { x.ceil() } else { x.floor() }) as i128)
            }
            None => self,
        }
    }

    /// Whether the number is the integer `n` (apd's `Int64()` succeeding with `n`).
    fn is(self, n: i128) -> bool {
        match self {
            Num::Int(m) => m == n,
            Num::Float(x) => numbers::cmp_int_float(n, x) == Some(std::cmp::Ordering::Equal),
        }
    }

    fn is_negative(self) -> bool {
        match self {
            Num::Int(n) => n < 0,
            Num::Float(x) => x < 0.0,
        }
    }

    fn val(self) -> Val {
        match self {
            Num::Int(n) => i64::try_from(n).map_or(Val::Float(n as f64), Val::Int),
            Num::Float(x) => Val::Float(x),
        }
    }
}

/// Why a conjunction (flattened, one struct and one list at most) holds no value, in the cases
/// CUE (cuelang.org/go v0.4.3, checked with tests/cue_against_cue.rs) refuses the policy for it
/// rather than the inputs that have the field:
///
/// - number bounds, as CUE's `SimplifyBounds` (internal/core/adt/simplify.go) meets the
///   tightest lower and upper bound once the field's kind is known: disjoint bounds
///   (`>5 & <3`, `>=2 & <=1`, `>1 & <=1`) are "incompatible bounds"; `>=a & <=a` is the number
///   `a`; with `int` (no float), bounds are rounded to integers first (`int & >=1.5 & <=1.7` is
///   refused) and `>=a & <a+1`, `>a & <=a+1`, `>a & <a+2` are that one integer. A number so
///   found must pass the conjunction's `!=` (`>=1 & <=1 & !=1` is refused). CUE does no more:
///   `int & >1 & <2` (no integer) and string bounds (`>"b" & <"a"`) are accepted, and so here.
/// - list sizes: the policy's own list (its elements, `[...]` has none) must satisfy
///   `list.MinItems`/`list.MaxItems` beside it: `[...] & list.MinItems(2)` and
///   `[{...}, ...] & list.MaxItems(0)` are refused. For MinItems on an *open* list this is
///   v0.4.3's behaviour; from v0.5 (policy-controller ships v0.7.0) pkg/list codes a short open
///   list as incomplete, which Validate() ignores, so v0.7.0 would take the policy and refuse
///   only the inputs with the list: we keep the stricter behaviour (refuse the policy).
/// - struct.MaxFields: the policy's own regular fields beside it (`{a: 1, b: 2} &
///   struct.MaxFields(1)`); MinFields never (an open struct may gain fields: incomplete).
fn empty_conjunction(vs: &[Val]) -> Option<String> {
    for v in vs {
        let Val::Validator(validator) = v else { continue };
        for w in vs {
            let bad = match (validator, w) {
                (Validator::MaxItems(n), Val::List(items, _)) => items.len() > *n,
                (Validator::MaxFields(n), Val::Struct(fields)) => {
                    fields.iter().filter(|(_, _, optional)| !optional).count() > *n
                }
                _ => false,
            };
            if bad {
                return Some(format!("invalid value {w} (does not satisfy {v})"));
            }
        }
    }
    bounds(vs).err()
}

/// `list.MinItems` against the conjunction's list, once the value is final: unlike the other
/// checks of [`empty_conjunction`], a later conjunct may lengthen the list (`[...] &
/// list.MinItems(1) & [1, ...]` is accepted by CUE).
fn short_list(vs: &[Val]) -> Option<String> {
    let (items, list) = vs.iter().find_map(|v| match v {
        Val::List(items, _) => Some((items.len(), v)),
        _ => None,
    })?;
    vs.iter().find_map(|v| match v {
        Val::Validator(Validator::MinItems(n)) if items < *n => {
            Some(format!("invalid value {list} (does not satisfy {v})"))
        }
        _ => None,
    })
}

/// The first value of a final policy value that CUE refuses once nothing more can join it
/// (see [`short_list`]); a disjunction is refused when each of its alternatives is.
fn unsatisfiable(val: &Val, path: &mut Vec<String>) -> Option<Conflict> {
    match val {
        Val::And(vs) => short_list(vs)
            .map(|message| conflict(path, message))
            .or_else(|| vs.iter().find_map(|v| unsatisfiable(v, path))),
        // Not optional fields: their conflict refuses the input that has the field only, as
        // CUE decides (`hostNetwork?: _|_` forbids the field).
        Val::Struct(fields) => fields
            .iter()
            .filter(|(_, _, optional)| !optional)
            .find_map(|(label, value, _)| {
                push_label(path, label);
                let found = unsatisfiable(value, path);
                path.pop();
                found
            }),
        // The type of further elements applies to none yet (CUE takes `[...list.MinItems(1)]`).
        Val::List(items, _) => items.iter().enumerate().find_map(|(i, v)| {
            path.push(i.to_string());
            let found = unsatisfiable(v, path);
            path.pop();
            found
        }),
        Val::Or(alts) => {
            let mut first = None;
            for (alt, _) in alts {
                match unsatisfiable(alt, &mut path.clone()) {
                    None => return None,
                    Some(c) => {
                        first.get_or_insert(c);
                    }
                }
            }
            first.map(|c| conflict(path, format!("every alternative of {val} is in conflict ({c})")))
        }
        _ => None,
    }
}

/// The tightest number bounds of a conjunction met as CUE meets them: `Err` when they are
/// disjoint, `Ok(Some(n))` when they leave the one number `n`.
fn bounds(vs: &[Val]) -> Result<Option<Num>, String> {
    let Some(only) = bounds_only(vs)? else {
        return Ok(None);
    };
    match vs.iter().find(|v| matches!(v, Val::Bound(UnaryOp::Ne, x) if Num::of(x).and_then(|x| x.cmp(only)) == Some(std::cmp::Ordering::Equal))) {
        Some(v) => Err(format!("invalid value {} (out of bound {v})", only.val())),
        None => Ok(Some(only)),
    }
}

fn bounds_only(vs: &[Val]) -> Result<Option<Num>, String> {
    use std::cmp::Ordering::{Greater, Less};
    // The tightest bound of each side; at equal operands the exclusive one.
    let tightest = |ops: [UnaryOp; 2], tighter: std::cmp::Ordering| {
        let mut best: Option<(UnaryOp, Num, &Val)> = None;
        for v in vs {
            let Val::Bound(op, operand) = v else { continue };
            let Some(n) = Num::of(operand) else { continue };
            if !ops.contains(op) {
                continue;
            }
            best = match best {
                None => Some((*op, n, v)),
                Some((bop, bn, bv)) => match n.cmp(bn) {
                    Some(o) if o == tighter => Some((*op, n, v)),
                    Some(std::cmp::Ordering::Equal) if *op == ops[0] => Some((*op, n, v)),
                    _ => Some((bop, bn, bv)),
                },
            };
        }
        best
    };
    let (Some((lop, lo, lower)), Some((hop, hi, upper))) = (
        tightest([UnaryOp::Gt, UnaryOp::Ge], Greater),
        tightest([UnaryOp::Lt, UnaryOp::Le], Less),
    ) else {
        return Ok(None);
    };
    let kinds = vs.iter().fold(ANY, |k, v| k & v.kinds());
    let integers = kinds & FLOAT == 0;
    let (lo, hi) = if integers {
        // >=3.4 is >=4 and >3.4 is >3; <=2.3 is <=2 and <2.3 is <3.
        (lo.round(lop == UnaryOp::Ge), hi.round(hop == UnaryOp::Lt))
    } else {
        (lo, hi)
    };
    let d = hi.sub(lo);
    let only = if d.is(1) && integers && lop == UnaryOp::Ge && hop == UnaryOp::Lt {
        Some(lo)
    } else if d.is(1) && integers && lop == UnaryOp::Gt && hop == UnaryOp::Le {
        Some(hi)
    } else if d.is(2) && integers && lop == UnaryOp::Gt && hop == UnaryOp::Lt {
        Some(lo.sub(Num::Int(-1)))
    } else if d.is(0) && lop == UnaryOp::Ge && hop == UnaryOp::Le {
        Some(lo)
    } else if d.is(0) || d.is_negative() {
        return Err(format!("incompatible bounds {lower} and {upper}"));
    } else {
        None
    };
    Ok(only)
}

fn meet_lists(
    a: Vec<Val>,
    ra: Option<Box<Val>>,
    b: Vec<Val>,
    rb: Option<Box<Val>>,
    budget: &mut Budget,
) -> Result<Val, Refusal> {
    let len = match (&ra, &rb) {
        (None, None) if a.len() != b.len() => {
            return Ok(Val::Bottom(format!(
                "conflicting lists of {} and {} elements",
                a.len(),
                b.len()
            )));
        }
        (None, Some(_)) if b.len() > a.len() => return Ok(Val::Bottom("the list is too short".to_owned())),
        (Some(_), None) if a.len() > b.len() => return Ok(Val::Bottom("the list is too short".to_owned())),
        _ => a.len().max(b.len()),
    };
    let item = |items: &[Val], rest: &Option<Box<Val>>, i: usize| {
        items
            .get(i)
            .cloned()
            .or_else(|| rest.as_deref().cloned())
            .unwrap_or(Val::Top)
    };
    let items = (0..len)
        .map(|i| {
            let (x, y) = (item(&a, &ra, i), item(&b, &rb, i));
            budget.spend(x.weight() + y.weight())?;
            meet(x, y, budget)
        })
        .collect::<Result<_, _>>()?;
    let rest = match (ra, rb) {
        (Some(x), Some(y)) => Some(Box::new(meet(*x, *y, budget)?)),
        _ => None,
    };
    Ok(Val::List(items, rest))
}

fn equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        _ => false,
    }
}

/// A JSON value for a message, cut short.
fn shown(json: &Json) -> String {
    let text = json.to_string();
    if text.chars().count() <= 48 {
        return text;
    }
    let cut: String = text.chars().take(45).collect();
    format!("{cut}...")
}

pub(super) fn push_label(path: &mut Vec<String>, label: &str) {
    let plain = label.chars().next().is_some_and(|c| c.is_alphabetic() || c == '$')
        && label.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$');
    path.push(if plain {
        label.to_owned()
    } else {
        Json::String(label.to_owned()).to_string()
    });
}

fn conflict(path: &[String], message: String) -> Conflict {
    Conflict {
        path: path.join("."),
        message,
    }
}

/// Checks a concrete `input` against the compiled value `val` at `path`.
pub fn check(val: &Val, input: &Json, path: &mut Vec<String>) -> Result<(), Conflict> {
    let mismatch = |path: &[String]| {
        conflict(
            path,
            format!(
                "conflicting values {val} and {} (mismatched types {} and {})",
                shown(input),
                kind_name(val.kinds()),
                kind_name(kind_of(input))
            ),
        )
    };
    match val {
        Val::Top => Ok(()),
        Val::Bottom(message) => Err(conflict(path, message.clone())),
        Val::Null | Val::Bool(_) | Val::Int(_) | Val::Float(_) | Val::Str(_) => {
            let same = match (val, input) {
                (Val::Null, Json::Null) => true,
                (Val::Bool(x), Json::Bool(y)) => x == y,
                (Val::Int(x), Json::Number(n)) if !n.is_f64() => n.as_i64() == Some(*x),
                (Val::Float(x), Json::Number(n)) if n.is_f64() && !int_or_float(input) => n.as_f64() == Some(*x),
                (Val::Str(x), Json::String(y)) => x == y,
                _ if val.kinds() & kind_of(input) == 0 => return Err(mismatch(path)),
                _ => false,
            };
            if same {
                Ok(())
            } else {
                Err(conflict(
                    path,
                    format!("conflicting values {val} (policy) and {} (input)", shown(input)),
                ))
            }
        }
        Val::Kind(kinds, _) => {
            let passes = if int_or_float(input) {
                kinds & NUMBER == NUMBER
            } else {
                kinds & kind_of(input) != 0
            };
            if passes { Ok(()) } else { Err(mismatch(path)) }
        }
        Val::Bound(op, operand) => {
            let holds = match (&**operand, input) {
                (Val::Null, y) if *op == UnaryOp::Ne => !y.is_null(),
                (Val::Str(bound), Json::String(s)) => compare(*op, s.as_str().cmp(bound.as_str())),
                (Val::Int(_) | Val::Float(_), Json::Number(n)) => Num::of_json(n)
                    .zip(Num::of(operand))
                    .and_then(|(v, bound)| v.cmp(bound))
                    .is_some_and(|o| compare(*op, o)),
                _ => return Err(mismatch(path)),
            };
            if holds {
                Ok(())
            } else {
                Err(conflict(
                    path,
                    format!("invalid value {} (out of bound {val})", shown(input)),
                ))
            }
        }
        Val::Regex { negate, regex, .. } => match input {
            Json::String(s) if regex.is_match(s) != *negate => Ok(()),
            Json::String(_) => Err(conflict(
                path,
                format!("invalid value {} (out of bound {val})", shown(input)),
            )),
            _ => Err(mismatch(path)),
        },
        Val::Validator(v) => {
            let holds = match (v, input) {
                (Validator::HasPrefix(p), Json::String(s)) => s.starts_with(p.as_str()),
                (Validator::HasSuffix(p), Json::String(s)) => s.ends_with(p.as_str()),
                (Validator::Contains(p), Json::String(s)) => s.contains(p.as_str()),
                (Validator::Time, Json::String(s)) => parse_rfc3339(s).is_ok(),
                (Validator::MinItems(n), Json::Array(a)) => a.len() >= *n,
                (Validator::MaxItems(n), Json::Array(a)) => a.len() <= *n,
                (Validator::MinFields(n), Json::Object(o)) => o.len() >= *n,
                (Validator::MaxFields(n), Json::Object(o)) => o.len() <= *n,
                _ => return Err(mismatch(path)),
            };
            if holds {
                Ok(())
            } else {
                Err(conflict(
                    path,
                    format!("invalid value {} (does not satisfy {val})", shown(input)),
                ))
            }
        }
        Val::Struct(fields) => {
            let Json::Object(object) = input else {
                return Err(mismatch(path));
            };
            for (label, value, _) in fields {
                if let Some(item) = object.get(label) {
                    push_label(path, label);
                    check(value, item, path)?;
                    path.pop();
                }
            }
            Ok(())
        }
        Val::List(items, rest) => {
            let Json::Array(array) = input else {
                return Err(mismatch(path));
            };
            if array.len() < items.len() || (rest.is_none() && array.len() != items.len()) {
                return Err(conflict(
                    path,
                    format!(
                        "the input has {} elements, the policy's list {val} takes {}{}",
                        array.len(),
                        if rest.is_some() { "at least " } else { "" },
                        items.len()
                    ),
                ));
            }
            for (i, item) in array.iter().enumerate() {
                let constraint = items.get(i).or(rest.as_deref()).unwrap_or(&Val::Top);
                path.push(i.to_string());
                check(constraint, item, path)?;
                path.pop();
            }
            Ok(())
        }
        Val::And(vs) => {
            // struct.MaxFields counts the fields of the unified struct: the input's and the
            // regular fields the policy adds beside the validator (CUE: `{a: 1, ...} &
            // struct.MaxFields(1)` refuses `{"b": 1}`).
            if let Json::Object(object) = input {
                let mut labels: std::collections::BTreeSet<&str> = object.keys().map(String::as_str).collect();
                for v in vs {
                    if let Val::Struct(fields) = v {
                        labels.extend(
                            fields
                                .iter()
                                .filter(|(_, _, optional)| !optional)
                                .map(|(l, _, _)| l.as_str()),
                        );
                    }
                }
                for v in vs {
                    if let Val::Validator(Validator::MaxFields(n)) = v
                        && labels.len() > *n
                    {
                        return Err(conflict(
                            path,
                            format!(
                                "invalid value {} (does not satisfy {v}): {} fields with the policy's",
                                shown(input),
                                labels.len()
                            ),
                        ));
                    }
                }
            }
            vs.iter().try_for_each(|v| check(v, input, path))
        }
        Val::Or(alts) => {
            if alts.iter().any(|(v, _)| check(v, input, &mut path.clone()).is_ok()) {
                Ok(())
            } else {
                Err(conflict(
                    path,
                    format!("{} matches no alternative of {val}", shown(input)),
                ))
            }
        }
        Val::Package(_) | Val::Func(_) => Err(conflict(path, format!("{val} is not a value"))),
    }
}

fn compare(op: UnaryOp, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        UnaryOp::Lt => ordering == Less,
        UnaryOp::Le => ordering != Greater,
        UnaryOp::Gt => ordering == Greater,
        UnaryOp::Ge => ordering != Less,
        UnaryOp::Ne => ordering != Equal,
        _ => false,
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Top => f.write_str("_"),
            Val::Bottom(_) => f.write_str("_|_"),
            Val::Null => f.write_str("null"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Int(n) => write!(f, "{n}"),
            Val::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => write!(f, "{x:.1}"),
            Val::Float(x) => write!(f, "{x}"),
            Val::Str(s) => write!(f, "{}", Json::String(s.clone())),
            Val::Kind(_, name) => f.write_str(name),
            Val::Bound(op, x) => write!(f, "{}{x}", op.symbol()),
            Val::Regex { negate, source, .. } => {
                write!(
                    f,
                    "{}{}",
                    if *negate { "!~" } else { "=~" },
                    Json::String(source.clone())
                )
            }
            Val::Validator(v) => match v {
                Validator::HasPrefix(s) => write!(f, "strings.HasPrefix({})", Json::String(s.clone())),
                Validator::HasSuffix(s) => write!(f, "strings.HasSuffix({})", Json::String(s.clone())),
                Validator::Contains(s) => write!(f, "strings.Contains({})", Json::String(s.clone())),
                Validator::Time => f.write_str("time.Time"),
                Validator::MinItems(n) => write!(f, "list.MinItems({n})"),
                Validator::MaxItems(n) => write!(f, "list.MaxItems({n})"),
                Validator::MinFields(n) => write!(f, "struct.MinFields({n})"),
                Validator::MaxFields(n) => write!(f, "struct.MaxFields({n})"),
            },
            Val::Struct(fields) => {
                f.write_str("{")?;
                for (i, (label, value, optional)) in fields.iter().enumerate() {
                    let mut path = Vec::new();
                    push_label(&mut path, label);
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{}{}: {value}", path[0], if *optional { "?" } else { "" })?;
                }
                f.write_str("}")
            }
            Val::List(items, rest) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    write!(f, "{}{item}", if i == 0 { "" } else { ", " })?;
                }
                if let Some(rest) = rest {
                    let sep = if items.is_empty() { "" } else { ", " };
                    match &**rest {
                        Val::Top => write!(f, "{sep}...")?,
                        t => write!(f, "{sep}...{t}")?,
                    }
                }
                f.write_str("]")
            }
            Val::And(vs) => {
                for (i, v) in vs.iter().enumerate() {
                    write!(f, "{}{v}", if i == 0 { "" } else { " & " })?;
                }
                Ok(())
            }
            Val::Or(alts) => {
                for (i, (v, default)) in alts.iter().enumerate() {
                    write!(
                        f,
                        "{}{}{v}",
                        if i == 0 { "" } else { " | " },
                        if *default { "*" } else { "" }
                    )?;
                }
                Ok(())
            }
            Val::Package(p) => f.write_str(p),
            Val::Func(name) => f.write_str(name),
        }
    }
}

/// A struct literal's fields, and the scope around it.
struct Scope<'a> {
    fields: &'a [Field],
    parent: Option<&'a Scope<'a>>,
}

struct Compiler<'f> {
    file: &'f File,
    used: Vec<bool>,
    depth: usize,
    /// The declaration being evaluated: where a refusal of `&` inside it points.
    pos: Pos,
    budget: Budget,
    regexps: Regexps,
    /// Expressions being evaluated inside one another.
    nesting: usize,
}

/// Bytes of compiled NFA (as `regex`'s size limit counts them) one policy's regular expressions
/// may take together: ≈ 2,400 expressions such as `^ghcr\.io/` (852 bytes), ≈ 130 `\pL`
/// (≈ 16 KiB), and thousands of times what the policies of the article and policy-controller's
/// documentation take; ≈ 30 ms of compilation natively (the ignored test `regexp_budget_cost`).
pub(super) const REGEXP_BUDGET: usize = 2 * (1 << 20);

/// The regular expressions of one policy: each pattern compiled once (however often it is
/// written), all of them within [`REGEXP_BUDGET`] bytes of compiled NFA.
///
/// `regex`'s size limit, 10 MiB, is per expression: forty `=~"\\pL{400}"` (≈ 6 MiB each,
/// ≈ 90 ms natively) took seconds to compile, past the host's deadline for `validate_settings`,
/// and a fresh instance compiles them again for every evaluation. Each expression is compiled
/// with the size limit lowered to what the others left, and the compiler checks it as it adds
/// states, so a policy costs at most the budget's compilation before it is refused.
struct Regexps {
    left: usize,
    compiled: std::collections::HashMap<String, crate::regexp::Regexp, foldhash::fast::RandomState>,
}

impl Regexps {
    fn new() -> Self {
        Self {
            left: REGEXP_BUDGET,
            compiled: Default::default(),
        }
    }

    /// `source` compiled, or refused with where it is written (`pos`).
    fn compile(&mut self, source: &str, pos: Pos) -> Result<crate::regexp::Regexp, CueError> {
        use crate::regexp::{Regexp, RegexpError};
        if let Some(regex) = self.compiled.get(source) {
            return Ok(regex.clone());
        }
        let regex = Regexp::new_within(source, self.left).map_err(|e| match e {
            RegexpError::TooBig if self.left < crate::regexp::SIZE_LIMIT => CueError::invalid(
                pos,
                format!(
                    "the regular expression {} takes the policy's regular expressions past their \
                     budget of {} bytes compiled ({} bytes were left): use fewer or smaller \
                     regular expressions",
                    quoted(source),
                    REGEXP_BUDGET,
                    self.left
                ),
            ),
            e => CueError::invalid(pos, format!("invalid regular expression {source:?}: {e}")),
        })?;
        self.left = self.left.saturating_sub(regex.compiled_size());
        self.compiled.insert(source.to_owned(), regex.clone());
        Ok(regex)
    }
}

/// `source` quoted, cut to 40 characters: a refused pattern can be long.
fn quoted(source: &str) -> String {
    match source.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}...", &source[..end]),
        None => format!("{source:?}"),
    }
}

/// How deep references may chain before they are taken for a cycle.
const MAX_DEPTH: usize = 64;

/// How deep evaluations may nest: the parser's limit on nesting, with room for what references
/// bring (a value is as deep as the evaluations that built it, so unification and the check of
/// an input, which recurse once a level, stay within the module's stack).
const MAX_NESTING: usize = 200;

/// Evaluates a parsed file: its value and the names of the imports it never uses.
pub fn compile(file: &File) -> Result<(Val, Vec<String>), CueError> {
    for import in &file.imports {
        if !PACKAGES.contains(&import.path.as_str()) {
            return Err(CueError::unsupported(
                import.pos,
                &format!("the package {:?} (time, strings, list and struct are)", import.path),
            ));
        }
    }
    let mut compiler = Compiler {
        file,
        used: vec![false; file.imports.len()],
        depth: 0,
        pos: Pos::default(),
        budget: Budget::new(),
        regexps: Regexps::new(),
        nesting: 0,
    };
    let root = Scope {
        fields: &file.fields,
        parent: None,
    };
    let value = compiler.structure(&root)?;
    let unused = file
        .imports
        .iter()
        .zip(&compiler.used)
        .filter(|(_, used)| !**used)
        .map(|(import, _)| import.path.clone())
        .collect();
    Ok((value, unused))
}

/// The first conflict inside a value (not inside a disjunction, whose failing alternatives
/// are dropped).
fn first_bottom(val: &Val, path: &mut Vec<String>) -> Option<Conflict> {
    match val {
        Val::Bottom(message) => Some(conflict(path, message.clone())),
        // Not optional fields: their conflict refuses the input that has the field only, as
        // CUE decides (`hostNetwork?: _|_` forbids the field).
        Val::Struct(fields) => fields
            .iter()
            .filter(|(_, _, optional)| !optional)
            .find_map(|(label, value, _)| {
                push_label(path, label);
                let found = first_bottom(value, path);
                path.pop();
                found
            }),
        // Not the type of further items (`...T`): it constrains items only, so a list whose `T`
        // is in conflict can still be empty, as CUE takes `[...(1 & 2)]` and `[]` under it.
        Val::List(items, _) => items.iter().enumerate().find_map(|(i, v)| {
            path.push(i.to_string());
            let found = first_bottom(v, path);
            path.pop();
            found
        }),
        // A struct or list under a validator: `list.MaxItems(1) & [{…} & false]`.
        Val::And(vs) => vs.iter().find_map(|v| first_bottom(v, path)),
        _ => None,
    }
}

impl Compiler<'_> {
    /// The value of the struct whose fields are `scope.fields`.
    fn structure(&mut self, scope: &Scope<'_>) -> Result<Val, CueError> {
        let mut out: Vec<(String, Val, bool)> = Vec::new();
        for field in scope.fields {
            if out.iter().any(|(label, _, _)| *label == field.label) {
                continue;
            }
            let (value, optional) = self.field_value(&field.label, scope)?;
            let mut path = Vec::new();
            push_label(&mut path, &field.label);
            let found = first_bottom(&value, &mut path);
            // At the top level the value is final: what only a final value shows (a list too
            // short for its list.MinItems), with the top-level field's position.
            let found = found.or_else(|| {
                scope
                    .parent
                    .is_none()
                    .then(|| unsatisfiable(&value, &mut path))
                    .flatten()
            });
            if let Some(c) = found {
                return Err(CueError::invalid(
                    field.pos,
                    format!("the policy conflicts with itself at {c}"),
                ));
            }
            out.push((field.label.clone(), value, optional));
        }
        Ok(Val::Struct(out))
    }

    /// Every declaration of `label` in `scope`, unified.
    fn field_value(&mut self, label: &str, scope: &Scope<'_>) -> Result<(Val, bool), CueError> {
        let mut value = Val::Top;
        let mut optional = true;
        for field in scope.fields.iter().filter(|f| f.label == label) {
            let outer = std::mem::replace(&mut self.pos, field.pos);
            let declared = self.eval(&field.value, scope);
            value = meet(value, declared?, &mut self.budget).map_err(|e| e.at(field.pos))?;
            self.pos = outer;
            optional &= field.optional;
        }
        Ok((value, optional))
    }

    /// The value of `expr`, one level deeper, refused past [`MAX_NESTING`].
    fn eval(&mut self, expr: &Expr, scope: &Scope<'_>) -> Result<Val, CueError> {
        self.budget.spend(1).map_err(|e| e.at(self.pos))?;
        if self.nesting == MAX_NESTING {
            return Err(CueError::unsupported(
                self.pos,
                &format!(
                    "values nesting deeper than {MAX_NESTING} levels as the policy is evaluated \
                     (a reference brings the levels of the value it names)"
                ),
            ));
        }
        self.nesting += 1;
        let value = self.value(expr, scope);
        self.nesting -= 1;
        value
    }

    fn value(&mut self, expr: &Expr, scope: &Scope<'_>) -> Result<Val, CueError> {
        Ok(match expr {
            Expr::Null => Val::Null,
            Expr::Bool(b) => Val::Bool(*b),
            Expr::Int(n) => Val::Int(*n),
            Expr::Float(x) => Val::Float(*x),
            Expr::Str(s) => Val::Str(s.clone()),
            Expr::Ident(_, pos) | Expr::Select(_, _, pos) => {
                let (value, names_a_field) = self.path(expr, scope)?;
                if names_a_field && !value.is_concrete_scalar() {
                    // CUE unifies the input before it follows a reference, so `x: y` with
                    // `y: >3` takes the input's `y`; this module follows it in the policy alone.
                    return Err(CueError::unsupported(
                        *pos,
                        "a reference to a field whose value the input can change (not a single number, \
                         string, bool or null): CUE reads the input's value there; write the constraint out",
                    ));
                }
                value
            }
            Expr::Call(callee, args, pos) => {
                let callee = self.eval(callee, scope)?;
                let args = args
                    .iter()
                    .map(|a| self.eval(a, scope).map(Val::resolved))
                    .collect::<Result<Vec<_>, _>>()?;
                call(callee, args, *pos)?
            }
            Expr::Struct(fields) => self.structure(&Scope {
                fields,
                parent: Some(scope),
            })?,
            Expr::List(items, rest) => {
                let items = items
                    .iter()
                    .map(|i| self.eval(i, scope))
                    .collect::<Result<Vec<_>, _>>()?;
                let rest = match rest {
                    Some(r) => Some(Box::new(self.eval(r, scope)?)),
                    None => None,
                };
                Val::List(items, rest)
            }
            Expr::Unary(op @ (UnaryOp::Match | UnaryOp::NotMatch), operand, pos) => {
                match self.eval(operand, scope)?.resolved() {
                    Val::Str(source) => Val::Regex {
                        negate: *op == UnaryOp::NotMatch,
                        regex: self.regexps.compile(&source, *pos)?,
                        source,
                    },
                    other => unary(*op, other, *pos)?,
                }
            }
            Expr::Unary(op, operand, pos) => {
                let operand = self.eval(operand, scope)?.resolved();
                unary(*op, operand, *pos)?
            }
            Expr::And(terms) => {
                let mut value = Val::Top;
                for term in terms {
                    let term = self.eval(term, scope)?;
                    value = meet(value, term, &mut self.budget).map_err(|e| e.at(self.pos))?;
                }
                value
            }
            Expr::Or(alts) => {
                let mut out = Vec::new();
                for (alt, default) in alts {
                    let value = self.eval(alt, scope)?;
                    if !value.fails() {
                        out.push((value, *default));
                    }
                }
                if out.is_empty() {
                    Val::Bottom("every alternative of the disjunction is in conflict".to_owned())
                } else {
                    Val::Or(out)
                }
            }
        })
    }

    /// The value of a reference or a selection from one (`y`, `y.z`), and whether it names a
    /// field of the policy (not a package, a type or a builtin).
    fn path(&mut self, expr: &Expr, scope: &Scope<'_>) -> Result<(Val, bool), CueError> {
        match expr {
            Expr::Ident(name, pos) => self.reference(name, *pos, scope),
            Expr::Select(base, name, pos) => {
                let (base, names_a_field) = self.path(base, scope)?;
                Ok((select(base, name, *pos)?, names_a_field))
            }
            other => Ok((self.eval(other, scope)?, false)),
        }
    }

    fn reference(&mut self, name: &str, pos: Pos, scope: &Scope<'_>) -> Result<(Val, bool), CueError> {
        let mut current = Some(scope);
        while let Some(s) = current {
            // A quoted label (`"y": 1`) is not referable by name, as in CUE.
            if s.fields.iter().any(|f| f.label == name && !f.quoted) {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(CueError::invalid(
                        pos,
                        format!("the reference `{name}` refers to itself (a cycle)"),
                    ));
                }
                let value = self.field_value(name, s);
                self.depth -= 1;
                let (value, optional) = value?;
                if optional {
                    return Err(CueError::invalid(
                        pos,
                        format!("cannot reference optional field `{name}`"),
                    ));
                }
                return Ok((value, true));
            }
            current = s.parent;
        }
        if let Some(i) = self.file.imports.iter().position(|imp| imp.name == name) {
            self.used[i] = true;
            let path = self.file.imports[i].path.as_str();
            return Ok((
                Val::Package(PACKAGES.into_iter().find(|p| *p == path).unwrap_or("time")),
                false,
            ));
        }
        Ok((
            match name {
                "_" => Val::Top,
                // Bottom: in an optional field, the field must be absent (`hostNetwork?: _|_`).
                "_|_" => Val::Bottom("explicit error (_|_ literal) in source".to_owned()),
                "string" => Val::Kind(STRING, "string"),
                "int" => Val::Kind(INT, "int"),
                "float" => Val::Kind(FLOAT, "float"),
                "number" => Val::Kind(NUMBER, "number"),
                "bool" => Val::Kind(BOOL, "bool"),
                "bytes" => return Err(CueError::unsupported(pos, "the type bytes")),
                "len" | "close" | "and" | "or" | "div" | "mod" | "quo" | "rem" => {
                    return Err(CueError::unsupported(pos, &format!("the builtin {name}()")));
                }
                _ if PACKAGES.contains(&name) => {
                    return Err(CueError::invalid(
                        pos,
                        format!("`{name}` is used but not imported: add import \"{name}\""),
                    ));
                }
                _ => {
                    return Err(CueError::invalid(
                        pos,
                        format!(
                            "the reference `{name}` is not a field of the policy (references to the input are not supported)"
                        ),
                    ));
                }
            },
            false,
        ))
    }
}

fn select(base: Val, name: &str, pos: Pos) -> Result<Val, CueError> {
    match base {
        Val::Package(package) => Ok(match (package, name) {
            ("time", "RFC3339") => Val::Str(RFC3339.to_owned()),
            ("time", "RFC3339Nano") => Val::Str(RFC3339_NANO.to_owned()),
            ("time", "Time") => Val::Validator(Validator::Time),
            ("time", "Parse") => Val::Func("time.Parse"),
            ("strings", "HasPrefix") => Val::Func("strings.HasPrefix"),
            ("strings", "HasSuffix") => Val::Func("strings.HasSuffix"),
            ("strings", "Contains") => Val::Func("strings.Contains"),
            ("list", "MinItems") => Val::Func("list.MinItems"),
            ("list", "MaxItems") => Val::Func("list.MaxItems"),
            ("struct", "MinFields") => Val::Func("struct.MinFields"),
            ("struct", "MaxFields") => Val::Func("struct.MaxFields"),
            _ => return Err(CueError::unsupported(pos, &format!("{package}.{name}"))),
        }),
        Val::Struct(fields) => match fields.into_iter().find(|(label, _, _)| label == name) {
            Some((_, value, _)) => Ok(value),
            None => Err(CueError::invalid(pos, format!("the struct has no field `{name}`"))),
        },
        other => Err(CueError::invalid(pos, format!("cannot select `{name}` from {other}"))),
    }
}

fn call(callee: Val, args: Vec<Val>, pos: Pos) -> Result<Val, CueError> {
    let Val::Func(name) = callee else {
        return Err(CueError::unsupported(pos, &format!("calling {callee}")));
    };
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(CueError::invalid(
                pos,
                format!("{name} takes {n} arguments here, not {}", args.len()),
            ))
        }
    };
    let string = |v: &Val| match v {
        Val::Str(s) => Ok(s.clone()),
        other => Err(CueError::invalid(
            pos,
            format!("{name} needs a concrete string, not {other}"),
        )),
    };
    // Saturating: in the wasm32 module `as usize` kept the low 32 bits, so
    // `list.MinItems(4294967296)` was `list.MinItems(0)` there (and passed every list) while the
    // native tests saw the count whole.
    let count = |v: &Val| match v {
        Val::Int(n) if *n >= 0 => Ok(usize::try_from(*n).unwrap_or(usize::MAX)),
        other => Err(CueError::invalid(pos, format!("{name} needs a count, not {other}"))),
    };
    match name {
        "time.Parse" => {
            arity(2)?;
            let layout = string(&args[0])?;
            if layout != RFC3339 && layout != RFC3339_NANO {
                return Err(CueError::unsupported(
                    pos,
                    "a time.Parse layout other than time.RFC3339 or time.RFC3339Nano",
                ));
            }
            let value = string(&args[1])?;
            parse_rfc3339(&value)
                .map(Val::Str)
                .map_err(|e| CueError::invalid(pos, e))
        }
        "strings.HasPrefix" | "strings.HasSuffix" | "strings.Contains" => {
            let make = |s: String| match name {
                "strings.HasPrefix" => Validator::HasPrefix(s),
                "strings.HasSuffix" => Validator::HasSuffix(s),
                _ => Validator::Contains(s),
            };
            match args.len() {
                1 => Ok(Val::Validator(make(string(&args[0])?))),
                _ => {
                    arity(2)?;
                    let subject = Json::String(string(&args[0])?);
                    let validator = Val::Validator(make(string(&args[1])?));
                    Ok(Val::Bool(check(&validator, &subject, &mut Vec::new()).is_ok()))
                }
            }
        }
        _ => {
            arity(1)?;
            let n = count(&args[0])?;
            Ok(Val::Validator(match name {
                "list.MinItems" => Validator::MinItems(n),
                "list.MaxItems" => Validator::MaxItems(n),
                "struct.MinFields" => Validator::MinFields(n),
                _ => Validator::MaxFields(n),
            }))
        }
    }
}

fn unary(op: UnaryOp, operand: Val, pos: Pos) -> Result<Val, CueError> {
    match (op, operand) {
        (UnaryOp::Neg, Val::Int(n)) => Ok(Val::Int(-n)),
        (UnaryOp::Neg, Val::Float(x)) => Ok(Val::Float(-x)),
        // As CUE: `!=true` is refused ("invalid value true (type bool) for bound !=").
        (UnaryOp::Ne, x @ (Val::Null | Val::Int(_) | Val::Float(_) | Val::Str(_))) => Ok(Val::Bound(op, Box::new(x))),
        (UnaryOp::Lt | UnaryOp::Le | UnaryOp::Gt | UnaryOp::Ge, x @ (Val::Int(_) | Val::Float(_) | Val::Str(_))) => {
            Ok(Val::Bound(op, Box::new(x)))
        }
        (op, other) => Err(CueError::invalid(
            pos,
            format!(
                "`{}` needs a concrete {}, not {other}",
                op.symbol(),
                match op {
                    UnaryOp::Neg => "number",
                    UnaryOp::Match | UnaryOp::NotMatch => "string",
                    UnaryOp::Ne => "value",
                    _ => "number or string",
                }
            ),
        )),
    }
}
