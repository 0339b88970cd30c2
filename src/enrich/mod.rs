//! Enrichment: an edge between decoding and the engine that fills in what events lack from
//! local data, so the engine stays pure (no files, no clocks) and sees the same events in
//! `run`, `replay` and rule tests. Today: the location and network of an event's ip.

pub mod geoip;

pub use geoip::{
    CACHE_IPS_PER_GENERATION, Database, DbKind, GeoIp, GeoStats, OpenError, Verify, is_public,
};

use crate::config::GeoipConfig;
use crate::event::Event;

/// Applies every configured enrichment to events, in place.
#[derive(Default)]
pub struct Enricher {
    geoip: Option<GeoIp>,
}

impl Enricher {
    /// Enriches nothing (no `[geoip]` configured).
    pub fn none() -> Enricher {
        Enricher::default()
    }

    pub fn with_geoip(geoip: GeoIp) -> Enricher {
        Enricher { geoip: Some(geoip) }
    }

    /// Opens and checks the configured databases. Every problem is reported, each naming
    /// the `[geoip]` key and the file.
    pub fn open(config: &GeoipConfig, verify: Verify) -> Result<Enricher, Vec<OpenError>> {
        if config.is_empty() {
            return Ok(Enricher::none());
        }
        let open = |kind, path: &Option<std::path::PathBuf>| {
            path.as_deref()
                .map(|p| Database::open(kind, p, verify))
                .transpose()
        };
        match (
            open(DbKind::City, &config.city),
            open(DbKind::Asn, &config.asn),
        ) {
            (Ok(city), Ok(asn)) => Ok(Enricher::with_geoip(GeoIp::new(city, asn))),
            (city, asn) => Err([city.err(), asn.err()].into_iter().flatten().collect()),
        }
    }

    /// Fills `geo` from the event's ip, unless the event already carries a `geo` (the
    /// identity provider's own location wins, SPEC §1).
    pub fn enrich(&mut self, event: &mut Event) {
        if event.geo.is_some() {
            return;
        }
        if let (Some(geoip), Some(ip)) = (&mut self.geoip, event.ip) {
            event.geo = geoip.locate(ip);
        }
    }

    /// What GeoIP did, when it is configured.
    pub fn geo_stats(&self) -> Option<&GeoStats> {
        self.geoip.as_ref().map(|g| &g.stats)
    }

    /// Swaps in databases whose files were replaced (also done by itself every few seconds).
    pub fn reload_if_replaced(&mut self) -> usize {
        self.geoip.as_mut().map_or(0, GeoIp::reload_if_replaced)
    }
}

