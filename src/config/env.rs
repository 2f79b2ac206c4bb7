//! Reading declared variables ([`vars`](super::vars)) through a lookup function, each error
//! naming the variable and the form it expects.

use std::time::Duration;

use super::vars::{Kind, Var};
use super::ConfigError;

/// Reads declared variables through a lookup function; an empty value counts as unset.
pub(super) struct Env<F> {
    pub(super) lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The raw value, if set.
    pub(super) fn raw(&self, var: &Var) -> Option<String> {
        (self.lookup)(var.name).filter(|v| !v.trim().is_empty())
    }

    /// The value, or the declared default.
    pub(super) fn text(&self, var: &Var) -> String {
        self.raw(var).unwrap_or_else(|| var.default.to_owned())
    }

    /// Parses the value (or default) with `parse`, naming the variable in any error.
    pub(super) fn parsed<T>(
        &self,
        var: &Var,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        parse(&self.text(var)).map_err(|problem| ConfigError {
            variable: var.name,
            problem,
        })
    }

    /// A whole number within the variable's declared range.
    pub(super) fn whole<T: TryFrom<u64>>(&self, var: &Var) -> Result<T, ConfigError> {
        let Kind::Whole { min, max } = var.kind else {
            unreachable!("{} is not declared as a whole number", var.name)
        };
        self.parsed(var, |raw| {
            raw.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .and_then(|n| T::try_from(n).ok())
                .ok_or_else(|| format!("expected a whole number from {min} to {max}, got `{raw}`"))
        })
    }

    pub(super) fn secs(&self, var: &Var) -> Result<Duration, ConfigError> {
        self.whole(var).map(Duration::from_secs)
    }

    /// A whole number where 0 means "none".
    pub(super) fn optional<T: TryFrom<u64>>(&self, var: &Var) -> Result<Option<T>, ConfigError> {
        let value: u64 = self.whole(var)?;
        Ok((value > 0).then(|| T::try_from(value).ok()).flatten())
    }

    pub(super) fn bool(&self, var: &Var) -> Result<bool, ConfigError> {
        debug_assert_eq!(var.kind, Kind::Bool, "{}", var.name);
        self.parsed(var, |raw| match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("expected true or false, got `{raw}`")),
        })
    }
}
