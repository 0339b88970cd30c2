//! Detection's tasks in changelog mode (`[source.scale_out] changelog = true`): one engine per
//! partition of detection's topic, started from the state its changelog restored, fed that
//! partition's records alone, and checkpointed into the changelog
//! (`source::kafka::changelog`): what changed, or after an assignment and every
//! `snapshot_every` changes the whole state, so a restore reads one snapshot and a bounded
//! tail of changes.
//!
//! The engine of the task being fed sits in the pipeline, swapped in rather than copied, so
//! decoding, enrichment and alert routing stay the pipeline's own. Each task keeps its own
//! event time, as a Kafka Streams task does: its lateness is judged against its partition.

use std::collections::BTreeMap;
use std::io;

use crate::engine::{Engine, EngineStats, RestoreReport};
use crate::event::Admission;
use crate::pipeline::Pipeline;
use crate::source::kafka::{changelog, offsets};
use crate::state::{self, StateWrites};

pub struct Tasks {
    /// Detection's topic: the partitions of its positions are the tasks.
    topic: String,
    tasks: BTreeMap<i32, Task>,
    /// The task whose engine is in the pipeline now; its `engine` slot holds the engine the
    /// pipeline had before (the idle one the daemon started with).
    in_pipeline: Option<i32>,
    snapshot_every: u32,
    admission: Admission,
    /// The figures of tasks revoked since the start, so the daemon's never go down.
    retired: EngineStats,
}

struct Task {
    engine: Engine,
    /// The task's state as the changelog holds it after the last checkpoint: a snapshot is
    /// written from it.
    mirror: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Checkpoints that changed something since the last snapshot.
    changes: u32,
    /// The next checkpoint writes a snapshot (the task was just assigned here).
    snapshot_due: bool,
    /// The partition position the next checkpoint writes with the task's state.
    position: Option<(Vec<u8>, Vec<u8>)>,
}

impl Tasks {
    pub fn new(topic: String, snapshot_every: u32, admission: Admission) -> Tasks {
        Tasks {
            topic,
            tasks: BTreeMap::new(),
            in_pipeline: None,
            snapshot_every: snapshot_every.max(1),
            admission,
            retired: EngineStats::default(),
        }
    }

    /// Feeds the records that follow to `task`.
    pub fn enter(&mut self, task: i32, pipeline: &mut Pipeline) {
        if self.in_pipeline == Some(task) {
            return;
        }
        self.park(pipeline);
        // A task is restored before its first record; one that was not starts empty.
        let entry = self
            .tasks
            .entry(task)
            .or_insert_with(|| Task::new(pipeline.engine().fresh(), BTreeMap::new()));
        std::mem::swap(pipeline.engine_mut(), &mut entry.engine);
        self.in_pipeline = Some(task);
    }

    /// Puts the engine of the task in the pipeline back in its place.
    fn park(&mut self, pipeline: &mut Pipeline) {
        if let Some(task) = self.in_pipeline.take() {
            let slot = &mut self
                .tasks
                .get_mut(&task)
                .expect("the task in the pipeline is held")
                .engine;
            std::mem::swap(pipeline.engine_mut(), slot);
        }
    }

    /// `task` was assigned here with this state (engine entries and its position): it
    /// replaces whatever was held for the task.
    pub fn restored(
        &mut self,
        task: i32,
        state: BTreeMap<Vec<u8>, Vec<u8>>,
        pipeline: &mut Pipeline,
    ) -> Result<RestoreReport, String> {
        self.park(pipeline);
        let mut engine = pipeline.engine().fresh();
        let entries = state
            .iter()
            .filter(|(k, _)| !k.starts_with(state::SOURCE_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()));
        let report = engine.restore(entries)?;
        super::bound_restored_clock(&mut engine, &self.admission);
        if let Some(old) = self.tasks.insert(task, Task::new(engine, state)) {
            self.retired.add(old.engine.stats());
        }
        Ok(report)
    }

    /// Drops revoked tasks (their last checkpoint has written them to the changelog).
    pub fn revoke(&mut self, tasks: &[i32], pipeline: &mut Pipeline) {
        self.park(pipeline);
        for task in tasks {
            if let Some(old) = self.tasks.remove(task) {
                self.retired.add(old.engine.stats());
            }
        }
    }

