//! The syntax of the CUE subset: a file is a package clause, imports and fields; a field's
//! value is an expression of literals, references, structs, lists, bounds, `&` and `|`.
//! Anything else is refused with its position and what it is.

use super::lexer::{Tok, tokenize};
use super::{CueError, Pos};

/// A unary constraint operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
    Match,
    NotMatch,
    Neg,
}

impl UnaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Lt => "<",
            UnaryOp::Le => "<=",
            UnaryOp::Gt => ">",
            UnaryOp::Ge => ">=",
            UnaryOp::Ne => "!=",
            UnaryOp::Match => "=~",
            UnaryOp::NotMatch => "!~",
            UnaryOp::Neg => "-",
        }
    }
}

/// An expression.
#[derive(Clone, Debug)]
pub enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// An identifier: `_`, a basic type, a field, or an imported package.
    Ident(String, Pos),
    /// `x.name`
    Select(Box<Expr>, String, Pos),
    /// `f(args)`
    Call(Box<Expr>, Vec<Expr>, Pos),
    Struct(Vec<Field>),
    /// `[a, b, ...T]`: the elements and, when open, the type of the others.
    List(Vec<Expr>, Option<Box<Expr>>),
    Unary(UnaryOp, Box<Expr>, Pos),
    And(Vec<Expr>),
    /// Alternatives, each with whether it is marked default (`*`).
    Or(Vec<(Expr, bool)>),
}

/// A field declaration `label: value` or `label?: value`.
#[derive(Clone, Debug)]
pub struct Field {
    pub label: String,
    /// Declared with a quoted label (`"y": 1`): not referable by name (`x: y` finds no `y`).
    pub quoted: bool,
    pub optional: bool,
    pub value: Expr,
    pub pos: Pos,
}

/// An import: the name it is referred to by and its path.
#[derive(Clone, Debug)]
pub struct Import {
    pub name: String,
    pub path: String,
    pub pos: Pos,
}

/// A parsed file.
#[derive(Clone, Debug)]
pub struct File {
    pub package: Option<String>,
    pub imports: Vec<Import>,
    pub fields: Vec<Field>,
}

struct Parser {
    tokens: Vec<(Tok, Pos)>,
    at: usize,
    /// Fields, expressions and unary operators being parsed inside one another.
    nesting: usize,
}

/// How deep fields, expressions and unary operators may nest (`{a: {b: …}}` is two of each, a
/// parenthesis one expression). The parser and the evaluation recurse once a level: with
/// wasmtime's default stack the module traps at a few hundred levels; a policy nests a handful.
const MAX_NESTING: usize = 100;

/// Parses a CUE file of the subset.
pub fn parse(text: &str) -> Result<File, CueError> {
    let mut p = Parser {
        tokens: tokenize(text)?,
        at: 0,
        nesting: 0,
    };
    let mut package = None;
    if p.is_ident("package") {
        p.next();
        let (name, pos) = p.ident("a package name")?;
        if name.starts_with('#') || name.starts_with('_') {
            return Err(CueError::invalid(pos, format!("`{name}` is not a valid package name")));
        }
        package = Some(name);
        p.end_of_declaration()?;
    }
    let mut imports = Vec::new();
    while p.is_ident("import") {
        p.next();
        if p.eat("(") {
            while !p.eat(")") {
                imports.push(p.import_spec()?);
                p.end_of_declaration()?;
            }
        } else {
            imports.push(p.import_spec()?);
        }
        p.end_of_declaration()?;
    }
    let fields = p.fields(None)?;
    Ok(File {
        package,
        imports,
        fields,
    })
}

impl Parser {
    /// `parse` one level deeper, refused past [`MAX_NESTING`].
    fn nested<T>(&mut self, parse: impl FnOnce(&mut Self) -> Result<T, CueError>) -> Result<T, CueError> {
        if self.nesting == MAX_NESTING {
            return Err(CueError::unsupported(
                self.pos(),
                &format!("nesting deeper than {MAX_NESTING} levels (structs, lists, parentheses and operators)"),
            ));
        }
        self.nesting += 1;
        let parsed = parse(self);
        self.nesting -= 1;
        parsed
    }

