//! The engine's Sigma step: at an event's arrival, every loaded detection of its format is
//! tested once, and what matched is written into `attrs.sigma` for the rules to read; the
//! provider record is dropped there, so neither the lateness buffer nor the state holds it.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::correlation::{Extract, TEMPORAL_FIELD};
use super::detection::Pin;
use super::logsource::{Locator, View, locate};
use super::{ATTRS_KEY, Compiled};
use crate::event::{Event, EventType};
use crate::normalize::{Format, RetainRaw};
use crate::rule::Rule;

/// The detections and correlations of a rule set, in the form the per-event step needs.
#[derive(Debug)]
pub struct Stage {
    detections: Vec<Arc<Compiled>>,
    /// Per format, the detections worth testing on an event (see [`Index`]).
    indexes: Vec<Index>,
    correlations: Vec<Arc<Extract>>,
    /// Correlations counted by other correlations (id -> the mark of their firing).
    feeders: HashMap<String, String>,
    /// Correlations whose own alerts are not sent.
    silent: HashSet<String>,
    /// The detections to test on the event at hand (reused: no allocation per event).
    candidates: Vec<usize>,
    /// Keeps normalisers storing the records of the formats read here.
    _retain: RetainRaw,
}

impl Stage {
    /// `None` when no rule is a Sigma rule (the engine then only drops raw records).
    pub fn new<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Option<Stage> {
        let mut seen = HashSet::new();
        let mut detections = Vec::new();
        let mut correlations = Vec::new();
        let mut silent = HashSet::new();
        let mut chained = Vec::new();
        for (rule, part) in rules
            .into_iter()
            .filter(|r| r.enabled)
            .filter_map(|r| Some((r, r.sigma.as_ref()?)))
        {
            if part.silent {
                silent.insert(rule.id.clone());
            }
            if part.chained {
                chained.push(part);
            }
            if part.direct {
                // Tested where the rule is; nothing to mark.
                continue;
            }
            for d in &part.detections {
                if seen.insert((d.key.clone(), d.hash.clone())) {
                    detections.push(Arc::clone(d));
                }
            }
            if let Some(x) = &part.extract {
                correlations.push(Arc::clone(x));
            }
        }
        if detections.is_empty() {
            return None;
        }
        let indexes = Index::build(&detections);
        let feeders = correlations
            .iter()
            .filter(|x| {
                chained
                    .iter()
                    .any(|c| c.extract.as_ref().is_some_and(|e| e.rules.contains(&x.id)))
            })
            .map(|x| (x.id.clone(), x.hash.clone()))
            .collect();
        let formats = detections
            .iter()
            .filter_map(|d| d.format)
            .filter(|f| *f != Format::Native);
        Some(Stage {
            _retain: RetainRaw::new(formats),
            indexes,
            detections,
            correlations,
            feeders,
            silent,
            candidates: Vec::new(),
        })
    }

    /// Tests the event against every detection, records the matches in `attrs.sigma`
    /// (replacing whatever the input carried there) and drops the raw record.
    pub fn mark(&mut self, event: &mut Event) {
        let raw = event.raw.take();
        // Only an event that brought its record can be read by a provider's rules.
        let format = match &raw {
            Some(_) => event
                .source
                .as_deref()
                .and_then(|s| Format::from_str(s).ok()),
            None => None,
        };
        let mut rules = Map::new();
        let mut extracted = Map::new();
        {
            let raw_view = raw.as_ref().map(|r| View::raw(&r.0));
            let view_for = |d: &Compiled| -> Option<View<'_>> {
                match d.format? {
                    Format::Native => Some(View::Canonical(event)),
                    f if Some(f) == format => raw_view,
                    _ => None,
                }
            };
            let candidates = &mut self.candidates;
            candidates.clear();
            for index in &self.indexes {
                let view = match index.format {
                    Format::Native => View::Canonical(event),
                    f if Some(f) == format => match raw_view {
                        Some(v) => v,
                        None => continue,
                    },
                    _ => continue,
                };
                index.candidates(&view, candidates);
            }
            if candidates.is_empty() {
                if let Some(a) = event.attrs.as_mut() {
                    a.remove(ATTRS_KEY);
                }
                return;
            }
            // In load order, whichever index found them.
            candidates.sort_unstable();
            candidates.dedup();
            let mut hits: Vec<&Compiled> = Vec::new();
            for d in candidates.iter().map(|&i| &*self.detections[i]) {
                if view_for(d).is_some_and(|v| d.detection.matches(&v)) {
                    rules.insert(d.key.clone(), Value::String(d.hash.clone()));
                    hits.push(d);
                }
            }
            for x in &self.correlations {
                let Some(first) = x
                    .rules
                    .iter()
                    .find_map(|k| hits.iter().find(|d| &d.key == k))
                else {
                    continue;
                };
                let mut values = Map::new();
                for (name, sources) in &x.fields {
                    // The first referenced rule the event matched says where the field is.
                    let found = sources
                        .iter()
                        .filter_map(|s| Some((hits.iter().find(|d| d.key == s.rule)?, &s.at)))
                        .find_map(|(d, at)| view_for(d)?.first(at));
                    if let Some(v) = found {
                        values.insert(name.clone(), Value::String(v));
                    }
                }
                if x.temporal {
                    values.insert(TEMPORAL_FIELD.into(), Value::String(first.key.clone()));
                }
                extracted.insert(x.id.clone(), Value::Object(values));
            }
        }
        let attrs = &mut event.attrs;
        if rules.is_empty() {
            // Input cannot claim a match it did not make.
            if let Some(a) = attrs.as_mut() {
                a.remove(ATTRS_KEY);
            }
            return;
        }
        extracted.insert("rules".into(), Value::Object(rules));
        attrs
            .get_or_insert_with(Map::new)
            .insert(ATTRS_KEY.into(), Value::Object(extracted));
    }

    pub fn has_chains(&self) -> bool {
        !self.feeders.is_empty()
    }

    pub fn is_silent(&self, rule: &str) -> bool {
        self.silent.contains(rule)
    }

    /// A copy of `e` marked with the correlations among `fired` (rule id, alert group) that
    /// others count, with the group values those others read; `None` when none fired.
    pub fn chained(&self, e: &Event, fired: &[(&str, &Map<String, Value>)]) -> Option<Event> {
        let mut rules = Map::new();
        for (id, _) in fired {
            if let Some(hash) = self.feeders.get(*id) {
                rules.insert((*id).to_string(), Value::String(hash.clone()));
            }
        }
        if rules.is_empty() {
            return None;
        }
        let mut marks = Map::new();
        for x in &self.correlations {
            let Some(first) = x.rules.iter().find(|k| rules.contains_key(*k)) else {
                continue;
            };
            let mut values = Map::new();
            for (name, sources) in &x.fields {
                let found = sources.iter().find_map(|s| {
                    let (_, group) = fired.iter().find(|(id, _)| *id == s.rule)?;
                    group.get(&s.name).filter(|v| !v.is_null())
                });
                if let Some(v) = found {
                    values.insert(name.clone(), v.clone());
                }
            }
            if x.temporal {
                values.insert(TEMPORAL_FIELD.into(), Value::String(first.clone()));
            }
            marks.insert(x.id.clone(), Value::Object(values));
        }
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&e.fingerprint.to_le_bytes());
        for id in rules.keys() {
            hasher.update(id.as_bytes());
            hasher.update(&[0]);
        }
        marks.insert("rules".into(), Value::Object(rules));
        let mut derived = e.clone();
        // Its own identity: held beside the original in stored windows, it must not be
        // mistaken for it.
        derived.fingerprint = hasher.digest();
        derived
            .attrs
            .get_or_insert_with(Map::new)
            .insert(ATTRS_KEY.into(), Value::Object(marks));
        Some(derived)
    }
}

