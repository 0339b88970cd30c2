//! The long fuzz run: every target of `tests/common/fuzz.rs` for `--cases N` each (default one
//! million) from `--seed S`, printing cases/s per target; inputs that panic are written to
//! `fuzz-crashes/` and the exit code is 1. Run it in release:
//! `cargo run --release --example fuzz -- --cases 1000000`.

#[path = "../tests/common/fuzz.rs"]
mod fuzz;

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut cases = 1_000_000u64;
    let mut seed = 1u64;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match arg.as_str() {
            "--cases" => cases = value().parse().expect("--cases N"),
            "--seed" => seed = value().parse().expect("--seed S"),
            "--target" => only = Some(value()),
            other => panic!("unknown argument {other}; use --cases N --seed S --target NAME"),
        }
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let crashes = repo.join("fuzz-crashes");
    let (mut total, mut panics) = (0u64, 0usize);
    let started = Instant::now();
    for mut target in fuzz::targets(&repo) {
        if only
            .as_ref()
            .is_some_and(|o| !target.name.contains(o.as_str()))
        {
            continue;
        }
        let t = Instant::now();
        let report = fuzz::run(&mut target, cases, seed);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{:<24} {:>10} cases {:>8.0} cases/s {:>3} seeds  {} panics",
            target.name,
            report.cases,
            report.cases as f64 / secs,
            target.seeds.len(),
            report.panics.len()
        );
        for (i, (input, message)) in report.panics.iter().enumerate() {
            std::fs::create_dir_all(&crashes).unwrap();
            let file = crashes.join(format!(
                "{}-{seed}-{i}",
                target.name.replace([':', ' '], "_")
            ));
            std::fs::write(&file, input).unwrap();
            eprintln!("{}: {message} ({})", target.name, file.display());
        }
        total += report.cases;
        panics += report.panics.len();
    }
    println!(
        "total {total} cases in {:.0} s, {panics} panics (seed {seed})",
        started.elapsed().as_secs_f64()
    );
    if panics > 0 {
        std::process::exit(1);
    }
}
