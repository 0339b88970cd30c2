//! `new_value` over several fields at once: one baseline per field for the group, and an
//! alert when at least `min_new` of them see a new value in the same event. Keyed by session
//! (`group_by: [tenant, session]`) it is a per-session baseline: a session that moves to
//! another country, network and browser mid-life alerts once, and then knows those values.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::baseline::{BaselineGroup, ValueId};
use super::table::GroupState;
use crate::event::Event;
use crate::rule::NewValues;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct DriftGroup {
    /// One baseline per field, in the rule's order.
    fields: Vec<BaselineGroup>,
    pub last_fired: Option<i64>,
    pub last_seen: i64,
}

impl GroupState for DriftGroup {
    fn last_seen(&self) -> i64 {
        self.last_seen
    }
    fn events(&self) -> Vec<&Arc<Event>> {
        Vec::new()
    }
    /// Holds no events; a subject's baselines go whole with the group key.
    fn forget(&mut self, _: &dyn Fn(&Event) -> bool) {}
    fn is_empty(&self) -> bool {
        self.fields.iter().all(BaselineGroup::is_empty) && self.last_fired.is_none()
    }
}

impl DriftGroup {
    /// Learns the event's value of every field; when at least `min_new` were new (and their
    /// baselines had learned enough to say so), describes them: `geo.country=SG (seen
    /// before: DE), user_agent=... (seen before: 1 value)`.
    pub fn observe(&mut self, e: &Event, opts: &NewValues) -> Option<String> {
        self.fields
            .resize_with(opts.fields.len(), BaselineGroup::default);
        self.last_seen = self.last_seen.max(e.ts);
        let mut changed = Vec::new();
        for (field, baseline) in opts.fields.iter().zip(&mut self.fields) {
            // A field the event lacks is no part of that field's history.
            let Some(value) = field.get(e) else { continue };
            // The options are shared by every field (the baseline never reads `field`).
            if let Some(known) = baseline.observe(ValueId::of(&value), e.ts, &opts.base) {
                changed.push(format!(
                    "{field}={} ({})",
                    value.to_text(),
                    known.describe()
                ));
            }
        }
        (changed.len() >= opts.min_new as usize).then(|| changed.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, Field, Geo};
    use crate::rule::NewValue;

    fn opts(min_new: u32) -> NewValues {
        let fields: Vec<Field> = ["geo.country", "geo.asn", "user_agent"]
            .iter()
            .map(|f| Field::parse(f).unwrap())
            .collect();
        NewValues {
            base: NewValue {
                field: fields[0].clone(),
                learn_for_ms: 0,
                min_history: 1,
                forget_after_ms: 86_400_000,
            },
            fields,
            min_new,
        }
    }

    fn refresh(ts: i64, country: &str, asn: u32, ua: &str) -> Event {
        let mut e = Event::new(ts, EventType::TokenRefresh);
        e.geo = Some(Box::new(Geo {
            country: Some(country.into()),
            asn: Some(asn),
            ..Geo::default()
        }));
        e.user_agent = Some(ua.into());
        e
    }

    #[test]
    fn a_session_moving_country_network_and_browser_alerts_once() {
        let o = opts(2);
        let mut g = DriftGroup::default();
        assert!(
            g.observe(&refresh(0, "DE", 3320, "Firefox/133"), &o)
                .is_none()
        );
        assert!(
            g.observe(&refresh(600_000, "DE", 3320, "Firefox/133"), &o)
                .is_none()
        );
        let said = g
            .observe(&refresh(2_400_000, "SG", 14061, "Chrome/131"), &o)
            .unwrap();
        assert!(
            said.starts_with("geo.country=SG (seen before: DE), geo.asn=14061 (seen before: 3320)"),
            "{said}"
        );
        // Learned: the hijacker's next refresh, and the user's own, say nothing new.
        assert!(
            g.observe(&refresh(2_500_000, "SG", 14061, "Chrome/131"), &o)
                .is_none()
        );
        assert!(
            g.observe(&refresh(2_600_000, "DE", 3320, "Firefox/133"), &o)
                .is_none()
        );
    }

    #[test]
    fn a_phone_moving_from_wifi_to_cellular_changes_one_field_only() {
        let o = opts(2);
        let mut g = DriftGroup::default();
        assert!(g.observe(&refresh(0, "DE", 3320, "App/5"), &o).is_none());
        assert!(
            g.observe(&refresh(60_000, "DE", 6805, "App/5"), &o)
                .is_none()
        );
        // With min_new 1 the same move alerts.
        let mut g = DriftGroup::default();
        let o = opts(1);
        assert!(g.observe(&refresh(0, "DE", 3320, "App/5"), &o).is_none());
        assert!(
            g.observe(&refresh(60_000, "DE", 6805, "App/5"), &o)
                .is_some()
        );
    }

    #[test]
    fn three_fields_cost_three_small_baselines() {
        let o = opts(2);
        let mut g = DriftGroup::default();
        g.observe(&refresh(0, "DE", 3320, "Firefox/133"), &o);
        let bytes = std::mem::size_of::<DriftGroup>()
            + g.fields.len() * (std::mem::size_of::<BaselineGroup>() + 8);
        assert!(bytes < 256, "{bytes}");
    }
}