/// The detections of one format, indexed by the field most of them pin to a few values (Okta's
/// `eventType`, the canonical `type`): an event is tested only against the detections its
/// value can satisfy, and those that pin nothing. Eighty rules for eighty event types then
/// cost one lookup and a test or two per event, not eighty tests.
#[derive(Debug)]
struct Index {
    format: Format,
    at: Option<Locator>,
    /// For canonical events indexed by `type`: the detections per event type, found without
    /// reading or hashing text (as the engine's own rules are found).
    by_type: Option<Vec<Vec<usize>>>,
    by_value: foldhash::HashMap<String, Vec<usize>>,
    unpinned: Vec<usize>,
}

impl Index {
    fn build(detections: &[Arc<Compiled>]) -> Vec<Index> {
        let mut formats: Vec<Format> = detections.iter().filter_map(|d| d.format).collect();
        formats.sort();
        formats.dedup();
        formats
            .into_iter()
            .map(|format| {
                let mine: Vec<(usize, Option<Pin>)> = detections
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.format == Some(format))
                    .map(|(i, d)| (i, d.detection.pinned()))
                    .collect();
                // The field the most detections pin.
                let mut counts: HashMap<&str, usize> = HashMap::new();
                for (_, pin) in &mine {
                    if let Some((field, _)) = pin {
                        *counts.entry(field.as_str()).or_default() += 1;
                    }
                }
                let field = counts
                    .into_iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
                    .map(|(f, _)| f.to_string());
                let mut index = Index {
                    format,
                    at: field.as_deref().map(|f| locate(format, f)),
                    by_type: None,
                    by_value: foldhash::HashMap::default(),
                    unpinned: Vec::new(),
                };
                for (i, pin) in mine {
                    match pin {
                        Some((f, values)) if Some(&f) == field.as_ref() => {
                            for v in values {
                                index.by_value.entry(v).or_default().push(i);
                            }
                        }
                        _ => index.unpinned.push(i),
                    }
                }
                if format == Format::Native && field.as_deref() == Some("type") {
                    let mut by_type = vec![Vec::new(); EventType::ALL.len()];
                    for (value, list) in &index.by_value {
                        // A value that is no event type can match no event.
                        if let Some(t) = EventType::parse(value) {
                            by_type[t.index()].extend_from_slice(list);
                        }
                    }
                    index.by_type = Some(by_type);
                }
                index
            })
            .collect()
    }

    fn candidates(&self, view: &View<'_>, out: &mut Vec<usize>) {
        out.extend_from_slice(&self.unpinned);
        if let (Some(by_type), View::Canonical(e)) = (&self.by_type, view) {
            out.extend_from_slice(&by_type[e.kind.index()]);
            return;
        }
        if let Some(at) = &self.at {
            view.any(at, &mut |value| {
                let found = if value
                    .bytes()
                    .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
                {
                    self.by_value.get(&value.to_lowercase())
                } else {
                    self.by_value.get(value)
                };
                if let Some(list) = found {
                    out.extend_from_slice(list);
                }
                false
            });
        }
    }
}
