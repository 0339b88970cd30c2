//! Scale-out planning: which key the events are repartitioned by so that several instances
//! in one consumer group detect exactly what one would, and the internal topic and consumer
//! group that carry them. No network: `check` runs it, `run` acts on it.
//!
//! A rule's state is per group (its `group_by` values). Every group of every loaded rule is
//! whole in one partition when the partition key is a function of each rule's `group_by`,
//! which is the case for the fields all rules group by (for the default pack, `tenant`).
//! Fields filled by enrichment (`geo.*`) are left out: the hop runs before enrichment.

use super::changelog;
use crate::config::{KafkaConfig, ScaleOut};
use crate::event::{Event, Field};
use crate::rule::Rule;

/// Separates the values in a partition key (it cannot appear in a value written as text of
/// JSON, as in the engine's group keys).
const SEPARATOR: char = '\u{1f}';

/// How events reach detection.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    /// The input topic is keyed so that every group is whole in one partition: detection
    /// consumes it directly, as a single instance does.
    Direct,
    /// Through the repartition topic.
    Hop(Plan),
}

/// The repartition hop: events of the input topic are produced to `topic`, keyed by the
/// values of `key`, and detection consumes `topic` in the consumer group `task_group`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub key: Vec<Field>,
    pub topic: String,
    pub task_group: String,
}

impl Plan {
    /// The partition key of an event: its values of `key` (an absent one as empty).
    pub fn key_of(&self, event: &Event, out: &mut String) {
        out.clear();
        for field in &self.key {
            if let Some(v) = field.get(event) {
                v.write_to(out);
            }
            out.push(SEPARATOR);
        }
    }

    /// What the key is, for logs and `check`: `[tenant]`.
    pub fn key_names(&self) -> String {
        let names: Vec<String> = self.key.iter().map(ToString::to_string).collect();
        format!("[{}]", names.join(", "))
    }
}

/// Changelog mode (`[source.scale_out] changelog`): the changelog topic of detection's tasks
/// and detection's own topic, whose partitions are the tasks.
pub fn changelog_topics(config: &KafkaConfig, route: &Route) -> Result<(String, String), String> {
    match route {
        Route::Hop(plan) => Ok((changelog::topic_name(&plan.task_group), plan.topic.clone())),
        Route::Direct => match config.topics.as_slice() {
            [topic] => Ok((changelog::topic_name(&config.group_id), topic.clone())),
            _ => Err(format!(
                "[source.scale_out] changelog = true reads the input topics directly (their key groups every rule), and then needs exactly one, not {}: a task is a partition",
                config.topics.len()
            )),
        },
    }
}

/// Decides the route for this source and these (enabled) rules; the error says why the rules
/// cannot be scaled out.
pub fn plan(config: &KafkaConfig, scale: &ScaleOut, rules: &[Rule]) -> Result<Route, String> {
    let rules: Vec<&Rule> = rules.iter().filter(|r| r.enabled).collect();
    let sigma: Vec<&str> = rules
        .iter()
        .filter(|r| r.sigma.is_some())
        .map(|r| r.id.as_str())
        .collect();
    if !sigma.is_empty() {
        return Err(format!(
            "[source.scale_out] cannot carry the provider records Sigma rules read through the repartition topic yet; disable these rules or scale_out: {}",
            sigma.join(", ")
        ));
    }
    let key = common_key(&rules);
    if let Some(input) = &scale.input_key
        && input.iter().all(|f| key.contains(f))
    {
        return Ok(Route::Direct);
    }
    let name: Vec<String> = if key.is_empty() {
        vec!["all".to_string()]
    } else {
        key.iter()
            .map(|f| f.to_string().replace('/', "_"))
            .collect()
    };
    let task_group = format!("{}-by-{}", config.group_id, name.join("-"));
    Ok(Route::Hop(Plan {
        key,
        topic: format!("{task_group}-repartition"),
        task_group,
    }))
}

/// Whether a new rule set (a reload) still has every group whole in one partition of the
/// running route: every enabled rule must group by all of `key` (the hop's key, or the
/// declared `input_key` when the hop is skipped). The key cannot change while instances run:
/// the repartition topic holds events keyed by it.
pub fn keeps(key: &[Field], rules: &[Rule]) -> Result<(), String> {
    let names = |fields: &[Field]| {
        let names: Vec<String> = fields.iter().map(ToString::to_string).collect();
        format!("[{}]", names.join(", "))
    };
    let off: Vec<String> = rules
        .iter()
        .filter(|r| r.enabled && (r.sigma.is_some() || !key.iter().all(|f| r.group_by.contains(f))))
        .map(|r| r.id.clone())
        .collect();
    if off.is_empty() {
        return Ok(());
    }
    Err(format!(
        "these rules do not group by the scale-out key {} the running instances partition by: {}; change the key by restarting every instance",
        names(key),
        off.join(", ")
    ))
}