#[cfg(test)]
#[path = "../../tests/common/geodb.rs"]
mod testdb;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::testdb::{self, BERLIN, BERLIN_V6, JAPAN, SAO_PAULO, STARLINK_NEW_YORK};
    use super::*;
    use crate::event::{EventType, Geo};

    fn enricher(dir: &Path) -> Enricher {
        let (city, asn) = testdb::write_all(dir);
        let config = GeoipConfig {
            city: Some(city),
            asn: Some(asn),
        };
        Enricher::open(&config, Verify::Full).expect("the test databases open")
    }

    fn located(enricher: &mut Enricher, ip: &str) -> Option<Geo> {
        let mut e = Event::new(0, EventType::LoginSuccess);
        e.ip = Some(ip.parse().unwrap());
        enricher.enrich(&mut e);
        e.geo.map(|g| *g)
    }

    #[test]
    fn city_and_asn_fill_every_geo_field_for_ipv4_and_ipv6() {
        let dir = tempfile::tempdir().unwrap();
        let mut enricher = enricher(dir.path());
        let expected = Geo {
            country: Some("DE".into()),
            city: Some("Berlin".into()),
            lat: Some(52.52),
            lon: Some(13.405),
            accuracy_km: Some(20.0),
            asn: Some(3320),
            as_org: Some("Deutsche Telekom AG".into()),
        };
        assert_eq!(located(&mut enricher, BERLIN.ip), Some(expected.clone()));
        assert_eq!(located(&mut enricher, BERLIN_V6.ip), Some(expected.clone()));
        assert_eq!(
            located(&mut enricher, &format!("::ffff:{}", BERLIN.ip)),
            Some(expected)
        );
        let sp = located(&mut enricher, SAO_PAULO.ip).unwrap();
        assert_eq!(sp.city.as_deref(), Some("São Paulo"));
        assert_eq!(
            located(&mut enricher, STARLINK_NEW_YORK.ip).unwrap().asn,
            Some(14593)
        );
        let japan = located(&mut enricher, JAPAN.ip).unwrap();
        assert_eq!(
            (japan.country.as_deref(), japan.lat, japan.asn),
            (Some("JP"), None, None)
        );
        assert_eq!(located(&mut enricher, "9.9.9.9"), None, "not in the files");
    }

    #[test]
    fn private_and_reserved_addresses_are_never_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut enricher = enricher(dir.path());
        // The test City database (wrongly) locates these networks: a lookup would show.
        for ip in ["10.1.2.3", "198.51.100.7", "::ffff:10.0.0.1", "127.0.0.1"] {
            assert_eq!(located(&mut enricher, ip), None, "{ip}");
        }
        assert_eq!(enricher.geo_stats().unwrap().not_public, 4);
    }

    #[test]
    fn an_event_that_carries_geo_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut enricher = enricher(dir.path());
        let mut e = Event::new(0, EventType::LoginSuccess);
        e.ip = Some(BERLIN.ip.parse().unwrap());
        e.geo = Some(Box::new(Geo {
            country: Some("NL".into()),
            ..Geo::default()
        }));
        enricher.enrich(&mut e);
        assert_eq!(e.geo.unwrap().country.as_deref(), Some("NL"));
        assert_eq!(enricher.geo_stats().unwrap().lookups, 0);
    }

    #[test]
    fn repeated_ips_come_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut enricher = enricher(dir.path());
        for _ in 0..10 {
            located(&mut enricher, BERLIN.ip);
            located(&mut enricher, "9.9.9.9");
        }
        let stats = enricher.geo_stats().unwrap();
        assert_eq!(
            (stats.lookups, stats.cache_hits, stats.located),
            (20, 18, 1)
        );
    }

    #[test]
    fn a_replaced_file_is_reloaded_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut enricher = enricher(dir.path());
        assert_eq!(
            located(&mut enricher, BERLIN.ip)
                .unwrap()
                .country
                .as_deref(),
            Some("DE")
        );
        assert_eq!(enricher.reload_if_replaced(), 0, "nothing changed");
        // As updaters do: write a new file beside, rename it over the old one.
        let city = dir.path().join("GeoIP2-City-Test.mmdb");
        let next = dir.path().join("next.mmdb");
        let moved = testdb::Place {
            network: BERLIN.network,
            ..SAO_PAULO
        };
        std::fs::write(&next, testdb::city_db_of(&[moved])).unwrap();
        std::fs::rename(&next, &city).unwrap();
        assert_eq!(enricher.reload_if_replaced(), 1);
        assert_eq!(
            located(&mut enricher, BERLIN.ip)
                .unwrap()
                .country
                .as_deref(),
            Some("BR"),
            "the cache was cleared"
        );
        // A half-written replacement is refused and the loaded file stays in use.
        std::fs::write(&next, b"not a database").unwrap();
        std::fs::rename(&next, &city).unwrap();
        assert_eq!(enricher.reload_if_replaced(), 0);
        assert_eq!(enricher.reload_if_replaced(), 0, "and not read again");
        assert_eq!(
            located(&mut enricher, BERLIN.ip)
                .unwrap()
                .country
                .as_deref(),
            Some("BR")
        );
    }

    #[test]
    fn wrong_schemas_and_damaged_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (city, asn) = testdb::write_all(dir.path());
        let country = dir.path().join("Country.mmdb");
        std::fs::write(&country, testdb::country_db()).unwrap();
        let truncated = dir.path().join("truncated.mmdb");
        let bytes = std::fs::read(&city).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let errors = |city, asn| {
            Enricher::open(&GeoipConfig { city, asn }, Verify::Full)
                .err()
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        let both = errors(Some(country.clone()), Some(city.clone()));
        assert_eq!(both.len(), 2, "{both:?}");
        assert!(
            both[0].contains("is a `GeoLite2-Country` database; `city` needs a City database"),
            "{both:?}"
        );
        assert!(
            both[1].contains("is a `GeoIP2-City` database; `asn` needs an ASN database"),
            "{both:?}"
        );
        let damaged = errors(Some(truncated), Some(asn));
        assert!(damaged[0].starts_with("[geoip] city `"), "{damaged:?}");
        assert!(
            damaged[0].contains("not a readable MaxMind DB file"),
            "{damaged:?}"
        );
    }
}
