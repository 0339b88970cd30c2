//! One native `match` against the Sigma selection that says the same, run in turns over the
//! same synthetic traffic so that a shared machine's drift falls on both alike; prints each
//! one's median events/s (`cargo run --release --example sigma_vs_native [ROUNDS]`). The
//! criterion pair is `sigma/one_rule/*` in benches/pipeline.rs.

use std::path::Path;
use std::time::Instant;

use authwatch::engine::{Engine, EngineOptions};
use authwatch::rule;
use authwatch::synth::Traffic;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: usize = 100_000;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(15, |r| r.parse().expect("ROUNDS is a number"));
    let events = Traffic::default().generate(EVENTS);
    let options = EngineOptions::default();
    let native = rule::load_file_text(
        Path::new("native.yaml"),
        "id: one\ntitle: One\nseverity: low\nkind: match\nmatch: {type: login.failure, reason: bad_password}\n",
    )
    .0;
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("one.yml"),
        "title: One\nname: one\nlogsource: {product: authwatch}\ndetection:\n  selection: {type: login.failure, reason: bad_password}\n  condition: selection\n",
    )
    .expect("the rule is written");
    let mut sigma = rule::load_dir(dir.path())
        .expect("the rule loads")
        .enabled();
    let mut native = native;
    let mut names = ["native match", "sigma selection"];
    if let Some(extra) = std::env::args().nth(2) {
        let pack = rule::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
            .expect("the default pack loads")
            .enabled();
        sigma = pack.clone();
        sigma.extend(
            rule::load_dir(Path::new(&extra))
                .expect("the rules load")
                .enabled(),
        );
        native = pack;
        names = ["the pack", "the pack and the Sigma rules"];
    }
    let mut rates = [Vec::new(), Vec::new()];
    // The first round warms caches and the allocator for both; it is not counted.
    for round in 0..=rounds {
        for (i, rules) in [&native, &sigma].into_iter().enumerate() {
            let mut engine = Engine::new(rules.to_vec(), &options);
            let batch = events.clone();
            let start = Instant::now();
            let mut alerts = Vec::new();
            for e in batch {
                engine.process(e, &mut alerts);
            }
            engine.flush(&mut alerts);
            drop(engine);
            let rate = EVENTS as f64 / start.elapsed().as_secs_f64();
            if round > 0 {
                rates[i].push(rate);
            }
        }
    }
    for (name, mut r) in names.into_iter().zip(rates) {
        r.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.2}M events/s over {rounds} rounds",
            r[r.len() / 2] / 1e6
        );
    }
}