    /// The token at `at`; past the end, the final `Eof`.
    fn token(&self) -> &(Tok, Pos) {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn peek(&self) -> &Tok {
        &self.token().0
    }

    fn pos(&self) -> Pos {
        self.token().1
    }

    /// The current token; moves past it (`at -= 1` steps back).
    fn next(&mut self) -> (Tok, Pos) {
        let token = self.token().clone();
        self.at += 1;
        token
    }

    fn is(&self, punct: &str) -> bool {
        matches!(self.peek(), Tok::Punct(p) if *p == punct)
    }

    fn is_ident(&self, name: &str) -> bool {
        matches!(self.peek(), Tok::Ident(i) if i == name)
    }

    fn eat(&mut self, punct: &str) -> bool {
        let found = self.is(punct);
        if found {
            self.next();
        }
        found
    }

    fn expect(&mut self, punct: &str) -> Result<(), CueError> {
        if self.eat(punct) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{punct}`")))
        }
    }

    fn unexpected(&self, wanted: &str) -> CueError {
        let found = match self.peek() {
            Tok::Ident(i) => format!("`{i}`"),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Int(n) => format!("`{n}`"),
            Tok::Float(f) => format!("`{f}`"),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "the end of the text".to_owned(),
        };
        CueError::invalid(self.pos(), format!("expected {wanted}, found {found}"))
    }

    fn ident(&mut self, what: &str) -> Result<(String, Pos), CueError> {
        match self.next() {
            (Tok::Ident(name), pos) => Ok((name, pos)),
            _ => {
                self.at -= 1;
                Err(self.unexpected(what))
            }
        }
    }

    /// After a declaration: a comma (or newline), or the end of the enclosing block.
    fn end_of_declaration(&mut self) -> Result<(), CueError> {
        if self.is(")") || self.is("}") || matches!(self.peek(), Tok::Eof) {
            return Ok(());
        }
        self.expect(",")?;
        Ok(())
    }

    fn import_spec(&mut self) -> Result<Import, CueError> {
        let pos = self.pos();
        let alias = match self.peek() {
            Tok::Ident(_) => Some(self.ident("an import name")?.0),
            _ => None,
        };
        match self.next() {
            (Tok::Str(path), _) => {
                let name = alias.unwrap_or_else(|| path.rsplit('/').next().unwrap_or(&path).to_owned());
                Ok(Import { name, path, pos })
            }
            _ => {
                self.at -= 1;
                Err(self.unexpected("an import path in quotes"))
            }
        }
    }

    /// Fields up to `close` (or the end of the text when `None`).
    fn fields(&mut self, close: Option<&str>) -> Result<Vec<Field>, CueError> {
        let mut fields = Vec::new();
        loop {
            match close {
                Some(c) if self.eat(c) => return Ok(fields),
                None if matches!(self.peek(), Tok::Eof) => return Ok(fields),
                _ => {}
            }
            if self.is_ident("import") || self.is_ident("package") {
                return Err(CueError::invalid(
                    self.pos(),
                    "package and import clauses must come first".to_owned(),
                ));
            }
            if self.eat("...") {
                // Structs are open already; `...` changes nothing.
                self.end_of_declaration()?;
                continue;
            }
            fields.push(self.nested(Self::field)?);
            self.end_of_declaration()?;
        }
    }

    fn field(&mut self) -> Result<Field, CueError> {
        let pos = self.pos();
        let quoted = matches!(self.peek(), Tok::Str(_));
        let label = match self.next() {
            // Taken only when CUE reads it as written, in Unicode NFC (identifiers are ASCII).
            (Tok::Str(s), _) => super::labels::policy_label(s, pos)?,
            (Tok::Ident(i), _) => {
                for keyword in ["let", "for", "if"] {
                    if i == keyword && !self.is(":") && !self.is("?") {
                        return Err(CueError::unsupported(pos, &format!("`{keyword}` clauses")));
                    }
                }
                if i.starts_with('#') {
                    return Err(CueError::unsupported(pos, &format!("definitions ({i})")));
                }
                if i == "_" || i == "_|_" {
                    return Err(CueError::invalid(pos, format!("cannot use {i} as label")));
                }
                if i.starts_with('_') {
                    return Err(CueError::unsupported(pos, &format!("hidden fields ({i})")));
                }
                i
            }
            (Tok::Punct("["), _) => return Err(CueError::unsupported(pos, "pattern constraints ([...]: T)")),
            (Tok::Punct("{"), _) => {
                return Err(CueError::unsupported(
                    pos,
                    "embedded values (a struct may only hold fields)",
                ));
            }
            (Tok::Punct("("), _) => return Err(CueError::unsupported(pos, "dynamic fields ((expr): T)")),
            _ => {
                self.at -= 1;
                return Err(self.unexpected("a field label"));
            }
        };
        let optional = self.eat("?");
        if self.is("!") {
            return Err(CueError::unsupported(self.pos(), "required fields (label!)"));
        }
        if self.is("=") {
            return Err(CueError::unsupported(self.pos(), "aliases (label=)"));
        }
        if !self.is(":") {
            return Err(if optional {
                self.unexpected("`:`")
            } else {
                CueError::unsupported(pos, "embedded values (a struct may only hold fields)")
            });
        }
        self.next();
        // `a: b: c` is `a: {b: c}`.
        let value = if matches!(self.peek(), Tok::Ident(_) | Tok::Str(_))
            && matches!(self.tokens.get(self.at + 1), Some((Tok::Punct(":" | "?"), _)))
        {
            Expr::Struct(vec![self.nested(Self::field)?])
        } else {
            self.nested(Self::expr)?
        };
        Ok(Field {
            label,
            quoted,
            optional,
            value,
            pos,
        })
    }

    fn expr(&mut self) -> Result<Expr, CueError> {
        let mut alternatives = vec![self.default_marked()?];
        while self.eat("|") {
            alternatives.push(self.default_marked()?);
        }
        self.refuse_binary()?;
        if alternatives.len() == 1 && !alternatives[0].1 {
            return Ok(alternatives.remove(0).0);
        }
        if alternatives.len() == 1 {
            // `a: *1`, `[*1]`, `(*1)`: CUE marks a default among alternatives only.
            return Err(CueError::invalid(
                self.pos(),
                "preference mark not allowed at this position (a default `*` needs a disjunction `|`)".to_owned(),
            ));
        }
        Ok(Expr::Or(alternatives))
    }

    fn default_marked(&mut self) -> Result<(Expr, bool), CueError> {
        let at = self.pos();
        if !self.eat("*") {
            return Ok((self.conjunction()?, false));
        }
        let term = self.unary()?;
        // `*1 & int | 2`: the mark binds to `1` alone, inside a conjunction, where CUE refuses it.
        if self.is("&") {
            return Err(CueError::invalid(
                at,
                "preference mark not allowed at this position (inside `&`: write `*(1 & int)`)".to_owned(),
            ));
        }
        self.refuse_binary()?;
        Ok((term, true))
    }

    fn conjunction(&mut self) -> Result<Expr, CueError> {
        let mut terms = vec![self.unary()?];
        while self.eat("&") {
            terms.push(self.unary()?);
        }
        self.refuse_binary()?;
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn refuse_binary(&self) -> Result<(), CueError> {
        match self.peek() {
            Tok::Punct(
                p @ ("+" | "-" | "*" | "/" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "=~" | "!~" | "&&" | "||"),
            ) => Err(CueError::unsupported(self.pos(), &format!("the binary operator `{p}`"))),
            _ => Ok(()),
        }
    }

    fn unary(&mut self) -> Result<Expr, CueError> {
        let pos = self.pos();
        let op = match self.peek() {
            Tok::Punct("<") => UnaryOp::Lt,
            Tok::Punct("<=") => UnaryOp::Le,
            Tok::Punct(">") => UnaryOp::Gt,
            Tok::Punct(">=") => UnaryOp::Ge,
            Tok::Punct("!=") => UnaryOp::Ne,
            Tok::Punct("=~") => UnaryOp::Match,
            Tok::Punct("!~") => UnaryOp::NotMatch,
            Tok::Punct("-") => UnaryOp::Neg,
            Tok::Punct(p @ ("!" | "+")) => {
                return Err(CueError::unsupported(pos, &format!("the unary operator `{p}`")));
            }
            _ => return self.primary(),
        };
        self.next();
        Ok(Expr::Unary(op, Box::new(self.nested(Self::unary)?), pos))
    }

    fn primary(&mut self) -> Result<Expr, CueError> {
        let pos = self.pos();
        let mut expr = match self.next() {
            (Tok::Int(n), _) => Expr::Int(n),
            (Tok::Float(f), _) => Expr::Float(f),
            (Tok::Str(s), _) => Expr::Str(s),
            (Tok::Ident(i), _) => match i.as_str() {
                "null" => Expr::Null,
                "true" => Expr::Bool(true),
                "false" => Expr::Bool(false),
                "for" | "if" | "let" => return Err(CueError::unsupported(pos, "comprehensions")),
                _ if i.starts_with('#') => return Err(CueError::unsupported(pos, &format!("definitions ({i})"))),
                _ if i.starts_with('_') && i != "_" && i != "_|_" => {
                    return Err(CueError::unsupported(pos, &format!("hidden fields ({i})")));
                }
                _ => Expr::Ident(i, pos),
            },
            (Tok::Punct("{"), _) => Expr::Struct(self.fields(Some("}"))?),
            (Tok::Punct("["), _) => self.list()?,
            (Tok::Punct("("), _) => {
                let inner = self.nested(Self::expr)?;
                self.expect(")")?;
                inner
            }
            _ => {
                self.at -= 1;
                return Err(self.unexpected("a value"));
            }
        };
        loop {
            let pos = self.pos();
            if self.eat(".") {
                let (name, _) = self.ident("a name after `.`")?;
                expr = Expr::Select(Box::new(expr), name, pos);
            } else if self.eat("(") {
                let mut args = Vec::new();
                while !self.eat(")") {
                    args.push(self.nested(Self::expr)?);
                    if !self.is(")") {
                        self.expect(",")?;
                    }
                }
                expr = Expr::Call(Box::new(expr), args, pos);
            } else if self.is("[") {
                return Err(CueError::unsupported(pos, "index expressions (x[i])"));
            } else {
                return Ok(expr);
            }
        }
    }

    /// After `[`.
    fn list(&mut self) -> Result<Expr, CueError> {
        let mut items = Vec::new();
        loop {
            if self.eat("]") {
                return Ok(Expr::List(items, None));
            }
            if self.eat("...") {
                let rest = if self.is("]") || self.is(",") {
                    Expr::Ident("_".to_owned(), self.pos())
                } else {
                    self.nested(Self::expr)?
                };
                // One comma may close the list (`[1, ...,]`, or a line's end).
                self.eat(",");
                self.expect("]")?;
                return Ok(Expr::List(items, Some(Box::new(rest))));
            }
            if self.is_ident("for") || self.is_ident("if") {
                return Err(CueError::unsupported(self.pos(), "list comprehensions"));
            }
            items.push(self.nested(Self::expr)?);
            if !self.is("]") {
                self.expect(",")?;
            }
        }
    }
}
