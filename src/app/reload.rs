//! Hot reload of the rule set, on SIGHUP and when a file under the rules directory changes:
//! the whole new set is validated first; on success it replaces the running set (rules whose
//! counting did not change keep their state) and the diff is logged; on failure the running
//! set stays and every error is logged.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::engine::{Engine, EngineOptions};
use crate::rule;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::label;

/// How often the rules directory is looked at for changes. Polling a few files' metadata
/// every two seconds costs nothing and works on every filesystem (inotify misses NFS and
/// some container mounts).
const POLL: Duration = Duration::from_secs(2);

/// What else a new rule set must satisfy (scale-out: every group still whole in one
/// partition); the error says why it is refused.
pub type Guard = Box<dyn Fn(&[rule::Rule]) -> Result<(), String> + Send>;

pub struct Reloader {
    dir: PathBuf,
    options: EngineOptions,
    fingerprint: u64,
    last_poll: Instant,
    guard: Option<Guard>,
}

impl Reloader {
    pub fn new(dir: PathBuf, options: EngineOptions) -> Reloader {
        let fingerprint = dir_fingerprint(&dir);
        Reloader {
            dir,
            options,
            fingerprint,
            last_poll: Instant::now(),
            guard: None,
        }
    }

    /// Refuses a new rule set that `guard` rejects, keeping the running one.
    pub fn with_guard(mut self, guard: Guard) -> Reloader {
        self.guard = Some(guard);
        self
    }

    /// True when a rule file was added, removed or modified since the last look.
    pub fn files_changed(&mut self) -> bool {
        if self.last_poll.elapsed() < POLL {
            return false;
        }
        self.last_poll = Instant::now();
        let now = dir_fingerprint(&self.dir);
        let changed = now != self.fingerprint;
        self.fingerprint = now;
        changed
    }

    /// Validates the directory's rules and swaps them into every engine `each` hands to the
    /// apply function it is given (one, or in changelog mode one per task: the directory is
    /// read once, so all run the same set), or keeps the running set.
    pub fn reload(
        &mut self,
        metrics: &Metrics,
        why: &str,
        each: impl FnOnce(&mut dyn FnMut(&mut Engine)),
    ) {
        self.fingerprint = dir_fingerprint(&self.dir);
        match rule::load_dir(&self.dir) {
            Ok(set) if let Some(Err(error)) = self.guard.as_ref().map(|g| g(&set.enabled())) => {
                metrics
                    .reloads
                    .get_or_create(&label("outcome", "failed"))
                    .inc();
                tracing::error!(why, %error, "rules not reloaded: the running set stays");
            }
            Ok(set) => {
                let rules = set.enabled();
                let mut diff = None;
                each(&mut |engine: &mut Engine| {
                    let d = engine.reload(rules.clone(), &self.options);
                    metrics.rules_loaded.set(engine.rule_count() as i64);
                    // Every engine ran the same set, so the first one's diff says it.
                    diff.get_or_insert(d);
                });
                metrics.reloads.get_or_create(&label("outcome", "ok")).inc();
                if let Some(diff) = diff {
                    tracing::info!(
                        why,
                        added = ?diff.added,
                        removed = ?diff.removed,
                        changed = ?diff.changed,
                        retitled = ?diff.retitled,
                        unchanged = diff.unchanged,
                        "rules reloaded"
                    );
                }
            }
            Err(diags) => {
                metrics
                    .reloads
                    .get_or_create(&label("outcome", "failed"))
                    .inc();
                for d in &diags {
                    tracing::error!(error = %d, "rule error");
                }
                tracing::error!(
                    why,
                    errors = diags.len(),
                    "rules not reloaded: the running set stays"
                );
            }
        }
    }
}

/// A hash of every rule file's path, size and modification time.
fn dir_fingerprint(dir: &PathBuf) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        let path = entry.path();
        if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            continue;
        }
        path.hash(&mut h);
        if let Ok(meta) = entry.metadata() {
            meta.len().hash(&mut h);
            meta.modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .hash(&mut h);
        }
    }
    h.finish()
}
