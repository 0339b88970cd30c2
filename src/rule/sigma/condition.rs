//! Sigma `condition` expressions: `and`, `or`, `not`, parentheses, `1 of`/`any of`/`all of`
//! over selection names (with `*` wildcards) or `them`. `not` binds tighter than `and`, which
//! binds tighter than `or`. A `|` starts a Sigma v1 aggregation, which is refused.

/// A parsed condition over selections, by their index in the detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    Sel(usize),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

/// Why a condition cannot run; `unsupported` marks valid Sigma authwatch does not run.
#[derive(Debug, PartialEq, Eq)]
pub struct CondError {
    pub message: String,
    pub unsupported: bool,
}

fn error(message: impl Into<String>) -> CondError {
    CondError {
        message: message.into(),
        unsupported: false,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Word(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, CondError> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c == '|' {
            return Err(CondError {
                message: "Sigma v1 aggregations (`| count() ...`) are not supported: write a \
                          correlation rule (event_count, value_count)"
                    .into(),
                unsupported: true,
            });
        }
        if c.is_whitespace() || c == '(' || c == ')' {
            if !word.is_empty() {
                out.push(Token::Word(std::mem::take(&mut word)));
            }
            match c {
                '(' => out.push(Token::Open),
                ')' => out.push(Token::Close),
                _ => {}
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        out.push(Token::Word(word));
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    names: &'a [String],
}

/// Parses `text` against the detection's selection names.
pub fn parse(text: &str, names: &[String]) -> Result<Cond, CondError> {
    let mut p = Parser {
        tokens: tokens(text)?,
        at: 0,
        names,
    };
    if p.tokens.is_empty() {
        return Err(error("the condition is empty"));
    }
    let cond = p.or()?;
    if let Some(t) = p.tokens.get(p.at) {
        return Err(error(format!(
            "unexpected {} in the condition",
            describe(t)
        )));
    }
    Ok(cond)
}

fn describe(t: &Token) -> String {
    match t {
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::Word(w) => format!("`{w}`"),
    }
}

impl Parser<'_> {
    fn peek_word(&self, w: &str) -> bool {
        // Operators are lowercase words, as the specification (and pySigma) has them.
        matches!(self.tokens.get(self.at), Some(Token::Word(x)) if x == w)
    }

    fn or(&mut self) -> Result<Cond, CondError> {
        let mut parts = vec![self.and()?];
        while self.peek_word("or") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Cond::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Cond, CondError> {
        let mut parts = vec![self.not()?];
        while self.peek_word("and") {
            self.at += 1;
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Cond::And(parts)
        })
    }

    fn not(&mut self) -> Result<Cond, CondError> {
        if self.peek_word("not") {
            self.at += 1;
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond, CondError> {
        let Some(token) = self.tokens.get(self.at).cloned() else {
            return Err(error("the condition ends too early"));
        };
        self.at += 1;
        match token {
            Token::Open => {
                let inner = self.or()?;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err(error("a `(` is not closed"));
                }
                self.at += 1;
                Ok(inner)
            }
            Token::Close => Err(error("unexpected `)` in the condition")),
            Token::Word(w) => {
                let quantifier = w.clone();
                if self.peek_word("of") && ["1", "any", "all"].contains(&quantifier.as_str()) {
                    self.at += 1;
                    let Some(Token::Word(target)) = self.tokens.get(self.at).cloned() else {
                        return Err(error(format!("`{w} of` needs `them` or a selection name")));
                    };
                    self.at += 1;
                    let picked = self.pick(&target)?;
                    let sels = picked.into_iter().map(Cond::Sel).collect();
                    return Ok(if quantifier == "all" {
                        Cond::And(sels)
                    } else {
                        Cond::Or(sels)
                    });
                }
                if ["and", "or", "of"].contains(&quantifier.as_str()) {
                    return Err(error(format!("unexpected `{w}` in the condition")));
                }
                if w.contains('*') {
                    return Err(error(format!(
                        "`{w}` has a wildcard: write `1 of {w}` or `all of {w}`"
                    )));
                }
                match self.names.iter().position(|n| *n == w) {
                    Some(i) => Ok(Cond::Sel(i)),
                    None => Err(error(format!(
                        "the condition names `{w}`, which the detection does not define"
                    ))),
                }
            }
        }
    }

    /// The selections `them` or a name pattern stands for. Names starting with `_` are left
    /// out unless the pattern starts with `_` too (as pySigma does).
    fn pick(&self, target: &str) -> Result<Vec<usize>, CondError> {
        let picked: Vec<usize> = self
            .names
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                let hidden = n.starts_with('_') && !target.starts_with('_');
                !hidden && (target == "them" || wildcard_match(target, n))
            })
            .map(|(i, _)| i)
            .collect();
        if picked.is_empty() {
            return Err(error(format!("`{target}` matches no selection")));
        }
        Ok(picked)
    }
}

/// `*` matches any run of characters in a selection name.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split gives one part");
    let Some(mut left) = name.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for part in middle {
        match left.find(part) {
            Some(i) => left = &left[i + part.len()..],
            None => return false,
        }
    }
    left.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["sel_a", "sel_b", "filter", "_hidden"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn precedence_parentheses_and_quantifiers() {
        let n = names();
        assert_eq!(
            parse("sel_a or sel_b and not filter", &n),
            Ok(Cond::Or(vec![
                Cond::Sel(0),
                Cond::And(vec![Cond::Sel(1), Cond::Not(Box::new(Cond::Sel(2)))])
            ]))
        );
        assert_eq!(
            parse("(sel_a or sel_b) and not filter", &n),
            Ok(Cond::And(vec![
                Cond::Or(vec![Cond::Sel(0), Cond::Sel(1)]),
                Cond::Not(Box::new(Cond::Sel(2)))
            ]))
        );
        assert_eq!(
            parse("1 of sel_* and not 1 of filter*", &n),
            Ok(Cond::And(vec![
                Cond::Or(vec![Cond::Sel(0), Cond::Sel(1)]),
                Cond::Not(Box::new(Cond::Or(vec![Cond::Sel(2)])))
            ]))
        );
        assert_eq!(
            parse("all of them", &n),
            Ok(Cond::And(vec![Cond::Sel(0), Cond::Sel(1), Cond::Sel(2)]))
        );
        assert_eq!(
            parse("any of them", &n),
            Ok(Cond::Or(vec![Cond::Sel(0), Cond::Sel(1), Cond::Sel(2)]))
        );
    }

    #[test]
    fn mistakes_and_aggregations_are_refused() {
        let n = names();
        assert!(parse("sel_a | count() > 5", &n).unwrap_err().unsupported);
        assert!(!parse("sel_c", &n).unwrap_err().unsupported);
        assert!(parse("(sel_a", &n).is_err());
        assert!(parse("sel_a and", &n).is_err());
        assert!(parse("1 of nope*", &n).is_err());
        assert!(parse("sel_*", &n).is_err());
        assert!(parse("", &n).is_err());
    }
}
