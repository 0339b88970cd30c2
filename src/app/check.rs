//! `authwatch check`: validates configuration and rules, reporting every error; no network.

use std::path::Path;

use super::{Failure, enricher, load_config, rules_dir};
use crate::config::{Config, Source};
use crate::normalize::Format;
use crate::rule;
use crate::source::kafka::scale_out::{self, Route};

/// `strict`: warnings (Sigma rules skipped for features authwatch does not run) are errors.
pub fn check(rules: Option<&Path>, config: Option<&Path>, strict: bool) -> Result<(), Failure> {
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
    match rule::load_dir(&dir) {
        Ok(set) => {
            for w in &set.warnings {
                if strict {
                    errors.push(format!("{w} (--strict)"));
                } else {
                    eprintln!("warning: {w}");
                }
            }
            let formats = configured_formats(&cfg);
            let sigma = |r: &&rule::Rule| r.enabled && r.sigma.is_some();
            let part = |r: &rule::Rule| r.sigma.clone().expect("filtered");
            // Two kinds of idle: a logsource authwatch has no normaliser for (OneLogin, Duo)
            // idles under any configuration; one for a format not configured here would not.
            let unread: Vec<&str> = set
                .rules
                .iter()
                .filter(sigma)
                .filter(|r| part(r).starved(None, &set.rules))
                .map(|r| r.id.as_str())
                .collect();
            let idle: Vec<&str> = set
                .rules
                .iter()
                .filter(sigma)
                .filter(|r| {
                    !part(r).starved(None, &set.rules)
                        && part(r).starved(Some(&formats), &set.rules)
                })
                .map(|r| r.id.as_str())
                .collect();
            if !unread.is_empty() {
                println!(
                    "{} Sigma rules idle (their logsource is no format authwatch reads): {}",
                    unread.len(),
                    unread.join(", ")
                );
            }
            if !idle.is_empty() {
                let names: Vec<&str> = formats.iter().map(|f| f.as_str()).collect();
                println!(
                    "{} Sigma rules idle (their logsource is no configured format: {}): {}",
                    idle.len(),
                    names.join(", "),
                    idle.join(", ")
                );
            }
            if let Source::Kafka(kafka) = &cfg.source
                && let Some(scale) = &kafka.scale_out
            {
                let route = scale_out::plan(kafka, scale, &set.enabled());
                match &route {
                    Ok(Route::Direct) => println!(
                        "scale-out: the input topic's key groups every rule; detection reads it directly"
                    ),
                    Ok(Route::Hop(plan)) => println!(
                        "scale-out: events are repartitioned by {} through the topic {} (consumer group {})",
                        plan.key_names(),
                        plan.topic,
                        plan.task_group
                    ),
                    Err(e) => errors.push(e.clone()),
                }
                if scale.changelog
                    && let Ok(route) = &route
                {
                    match scale_out::changelog_topics(kafka, route) {
                        Ok((changelog, tasks)) => println!(
                            "scale-out: each partition of {tasks} is a task whose state is kept in the topic {changelog} (a snapshot every {} checkpoints that changed it)",
                            scale.snapshot_every
                        ),
                        Err(e) => errors.push(e),
                    }
                }
                if scale.alert_topic {
                    let groups: Vec<String> = cfg
                        .sinks
                        .iter()
                        .map(|s| crate::config::deliver_group(&kafka.group_id, &s.name))
                        .collect();
                    println!(
                        "scale-out: alerts go through the topic {}, delivered by the consumer groups {}",
                        crate::config::alert_topic_name(&kafka.group_id),
                        groups.join(", ")
                    );
                }
            }
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
        Err(diags) => errors.extend(diags.iter().map(ToString::to_string)),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::Invalid(errors))
    }
}

/// The formats events can arrive in with this configuration: the source's, or every ingest
/// route's for `kind = "http"`.
fn configured_formats(cfg: &Config) -> Vec<Format> {
    match cfg.source {
        Source::Http(_) => vec![Format::Native, Format::Auth0, Format::Okta],
        _ => vec![cfg.format],
    }
}
