//! The environment variables a sandbox builder collects through
//! `set-environment-variable`: each name checked against the engine's rule (the
//! seed's by default), a name set twice a naming conflict.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::{Error, Result, malformed};

/// The seed's rule for environment variable and proxy names.
pub const SEED_NAME_RULE: &str = "^[a-zA-Z0-9_-]+$";

/// Whether `name` matches [`SEED_NAME_RULE`].
pub fn seed_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A builder's environment variables, sorted by name.
pub struct EnvVars {
    rule: &'static str,
    valid: fn(&str) -> bool,
    vars: RefCell<BTreeMap<String, String>>,
}

impl Default for EnvVars {
    fn default() -> Self {
        EnvVars::with_rule(SEED_NAME_RULE, seed_name)
    }
}

impl EnvVars {
    /// Names checked by `valid`, which `rule` describes in the error.
    pub fn with_rule(rule: &'static str, valid: fn(&str) -> bool) -> Self {
        EnvVars {
            rule,
            valid,
            vars: RefCell::default(),
        }
    }

    /// `set-environment-variable`: malformed-payload for a name outside the rule,
    /// naming-conflict for one set before.
    pub fn set(&self, name: String, value: String) -> Result<()> {
        if !(self.valid)(&name) {
            return Err(malformed(format!(
                "Environment variables name: '{name}' doesn't match: {}",
                self.rule
            )));
        }
        let mut vars = self.vars.borrow_mut();
        if vars.contains_key(&name) {
            return Err(Error::NamingConflict);
        }
        vars.insert(name, value);
        Ok(())
    }

    /// The variables, by name.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.vars.borrow().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}