    /// Runs `f` with each task's engine in the pipeline in turn.
    pub fn each(
        &mut self,
        pipeline: &mut Pipeline,
        mut f: impl FnMut(&mut Pipeline) -> io::Result<()>,
    ) -> io::Result<()> {
        self.park(pipeline);
        for task in self.tasks.values_mut() {
            std::mem::swap(pipeline.engine_mut(), &mut task.engine);
            let done = f(pipeline);
            std::mem::swap(pipeline.engine_mut(), &mut task.engine);
            done?;
        }
        Ok(())
    }

    /// The newest event time of any task.
    pub fn event_time(&mut self, pipeline: &mut Pipeline) -> Option<i64> {
        self.park(pipeline);
        self.tasks
            .values()
            .filter_map(|t| t.engine.event_time())
            .max()
    }

    /// Every task's figures, with those of tasks no longer held.
    pub fn stats(&mut self, pipeline: &mut Pipeline) -> EngineStats {
        self.park(pipeline);
        let mut sum = self.retired.clone();
        for task in self.tasks.values() {
            sum.add(task.engine.stats());
        }
        sum
    }

    /// Each rule's groups and evictions summed over the tasks (every rule named, with
    /// nothing while no task holds state for it).
    pub fn state_sizes(&mut self, pipeline: &mut Pipeline) -> Vec<(String, usize, u64)> {
        self.park(pipeline);
        let mut sum: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        let engines =
            std::iter::once(pipeline.engine()).chain(self.tasks.values().map(|t| &t.engine));
        for engine in engines {
            for (rule, groups, evicted) in engine.state_sizes() {
                let entry = sum.entry(rule.to_string()).or_default();
                entry.0 += groups;
                entry.1 += evicted;
            }
        }
        sum.into_iter().map(|(rule, (g, e))| (rule, g, e)).collect()
    }

    /// Writes each task's changes (or snapshot), with its partition's position from
    /// `positions`, under its task keys into `out`.
    pub fn checkpoint(
        &mut self,
        pipeline: &mut Pipeline,
        positions: &BTreeMap<Vec<u8>, Vec<u8>>,
        out: &mut StateWrites,
    ) {
        for (key, value) in positions {
            if let Some((topic, partition, _)) = offsets::parse(key, value)
                && topic == self.topic
                && let Some(task) = self.tasks.get_mut(&partition)
            {
                task.position = Some((key.clone(), value.clone()));
            }
        }
        self.park(pipeline);
        let every = self.snapshot_every;
        for (&id, task) in self.tasks.iter_mut() {
            let mut changes = StateWrites::default();
            task.engine.checkpoint(&mut changes);
            changes.resolve();
            if let Some((key, value)) = task.position.take() {
                changes.put(key, value);
            }
            task.record(id, changes, every, out);
        }
    }
}

impl Task {
    fn new(engine: Engine, mirror: BTreeMap<Vec<u8>, Vec<u8>>) -> Task {
        Task {
            engine,
            mirror,
            changes: 0,
            snapshot_due: true,
            position: None,
        }
    }

