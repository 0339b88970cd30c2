//! `authwatch forget` and `authwatch export`: erase or print everything the state holds about
//! one user (GDPR), by `user` id and by `username`. They open the store, so the daemon using
//! the same state directory must be stopped first (the store says so if it is not).

use std::path::Path;

use super::{Failure, engine_options, load_config, load_rules, open_state};
use crate::engine::{Engine, StateWrites};
use crate::state::{self, Store};

fn restored_engine(config: Option<&Path>) -> Result<(Engine, crate::state::SledStore), Failure> {
    let cfg = load_config(config)?;
    let set = load_rules(&cfg.rules_dir)?;
    let store = open_state(&cfg.state_dir, false)?;
    let mut engine = Engine::new(set.enabled(), &engine_options(&cfg, &set));
    engine
        .restore(state::engine_entries(&store).map_err(|e| Failure::Runtime(e.into()))?)
        .map_err(|e| anyhow::anyhow!("cannot read the state: {e}"))?;
    Ok((engine, store))
}

pub fn forget(user: &str, config: Option<&Path>) -> Result<(), Failure> {
    let (mut engine, store) = restored_engine(config)?;
    let touched = engine.forget(user);
    let mut writes = StateWrites::default();
    engine.checkpoint(&mut writes);
    store
        .commit(writes)
        .map_err(|e| Failure::Runtime(e.into()))?;
    eprintln!("forgot {user}: {touched} state entries removed or scrubbed");
    Ok(())
}

pub fn export(user: &str, config: Option<&Path>) -> Result<(), Failure> {
    let (engine, _store) = restored_engine(config)?;
    for item in engine.export(user) {
        println!("{item}");
    }
    Ok(())
}
