use authwatch::engine::{Engine, EngineOptions, StateWrites};
use authwatch::state::{SledStore, Store};
use std::time::Instant;
fn main() {
    let rules = authwatch::rule::load_dir(std::path::Path::new("rules"))
        .unwrap()
        .enabled();
    let events = authwatch::synth::Traffic::default().generate(200_000);
    let mut engine = Engine::new(rules, &EngineOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let mut alerts = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        engine.process(e, &mut alerts);
        if (i + 1) % 50_000 == 0 {
            let t = Instant::now();
            let mut w = StateWrites::default();
            engine.checkpoint(&mut w);
            let bytes: usize = w.puts.iter().map(|(k, v)| k.len() + v.len()).sum();
            let n = w.puts.len();
            let t1 = t.elapsed();
            store.commit(w).unwrap();
            println!(
                "puts {n} bytes {bytes} serialize {:?} commit {:?}",
                t1,
                t.elapsed() - t1
            );
        }
    }
}
