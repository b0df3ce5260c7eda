//! Taskcluster scope matching: a scope ending in `*` grants every scope with that prefix.
//!
//! This module owns the two questions the fake asks of scopes: does a set of scopes satisfy one
//! required scope, and which required scopes are missing. Roles (`assume:`) are not expanded: the
//! fake has no role table, so a test grants the expanded scopes directly.

/// Whether `pattern` grants `scope`: equal, or `pattern` ends in `*` and `scope` starts with the
/// rest of it. This also compares two patterns (`a:*` grants `a:b*`), as the real auth service does.
pub fn grants(pattern: &str, scope: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => scope.starts_with(prefix),
        None => pattern == scope,
    }
}

/// Whether any scope in `have` grants `scope`.
pub fn satisfies(have: &[String], scope: &str) -> bool {
    have.iter().any(|p| grants(p, scope))
}

/// The scopes of `required` that `have` does not grant, in order.
pub fn missing(have: &[String], required: &[String]) -> Vec<String> {
    required.iter().filter(|s| !satisfies(have, s)).cloned().collect()
}

/// A requirement on the caller's scopes: every `all` scope, and at least one scope of each
/// `any_of` group (used where the real API accepts alternatives, such as task priorities).
#[derive(Debug, Default, Clone)]
pub struct Requirement {
    /// Scopes that must all be granted.
    pub all: Vec<String>,
    /// Groups of which at least one scope must be granted.
    pub any_of: Vec<Vec<String>>,
}

impl Requirement {
    /// A requirement for exactly these scopes.
    pub fn all<I: IntoIterator<Item = String>>(scopes: I) -> Self {
        Requirement {
            all: scopes.into_iter().collect(),
            any_of: Vec::new(),
        }
    }

    /// The scopes to name in an `InsufficientScopes` error, or `None` when `have` satisfies this.
    /// An unsatisfied `any_of` group is named by its first scope.
    pub fn unsatisfied(&self, have: &[String]) -> Option<Vec<String>> {
        let mut out = missing(have, &self.all);
        for group in &self.any_of {
            if !group.iter().any(|s| satisfies(have, s))
                && let Some(first) = group.first()
            {
                out.push(first.clone());
            }
        }
        if out.is_empty() { None } else { Some(out) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_and_prefix() {
        assert!(grants("queue:claim-work:p/w", "queue:claim-work:p/w"));
        assert!(!grants("queue:claim-work:p/w", "queue:claim-work:p/w2"));
        assert!(grants("queue:claim-work:*", "queue:claim-work:p/w"));
        assert!(grants("*", "anything"));
        assert!(grants("a:*", "a:b*"));
        assert!(!grants("a:b*", "a:*"));
        assert!(!grants("a:b", "a:b*"));
    }

    #[test]
    fn missing_lists_in_order() {
        let have = v(&["queue:resolve-task:T/0"]);
        let need = v(&["queue:create-artifact:T/0", "queue:resolve-task:T/0", "x"]);
        assert_eq!(missing(&have, &need), v(&["queue:create-artifact:T/0", "x"]));
    }

    #[test]
    fn any_of_groups() {
        let req = Requirement {
            all: v(&["a"]),
            any_of: vec![v(&["p:high", "p:low"])],
        };
        assert_eq!(req.unsatisfied(&v(&["a", "p:low"])), None);
        assert_eq!(req.unsatisfied(&v(&["a"])), Some(v(&["p:high"])));
        assert_eq!(req.unsatisfied(&v(&["p:*"])), Some(v(&["a"])));
    }
}
