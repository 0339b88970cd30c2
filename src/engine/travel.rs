//! `impossible_travel`: per group, the last located event; the next one fires when getting
//! from there to here would take a speed above `max_speed_kmh` over at least
//! `min_distance_km`, after taking both places' accuracy radius off the distance.
//!
//! Only events with a usable location count: no coordinates, coordinates (0, 0) (a common
//! "unknown" placeholder) or a network in `ignore_asns` leave the state untouched, so they
//! neither make nor break a trip. An event older than the last one compared is ignored (the
//! engine sorts events within the lateness, so this only guards restored or odd states): it
//! can neither fire against a newer location nor replace it.

use std::fmt::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::held::Held;
use super::table::GroupState;
use super::{Fired, Note, describe_duration};
use crate::event::{Event, Geo};
use crate::rule::Travel;

/// The Earth's mean radius (IUGG), for great-circle distances.
const EARTH_RADIUS_KM: f64 = 6_371.008_8;
const MS_PER_HOUR: f64 = 3_600_000.0;

/// Where an event happened, as far as travel is concerned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Place {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_km: f64,
}

/// The event's location, unless it has none worth using.
pub fn place(e: &Event, ignore_asns: &[u32]) -> Option<Place> {
    let geo = e.geo.as_deref()?;
    if geo.asn.is_some_and(|asn| ignore_asns.contains(&asn)) {
        return None;
    }
    let (lat, lon) = (geo.lat?, geo.lon?);
    let valid = (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
    if !valid || (lat == 0.0 && lon == 0.0) {
        return None;
    }
    let accuracy_km = geo
        .accuracy_km
        .filter(|a| a.is_finite() && *a > 0.0)
        .unwrap_or(0.0);
    Some(Place {
        lat,
        lon,
        accuracy_km,
    })
}

/// Great-circle distance (haversine).
pub fn distance_km(a: &Place, b: &Place) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lon - a.lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// A move between two located events.
#[derive(Debug)]
pub struct Trip {
    pub distance_km: f64,
    /// The distance less both accuracy radii: what the user must have covered at least.
    pub certain_km: f64,
    pub elapsed_ms: i64,
}

impl Trip {
    pub fn between(from: &Place, from_ts: i64, to: &Place, to_ts: i64) -> Trip {
        let distance_km = distance_km(from, to);
        Trip {
            distance_km,
            certain_km: (distance_km - from.accuracy_km - to.accuracy_km).max(0.0),
            elapsed_ms: to_ts - from_ts,
        }
    }

    /// The least speed the trip needs (infinite for two places at the same instant).
    pub fn speed_kmh(&self) -> f64 {
        if self.elapsed_ms <= 0 {
            return f64::INFINITY;
        }
        self.certain_km / (self.elapsed_ms as f64 / MS_PER_HOUR)
    }

    pub fn is_impossible(&self, limits: &Travel) -> bool {
        self.certain_km >= limits.min_distance_km && self.speed_kmh() > limits.max_speed_kmh
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct TravelGroup {
    /// The last located event: where the group was last seen.
    last: Option<Held>,
    pub last_fired: Option<i64>,
    pub last_seen: i64,
}

impl GroupState for TravelGroup {
    fn last_seen(&self) -> i64 {
        self.last_seen
    }
    fn events(&self) -> Vec<&Arc<Event>> {
        self.last.iter().map(|h| &h.0).collect()
    }
    fn forget(&mut self, about: &dyn Fn(&Event) -> bool) {
        if self.last.as_ref().is_some_and(|h| about(h)) {
            self.last = None;
        }
    }
    fn is_empty(&self) -> bool {
        self.last.is_none() && self.last_fired.is_none()
    }
}

impl TravelGroup {
    /// Takes a located event; returns what fired if the move from the last one is impossible.
    pub fn observe(&mut self, e: &Arc<Event>, here: Place, limits: &Travel) -> Option<Fired> {
        let previous = match &self.last {
            Some(prev) if e.ts < prev.ts => return None,
            Some(prev) => place(prev, &[]).map(|p| (Arc::clone(prev), p)),
            None => None,
        };
        self.last = Some(Held(Arc::clone(e)));
        self.last_seen = self.last_seen.max(e.ts);
        let (prev, there) = previous?;
        let trip = Trip::between(&there, prev.ts, &here, e.ts);
        if !trip.is_impossible(limits) {
            return None;
        }
        Some(Fired {
            count: 2,
            first_ts: prev.ts,
            note: Note::Trip(describe(&prev, e, &trip)),
            triggers: vec![prev, Arc::clone(e)],
        })
    }
}

/// "Berlin DE -> São Paulo BR, 9,950 km in 45m (13,266 km/h)", with the radii when they
/// were taken off.
fn describe(from: &Event, to: &Event, trip: &Trip) -> String {
    let mut out = format!(
        "{} -> {}, {} km in ",
        label(from.geo.as_deref()),
        label(to.geo.as_deref()),
        thousands(trip.certain_km)
    );
    let speed = trip.speed_kmh();
    if speed.is_finite() {
        let whole_seconds = trip.elapsed_ms / 1_000 * 1_000;
        let _ = write!(
            out,
            "{} ({} km/h",
            describe_duration(whole_seconds),
            thousands(speed)
        );
    } else {
        out.push_str("no time (both at once");
    }
    if trip.certain_km < trip.distance_km {
        let _ = write!(
            out,
            "; {} km apart less the accuracy radii",
            thousands(trip.distance_km)
        );
    }
    out.push(')');
    out
}

/// "Berlin DE", "DE" or "52.52,13.40".
fn label(geo: Option<&Geo>) -> String {
    let Some(geo) = geo else {
        return "?".into();
    };
    match (&geo.city, &geo.country) {
        (Some(city), Some(country)) => format!("{city} {country}"),
        (Some(only), None) | (None, Some(only)) => only.to_string(),
        (None, None) => format!(
            "{:.2},{:.2}",
            geo.lat.unwrap_or_default(),
            geo.lon.unwrap_or_default()
        ),
    }
}

/// A whole number with thousands separators: 13266.4 -> "13,266".
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    const BERLIN: (f64, f64) = (52.52, 13.405);
    const SAO_PAULO: (f64, f64) = (-23.55, -46.633);
    const HAMBURG: (f64, f64) = (53.551, 9.994);

    fn limits() -> Travel {
        Travel {
            max_speed_kmh: 900.0,
            min_distance_km: 500.0,
            ignore_asns: vec![14593],
        }
    }

    fn at(ts: i64, (lat, lon): (f64, f64), city: &str, country: &str) -> Arc<Event> {
        let mut e = Event::new(ts, EventType::LoginSuccess);
        e.geo = Some(Box::new(Geo {
            country: Some(country.into()),
            city: Some(city.into()),
            lat: Some(lat),
            lon: Some(lon),
            ..Geo::default()
        }));
        Arc::new(e)
    }

    fn feed(g: &mut TravelGroup, e: &Arc<Event>) -> Option<Fired> {
        let l = limits();
        let p = place(e, &l.ignore_asns)?;
        g.observe(e, p, &l)
    }

    const MIN: i64 = 60_000;

    #[test]
    fn berlin_to_sao_paulo_in_45_minutes_fires_with_both_events() {
        let mut g = TravelGroup::default();
        assert!(feed(&mut g, &at(0, BERLIN, "Berlin", "DE")).is_none());
        let fired = feed(&mut g, &at(45 * MIN, SAO_PAULO, "São Paulo", "BR")).unwrap();
        assert_eq!(fired.count, 2);
        assert_eq!(fired.triggers.len(), 2);
        let Note::Trip(text) = fired.note else {
            panic!("a trip note")
        };
        assert!(text.starts_with("Berlin DE -> São Paulo BR, 10,"), "{text}");
        assert!(text.contains("in 45m ("), "{text}");
    }

    #[test]
    fn a_short_fast_hop_is_under_the_distance_floor() {
        let mut g = TravelGroup::default();
        feed(&mut g, &at(0, BERLIN, "Berlin", "DE"));
        // About 255 km in 10 minutes: 1,500 km/h, but under 500 km.
        assert!(feed(&mut g, &at(10 * MIN, HAMBURG, "Hamburg", "DE")).is_none());
    }

    #[test]
    fn accuracy_radii_are_taken_off_the_distance() {
        let from = Place {
            lat: BERLIN.0,
            lon: BERLIN.1,
            accuracy_km: 500.0,
        };
        let to = Place {
            lat: 48.8566,
            lon: 2.3522,
            accuracy_km: 500.0,
        };
        // Berlin-Paris is about 880 km: within 1000 km of radii it proves no travel at all.
        let trip = Trip::between(&from, 0, &to, MIN);
        assert_eq!(trip.certain_km, 0.0);
        assert!(!trip.is_impossible(&limits()));
    }

    #[test]
    fn an_older_event_neither_fires_nor_replaces_the_newer_location() {
        let mut g = TravelGroup::default();
        feed(&mut g, &at(60 * MIN, BERLIN, "Berlin", "DE"));
        assert!(feed(&mut g, &at(50 * MIN, SAO_PAULO, "São Paulo", "BR")).is_none());
        // Berlin is still the reference: Hamburg an hour later is fine.
        assert!(feed(&mut g, &at(120 * MIN, HAMBURG, "Hamburg", "DE")).is_none());
        assert_eq!(g.last.as_ref().unwrap().ts, 120 * MIN);
    }

    #[test]
    fn ignored_networks_and_unlocated_events_do_not_count() {
        let mut g = TravelGroup::default();
        feed(&mut g, &at(0, BERLIN, "Berlin", "DE"));
        let mut satellite = (*at(10 * MIN, SAO_PAULO, "São Paulo", "BR")).clone();
        satellite.geo.as_mut().unwrap().asn = Some(14593);
        assert!(feed(&mut g, &Arc::new(satellite)).is_none());
        let nowhere = Arc::new(Event::new(11 * MIN, EventType::LoginSuccess));
        assert!(place(&nowhere, &[]).is_none());
        let null_island = at(12 * MIN, (0.0, 0.0), "?", "?");
        assert!(place(&null_island, &[]).is_none());
        // Berlin is still the reference.
        assert_eq!(g.last.as_ref().unwrap().ts, 0);
    }

    #[test]
    fn the_same_instant_in_two_far_places_is_impossible() {
        let mut g = TravelGroup::default();
        feed(&mut g, &at(0, BERLIN, "Berlin", "DE"));
        let fired = feed(&mut g, &at(0, SAO_PAULO, "São Paulo", "BR")).unwrap();
        let Note::Trip(text) = fired.note else {
            panic!()
        };
        assert!(text.contains("no time"), "{text}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(13_266.4), "13,266");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(12.0), "12");
        let d = distance_km(
            &Place {
                lat: BERLIN.0,
                lon: BERLIN.1,
                accuracy_km: 0.0,
            },
            &Place {
                lat: SAO_PAULO.0,
                lon: SAO_PAULO.1,
                accuracy_km: 0.0,
            },
        );
        // Berlin to São Paulo is about 10,250 km.
        assert!((d - 10_250.0).abs() < 30.0, "{d}");
    }
}
