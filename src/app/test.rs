//! `authwatch test`: runs every rule's `tests:` and reports each failure with its rule.

use std::path::Path;

use super::rule_tests;
use super::{Failure, engine_options, load_rules};
use crate::config::{Config, DEFAULT_RULES_DIR};

pub fn test(rules: Option<&Path>, verbose: bool) -> Result<(), Failure> {
    let dir = rules.unwrap_or(Path::new(DEFAULT_RULES_DIR));
    let set = load_rules(dir)?;
    let outcomes = rule_tests::run_all(&set.rules, &engine_options(&Config::default(), &set));
    let mut failed = 0;
    for o in &outcomes {
        match &o.failure {
            None if verbose => println!("ok     {} / {}", o.rule, o.test),
            None => {}
            Some(why) => {
                failed += 1;
                println!("FAILED {} / {}: {why}", o.rule, o.test);
            }
        }
    }
    let untested: Vec<&str> = set
        .rules
        .iter()
        .filter(|r| r.tests.is_empty())
        .map(|r| r.id.as_str())
        .collect();
    if !untested.is_empty() {
        println!("rules without tests: {}", untested.join(", "));
    }
    println!("{} passed, {failed} failed", outcomes.len() - failed);
    if failed > 0 {
        Err(Failure::TestsFailed)
    } else {
        Ok(())
    }
}