    /// Applies a checkpoint's changes to the mirror and writes them, or the snapshot, out.
    fn record(&mut self, id: i32, changes: StateWrites, every: u32, out: &mut StateWrites) {
        let changed = !changes.is_empty();
        for key in &changes.deletes {
            self.mirror.remove(key);
        }
        for (key, value) in &changes.puts {
            self.mirror.insert(key.clone(), value.clone());
        }
        if changed {
            self.changes += 1;
        }
        if self.snapshot_due || self.changes >= every {
            out.put(changelog::snapshot_marker(id), Vec::new());
            for (key, value) in &self.mirror {
                out.put(changelog::task_key(id, key), value.clone());
            }
            self.snapshot_due = false;
            self.changes = 0;
        } else if changed {
            for key in changes.deletes {
                out.delete(changelog::task_key(id, &key));
            }
            for (key, value) in changes.puts {
                out.put(changelog::task_key(id, &key), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::kafka::changelog::{Restoring, split_tasks};

    /// What the changelog holds after the tasks' writes: restoring it gives the mirror.
    #[test]
    fn changes_and_snapshots_restore_to_the_state_the_task_had() {
        let mut task = Task::new(
            Engine::new(Vec::new(), &crate::engine::EngineOptions::default()),
            BTreeMap::new(),
        );
        let mut restoring = Restoring::default();
        let mut written = |task: &mut Task, puts: &[(&str, &str)], deletes: &[&str]| {
            let mut changes = StateWrites::default();
            for (k, v) in puts {
                changes.put(k.as_bytes().to_vec(), v.as_bytes().to_vec());
            }
            for k in deletes {
                changes.delete(k.as_bytes().to_vec());
            }
            let mut out = StateWrites::default();
            task.record(7, changes, 3, &mut out);
            let (mut commits, local) = split_tasks(out);
            assert!(local.is_empty());
            let snapshot = commits.get(&7).is_some_and(|c| c.snapshot);
            if let Some(commit) = commits.remove(&7) {
                restoring.message(&commit.encode(), (1, 1), commit.snapshot);
            }
            assert_eq!(restoring.state, task.mirror);
            snapshot
        };
        // The first checkpoint after the assignment is a snapshot, then changes, and a
        // snapshot again every third checkpoint that changed something.
        assert!(written(&mut task, &[("a", "1")], &[]));
        assert!(!written(&mut task, &[("b", "2")], &[]));
        assert!(!written(&mut task, &[], &[]));
        assert!(!written(&mut task, &[("c", "3")], &["a"]));
        assert!(written(&mut task, &[("a", "4")], &[]));
        assert_eq!(task.mirror.len(), 3);
    }
}

#[cfg(test)]
mod round_trip {
    use super::*;
    use crate::engine::EngineOptions;
    use crate::source::kafka::changelog::{Restoring, split_tasks};

    fn checkpoint(task: &mut Task, restoring: &mut Restoring) {
        let mut changes = StateWrites::default();
        task.engine.checkpoint(&mut changes);
        changes.resolve();
        let mut out = StateWrites::default();
        task.record(1, changes, 3, &mut out);
        let (mut commits, _) = split_tasks(out);
        if let Some(c) = commits.remove(&1) {
            restoring.message(&c.encode(), (1, 1), c.snapshot);
        }
    }

    /// A task checkpointed into the changelog and restored into a fresh engine, again and
    /// again mid-stream, goes on exactly as the engine that never moved: same alerts, nothing
    /// late.
    #[test]
    fn a_task_restored_from_its_changelog_goes_on_as_if_it_never_moved() {
        let set = crate::rule::load_dir(std::path::Path::new("rules")).unwrap();
        let options = EngineOptions::default();
        let events = crate::synth::Traffic {
            seed: 43,
            users: 2_000,
            tenants: 6,
            attack_every: 300,
            ..crate::synth::Traffic::default()
        }
        .generate(20_000);
        let mut whole = Engine::new(set.enabled(), &options);
        let mut want = Vec::new();
        for e in &events {
            whole.process(e.clone(), &mut want);
        }
        whole.flush(&mut want);

        let mut task = Task::new(Engine::new(set.enabled(), &options), BTreeMap::new());
        let mut restoring = Restoring::default();
        let mut got = Vec::new();
        for (i, e) in events.iter().enumerate() {
            task.engine.process(e.clone(), &mut got);
            if i % 337 == 0 {
                checkpoint(&mut task, &mut restoring);
            }
            if i % 4_999 == 4_998 {
                checkpoint(&mut task, &mut restoring);
                assert_eq!(restoring.state, task.mirror);
                let mut engine = Engine::new(set.enabled(), &options);
                engine.restore(restoring.state.clone()).unwrap();
                task = Task::new(engine, restoring.state.clone());
            }
        }
        task.engine.flush(&mut got);
        let ids = |a: &[crate::engine::Alert]| {
            a.iter()
                .map(|a| a.id.clone())
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(task.engine.stats().late, 0);
        let (got, want) = (ids(&got), ids(&want));
        assert_eq!(
            got,
            want,
            "missing {:?}, extra {:?}",
            want.difference(&got),
            got.difference(&want)
        );
    }
}
