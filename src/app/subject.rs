//! `authwatch forget` and `authwatch export`: erase or print everything the state holds about
//! one user (GDPR), by `user` id and by `username`: engine state (groups, held events,
//! baselines), and the outbox (alerts waiting for delivery, their evidence, dead letters).
//! They open the store, so the daemon using the same state directory must be stopped first
//! (the store says so if it is not).

use std::path::Path;
use std::sync::Arc;

use super::{Failure, engine_options, load_config, load_rules, open_state};
use crate::engine::{self, Engine};
use crate::outbox::OutboxStore;
use crate::state::StateWrites;
use crate::state::{self, SledStore, Store};

fn restored_engine(config: Option<&Path>) -> Result<(Engine, SledStore), Failure> {
    let cfg = load_config(config)?;
    let set = load_rules(&cfg.rules_dir)?;
    let store = open_state(&cfg.state_dir, false)?;
    let mut engine = Engine::new(set.enabled(), &engine_options(&cfg, &set));
    engine
        .restore(state::scan_prefixes(&store, &engine::STATE_PREFIXES)?)
        .map_err(|e| anyhow::anyhow!("cannot read the state: {e}"))?;
    Ok((engine, store))
}

pub fn forget(user: &str, config: Option<&Path>) -> Result<(), Failure> {
    let (mut engine, store) = restored_engine(config)?;
    let store = Arc::new(store);
    let engine_touched = engine.forget(user);
    let mut writes = StateWrites::default();
    engine.checkpoint(&mut writes);
    let outbox = OutboxStore::new(store.clone());
    let outbox_touched = outbox.forget(user, &mut writes)?;
    store.commit(writes)?;
    drop(outbox);
    // sled keeps deleted and overwritten values in its old segments: only a copy of what is
    // live, swapped in for the old files, leaves none of the user's bytes on disk.
    let store = Arc::into_inner(store).expect("forget holds the only handle on the store");
    store.rewrite()?;
    eprintln!(
        "forgot {user}: {} state entries removed or scrubbed ({engine_touched} in detection state, {outbox_touched} outbox alerts and dead letters); the state directory was rewritten",
        engine_touched + outbox_touched
    );
    Ok(())
}

pub fn export(user: &str, config: Option<&Path>) -> Result<(), Failure> {
    let (engine, store) = restored_engine(config)?;
    for item in engine.export(user) {
        println!("{item}");
    }
    let outbox = OutboxStore::new(Arc::new(store));
    for item in outbox.export(user)? {
        println!("{item}");
    }
    Ok(())
}
