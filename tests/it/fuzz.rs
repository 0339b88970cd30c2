//! The short fuzz run CI does on every change (the long one is `examples/fuzz.rs`, figures in
//! README's threat model): every decoder with the engine behind it, the rule parser and the
//! config parser, fed mutations of the repository's fixtures; any panic fails with the input
//! that caused it.

use crate::fuzz_harness::{run, targets};
use crate::support::repo;

/// Cases per target in a debug build: a few seconds each, enough to cross every mutation kind
/// many times over. The seed changes with the day, so CI explores new inputs over time while
/// any one day's failure reproduces with `examples/fuzz.rs --seed`.
const CASES: u64 = 4_000;

#[test]
fn no_input_makes_a_decoder_or_parser_panic() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    let mut failures = Vec::new();
    for mut target in targets(&repo()) {
        let report = run(&mut target, CASES, seed);
        assert_eq!(report.cases, CASES);
        for (input, message) in report.panics.iter().take(3) {
            failures.push(format!(
                "{} (seed {seed}): {message}\n  input: {}",
                target.name,
                String::from_utf8_lossy(&input[..input.len().min(400)])
            ));
        }
    }
    assert!(failures.is_empty(), "panics:\n{}", failures.join("\n"));
}

#[test]
fn mutations_reach_past_the_seeds() {
    // The fuzzer is only worth its run if mutated inputs are both accepted and refused: a
    // mutator that broke every input (or none) would exercise one branch of each decoder.
    use authwatch::normalize::{Format, normalize};
    let target = targets(&repo()).into_iter().next().expect("a target");
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(7);
    let (mut ok, mut bad) = (0, 0);
    for _ in 0..2_000 {
        let input = crate::fuzz_harness::mutate(&mut rng, &target.seeds);
        match normalize(Format::Native, &input) {
            Ok(_) => ok += 1,
            Err(_) => bad += 1,
        }
    }
    assert!(ok > 100 && bad > 100, "accepted {ok}, refused {bad}");
}
