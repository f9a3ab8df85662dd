//! Compose's variable interpolation, over the variables a catalog was given.
//!
//! Compose replaces `${NAME}` and `$NAME` in values with the host's
//! environment. Berth never reads its own environment for this (an app must
//! not change with how berthd was started): the values come from
//! [`Vars`], which the catalog's entry supplies (see
//! [`super::registered`]). The syntax is Compose's:
//!
//! | written | gives |
//! |---|---|
//! | `$$` | a literal `$` |
//! | `${NAME}`, `$NAME` | the value; an error if NAME is not set |
//! | `${NAME:-default}` | default if NAME is unset or empty |
//! | `${NAME-default}` | default if NAME is unset |
//! | `${NAME:?message}` | an error saying message if NAME is unset or empty |
//! | `${NAME?message}` | an error saying message if NAME is unset |
//! | `${NAME:+other}` | other if NAME is set and not empty, else empty |
//! | `${NAME+other}` | other if NAME is set, else empty |
//!
//! Defaults may themselves use variables. Unlike Compose, an unset variable
//! without a default is an error rather than an empty string with a warning:
//! an app whose image is `/demo/web` would fail much later and less clearly.

use std::collections::BTreeMap;

/// Variables for interpolation: name → value.
pub type Vars = BTreeMap<String, String>;

/// Replace the variables in `s`. The error says what to do.
pub fn interpolate(s: &str, vars: &Vars) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let close = matching_brace(&chars, i + 1).ok_or_else(|| {
                    format!("`{s}` has a `${{` without its `}}`; write `$$` for a literal `$`")
                })?;
                let inner: String = chars[i + 2..close].iter().collect();
                out.push_str(&braced(&inner, vars, s)?);
                i = close + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_')
                {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                out.push_str(lookup(&name, vars)?);
                i = end;
            }
            _ => {
                return Err(format!(
                    "`{s}` has a `$` that starts no variable; write `$$` for a literal `$`"
                ))
            }
        }
    }
    Ok(out)
}

/// Index of the `}` closing the `{` at `open`, counting nested `${...}`.
fn matching_brace(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(inner: &str, vars: &Vars, whole: &str) -> Result<String, String> {
    let name_len = inner
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map_or(inner.len(), |(i, _)| i);
    let (name, rest) = inner.split_at(name_len);
    if !valid_name(name) {
        return Err(format!(
            "`{whole}` has `${{{inner}}}`, which names no variable (names are letters, digits and `_`)"
        ));
    }
    let value = vars.get(name).map(String::as_str);
    let (op, arg) = if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if rest.is_empty() {
        ("", "")
    } else {
        let first = rest.chars().next().map_or(0, char::len_utf8);
        rest.split_at(first)
    };
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    match op {
        "" => lookup(name, vars).map(str::to_string),
        ":-" if set_nonempty => Ok(value.unwrap_or_default().to_string()),
        "-" if value.is_some() => Ok(value.unwrap_or_default().to_string()),
        ":-" | "-" => interpolate(arg, vars),
        ":?" | "?" if set_nonempty || (op == "?" && value.is_some()) => {
            Ok(value.unwrap_or_default().to_string())
        }
        ":?" | "?" => Err(if arg.is_empty() {
            not_set(name)
        } else {
            format!("variable `{name}` is not set: {arg}")
        }),
        ":+" if set_nonempty => interpolate(arg, vars),
        "+" if value.is_some() => interpolate(arg, vars),
        ":+" | "+" => Ok(String::new()),
        _ => Err(format!(
            "`{whole}` has `${{{inner}}}`: after the name Berth understands `}}`, `:-`, `-`, `:?`, `?`, `:+` or `+`"
        )),
    }
}

fn lookup<'a>(name: &str, vars: &'a Vars) -> Result<&'a str, String> {
    vars.get(name)
        .map(String::as_str)
        .ok_or_else(|| not_set(name))
}

fn not_set(name: &str) -> String {
    format!(
        "variable `{name}` is not set: give the catalog a value for it when adding it \
         (`berth catalog add PATH --set {name}=VALUE`), or write `$$` for a literal `$`"
    )
}

/// Compose's variable names: a letter or `_`, then letters, digits, `_`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("REG", "127.0.0.1:5000"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms() {
        let v = vars();
        let i = |s: &str| interpolate(s, &v);
        assert_eq!(i("${REG}/demo/web").unwrap(), "127.0.0.1:5000/demo/web");
        assert_eq!(i("$REG/x").unwrap(), "127.0.0.1:5000/x");
        assert_eq!(i("pg_isready -U $$USER").unwrap(), "pg_isready -U $USER");
        assert_eq!(i("${MISSING:-a}").unwrap(), "a");
        assert_eq!(i("${EMPTY:-a}").unwrap(), "a");
        assert_eq!(i("${EMPTY-a}").unwrap(), "");
        assert_eq!(i("${MISSING-${REG}}").unwrap(), "127.0.0.1:5000");
        assert_eq!(i("${REG:+yes}").unwrap(), "yes");
        assert_eq!(i("${EMPTY:+yes}").unwrap(), "");
        assert_eq!(i("${EMPTY+yes}").unwrap(), "yes");
        assert_eq!(i("${REG:?need it}").unwrap(), "127.0.0.1:5000");
        assert_eq!(i("no dollars").unwrap(), "no dollars");
    }

    #[test]
    fn errors_say_what_to_do() {
        let v = vars();
        let e = interpolate("${MISSING}/x", &v).unwrap_err();
        assert!(
            e.contains("`MISSING` is not set") && e.contains("--set MISSING="),
            "{e}"
        );
        assert!(interpolate("$MISSING", &v).unwrap_err().contains("MISSING"));
        assert_eq!(
            interpolate("${MISSING:?the registry}", &v).unwrap_err(),
            "variable `MISSING` is not set: the registry"
        );
        assert!(interpolate("cost $5", &v).unwrap_err().contains("`$$`"));
        assert!(interpolate("${REG", &v).unwrap_err().contains("without"));
        assert!(interpolate("${1X}", &v).unwrap_err().contains("names no"));
        assert!(interpolate("${REG/x}", &v).unwrap_err().contains("`:-`"));
    }
}