/// The fields every rule groups by, in the first rule's order, less enrichment's.
fn common_key(rules: &[&Rule]) -> Vec<Field> {
    let Some(first) = rules.first() else {
        return Vec::new();
    };
    first
        .group_by
        .iter()
        .filter(|f| !matches!(f, Field::Geo(_)))
        .filter(|f| rules.iter().all(|r| r.group_by.contains(f)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn rules(yaml: &[(&str, &str)]) -> Vec<Rule> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("runbooks")).unwrap();
        for (id, group_by) in yaml {
            std::fs::write(
                dir.path().join(format!("{id}.yaml")),
                format!(
                    "id: {id}\ntitle: T\nseverity: low\nkind: threshold\nmatch: {{type: login.failure}}\ngroup_by: {group_by}\nwindow: 1m\nthreshold: 3\n"
                ),
            )
            .unwrap();
        }
        crate::rule::load_dir(dir.path()).unwrap().enabled()
    }

    fn config(input_key: Option<&[&str]>) -> (KafkaConfig, ScaleOut) {
        let text = "[source]\nkind = \"kafka\"\nbrokers = \"k:9092\"\ntopics = [\"auth\"]\ngroup_id = \"aw\"\n[source.scale_out]\n";
        let cfg = crate::config::parse(std::path::Path::new("a.toml"), text).unwrap();
        let crate::config::Source::Kafka(k) = cfg.source else {
            panic!("kafka")
        };
        let mut scale = k.scale_out.clone().unwrap();
        scale.input_key = input_key.map(|k| {
            k.iter()
                .map(|f| Field::parse_grouping(f).unwrap())
                .collect()
        });
        (*k, scale)
    }

    #[test]
    fn the_key_is_what_every_rule_groups_by_less_enrichment() {
        let rules = rules(&[
            ("a", "[tenant, username]"),
            ("b", "[tenant, ip]"),
            ("c", "[tenant, geo.asn]"),
        ]);
        let (cfg, scale) = config(None);
        let Route::Hop(plan) = plan(&cfg, &scale, &rules).unwrap() else {
            panic!("a hop")
        };
        assert_eq!(plan.key_names(), "[tenant]");
        assert_eq!(plan.topic, "aw-by-tenant-repartition");
        assert_eq!(plan.task_group, "aw-by-tenant");
        let mut e = Event::new(0, EventType::LoginFailure);
        e.tenant = Some("acme".into());
        let mut key = String::new();
        plan.key_of(&e, &mut key);
        assert_eq!(key, "acme\u{1f}");
    }

    #[test]
    fn a_reload_keeps_the_key_or_is_refused() {
        let key = [Field::Tenant];
        assert_eq!(keeps(&key, &rules(&[("a", "[tenant, ip]")])), Ok(()));
        let err = keeps(&key, &rules(&[("a", "[tenant, ip]"), ("b", "[ip]")])).unwrap_err();
        assert!(
            err.contains("[tenant]")
                && err.ends_with("b; change the key by restarting every instance"),
            "{err}"
        );
    }

    #[test]
    fn an_input_keyed_by_a_common_field_skips_the_hop() {
        let rules = rules(&[("a", "[tenant, username]"), ("b", "[username, ip]")]);
        let (cfg, scale) = config(Some(&["username"]));
        assert_eq!(plan(&cfg, &scale, &rules), Ok(Route::Direct));
        // Keyed by tenant and username: rule b's groups span tenants, so the input's
        // partitions split them, and the hop keys by what both rules share.
        let (cfg, scale) = config(Some(&["tenant", "username"]));
        let Route::Hop(plan) = plan(&cfg, &scale, &rules).unwrap() else {
            panic!("a hop")
        };
        assert_eq!(plan.key_names(), "[username]");
        let rules = self::rules(&[("a", "[tenant, ip/24]"), ("b", "[ip/24]")]);
        let (cfg, scale) = config(None);
        let Route::Hop(plan) = super::plan(&cfg, &scale, &rules).unwrap() else {
            panic!("a hop")
        };
        assert_eq!(plan.topic, "aw-by-ip_24-repartition");
    }
}
