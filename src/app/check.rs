//! `authwatch check`: validates configuration and rules, reporting every error; no network.

use std::path::Path;

use super::{Failure, enricher, load_config, load_rules, rules_dir};

pub fn check(rules: Option<&Path>, config: Option<&Path>) -> Result<(), Failure> {
    let mut errors = Vec::new();
    let cfg = match load_config(config) {
        Ok(c) => c,
        Err(Failure::Invalid(mut e)) => {
            errors.append(&mut e);
            Default::default()
        }
        Err(other) => return Err(other),
    };
    // The databases are opened and walked whole: a damaged file shows here, not at 3 am.
    match enricher(&cfg) {
        Ok(_) => {}
        Err(Failure::Invalid(mut e)) => errors.append(&mut e),
        Err(other) => return Err(other),
    }
    let dir = rules_dir(rules, &cfg);
    match load_rules(&dir) {
        Ok(set) => {
            if errors.is_empty() {
                let enabled = set.rules.iter().filter(|r| r.enabled).count();
                let tests: usize = set.rules.iter().map(|r| r.tests.len()).sum();
                println!(
                    "{}: {} rules ({enabled} enabled, {tests} tests) OK",
                    dir.display(),
                    set.rules.len()
                );
            }
        }
        Err(Failure::Invalid(mut e)) => errors.append(&mut e),
        Err(other) => return Err(other),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::Invalid(errors))
    }
}
