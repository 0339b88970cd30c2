//! `dead-letters`, `redrive` and `outbox`: the operator's view of delivery. They open the
//! state directory, so they run while the daemon is stopped (it holds the directory while
//! it runs); redriven alerts are delivered on the daemon's next start.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::{Failure, load_config, open_state};
use crate::config::Config;
use crate::event::format_ts;
use crate::outbox::OutboxStore;
use crate::sink::Record;

fn open(config: Option<&Path>) -> Result<(Config, OutboxStore), Failure> {
    let cfg = load_config(config)?;
    let store = open_state(&cfg.state_dir, false)?;
    Ok((cfg, OutboxStore::new(Arc::new(store))))
}

/// A sink name given on the command line must be one the configuration (or the dead
/// letters) knows, or the command would quietly do nothing.
fn check_sink(cfg: &Config, outbox: &OutboxStore, sink: Option<&str>) -> Result<(), Failure> {
    let Some(name) = sink else { return Ok(()) };
    let known =
        cfg.sinks.iter().any(|s| s.name == name) || !outbox.dead_letters(Some(name))?.is_empty();
    if known {
        return Ok(());
    }
    let names: Vec<&str> = cfg.sinks.iter().map(|s| s.name.as_str()).collect();
    Err(Failure::Invalid(vec![format!(
        "no sink is called `{name}`; the configured sinks are {}",
        names.join(", ")
    )]))
}

pub fn dead_letters(sink: Option<&str>, config: Option<&Path>) -> Result<(), Failure> {
    let (cfg, outbox) = open(config)?;
    check_sink(&cfg, &outbox, sink)?;
    let letters = outbox.dead_letters(sink)?;
    let mut out = std::io::stdout().lock();
    for l in &letters {
        let line = json!({
            "sink": l.sink, "id": l.alert["id"], "rule": l.alert["rule"],
            "severity": l.alert["severity"], "stored_at": format_ts(l.stored_at),
            "dead_at": format_ts(l.dead_at), "attempts": l.attempts, "reason": l.reason,
            "alert": l.alert,
        });
        writeln!(out, "{line}")?;
    }
    eprintln!(
        "{} dead letter(s); `authwatch redrive` puts them back in the outbox",
        letters.len()
    );
    Ok(())
}

pub fn redrive(sink: Option<&str>, id: Option<&str>, config: Option<&Path>) -> Result<(), Failure> {
    let (cfg, outbox) = open(config)?;
    check_sink(&cfg, &outbox, sink)?;
    let n = outbox.redrive(sink, id)?;
    eprintln!("{n} alert(s) put back in the outbox; the daemon delivers them when it starts");
    Ok(())
}

pub fn status(config: Option<&Path>) -> Result<(), Failure> {
    let (cfg, outbox) = open(config)?;
    let cursors = outbox.cursors()?;
    let next = outbox.next_seq()?;
    let mut out = std::io::stdout().lock();
    for s in &cfg.sinks {
        let cursor = cursors
            .iter()
            .find(|(n, _)| n == &s.name)
            .map_or(next, |(_, c)| *c);
        let backlog = outbox.count_from(cursor, &|e| {
            e.is_for(&s.name)
                && Record::from_json(&e.alert)
                    .is_ok_and(|r| s.routing.accepts(&r.rule, r.severity(), &r.tags))
        })?;
        let dead = outbox.dead_letters(Some(&s.name))?.len();
        let line = json!({"sink": s.name, "kind": s.kind.name(), "pending": backlog, "dead_letters": dead});
        writeln!(out, "{line}")?;
    }
    Ok(())
}
