//! Small deterministic GeoIP databases for tests and benchmarks, written with `mmdb-writer`
//! in MaxMind's GeoIP2 City and GeoLite2 ASN schemas (extra fields included, as real files
//! have them, so decoding must skip what it does not use).
//!
//! Shared by the library's unit tests, the integration tests and the benchmarks through
//! `#[path]`, since it needs a dev-dependency.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use ipnet::IpNet;
use mmdb_writer::Writer;
use serde::Serialize;

/// One located network of the test databases.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    pub network: &'static str,
    /// An address inside `network`, for events.
    pub ip: &'static str,
    pub country: &'static str,
    pub city: Option<&'static str>,
    /// Latitude, longitude and accuracy radius (km), when the network is located that finely.
    pub location: Option<(f64, f64, u16)>,
    pub asn: Option<(u32, &'static str)>,
}

pub const BERLIN: Place = Place {
    network: "2.16.0.0/16",
    ip: "2.16.4.20",
    country: "DE",
    city: Some("Berlin"),
    location: Some((52.52, 13.405, 20)),
    asn: Some((3320, "Deutsche Telekom AG")),
};
pub const PARIS: Place = Place {
    network: "2.17.0.0/16",
    ip: "2.17.8.1",
    country: "FR",
    city: Some("Paris"),
    location: Some((48.857, 2.352, 20)),
    asn: Some((3215, "Orange S.A.")),
};
pub const SAO_PAULO: Place = Place {
    network: "2.18.0.0/16",
    ip: "2.18.99.7",
    country: "BR",
    city: Some("São Paulo"),
    location: Some((-23.55, -46.633, 50)),
    asn: Some((28573, "Claro NXT Telecomunicacoes Ltda")),
};
pub const DRESDEN: Place = Place {
    network: "2.19.0.0/16",
    ip: "2.19.1.1",
    country: "DE",
    city: Some("Dresden"),
    location: Some((51.05, 13.738, 10)),
    asn: Some((3320, "Deutsche Telekom AG")),
};
pub const NUREMBERG: Place = Place {
    network: "2.20.0.0/16",
    ip: "2.20.1.1",
    country: "DE",
    city: Some("Nuremberg"),
    location: Some((49.452, 11.077, 10)),
    asn: Some((3320, "Deutsche Telekom AG")),
};
/// A satellite network whose exit is far from its users.
pub const STARLINK_NEW_YORK: Place = Place {
    network: "2.21.0.0/16",
    ip: "2.21.0.9",
    country: "US",
    city: Some("New York"),
    location: Some((40.713, -74.006, 100)),
    asn: Some((14593, "SpaceX Starlink")),
};
/// Known only to the country.
pub const JAPAN: Place = Place {
    network: "2.22.0.0/16",
    ip: "2.22.3.3",
    country: "JP",
    city: None,
    location: None,
    asn: None,
};
pub const BERLIN_V6: Place = Place {
    network: "2a02:1000::/32",
    ip: "2a02:1000::17",
    ..BERLIN
};
pub const SAO_PAULO_V6: Place = Place {
    network: "2a02:2000::/32",
    ip: "2a02:2000::99",
    ..SAO_PAULO
};

pub const PLACES: [Place; 9] = [
    BERLIN,
    PARIS,
    SAO_PAULO,
    DRESDEN,
    NUREMBERG,
    STARLINK_NEW_YORK,
    JAPAN,
    BERLIN_V6,
    SAO_PAULO_V6,
];

/// Networks the databases wrongly locate, as a trap: private and documentation addresses
/// must never be looked up.
pub const TRAPS: [&str; 2] = ["10.0.0.0/8", "198.51.100.0/24"];

/// A fixed build time, so the files are byte-for-byte reproducible.
const BUILD_EPOCH_S: u64 = 1_767_225_600;

#[derive(Serialize)]
struct Names {
    en: &'static str,
    de: &'static str,
}

#[derive(Serialize)]
struct CityPart {
    geoname_id: u32,
    names: Names,
}

#[derive(Serialize)]
struct CountryPart {
    geoname_id: u32,
    iso_code: &'static str,
    names: Names,
}

#[derive(Serialize)]
struct LocationPart {
    accuracy_radius: u16,
    latitude: f64,
    longitude: f64,
    time_zone: &'static str,
}

#[derive(Serialize)]
struct CityRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<CityPart>,
    country: CountryPart,
    registered_country: CountryPart,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<LocationPart>,
    subdivisions: Vec<BTreeMap<&'static str, &'static str>>,
}

#[derive(Serialize)]
struct AsnRecord {
    autonomous_system_number: u32,
    autonomous_system_organization: &'static str,
}

fn country(iso_code: &'static str) -> CountryPart {
    CountryPart {
        geoname_id: 1,
        iso_code,
        names: Names {
            en: iso_code,
            de: iso_code,
        },
    }
}

fn city_record(p: &Place) -> CityRecord {
    CityRecord {
        city: p.city.map(|name| CityPart {
            geoname_id: 2,
            names: Names { en: name, de: name },
        }),
        country: country(p.country),
        registered_country: country(p.country),
        location: p
            .location
            .map(|(latitude, longitude, accuracy_radius)| LocationPart {
                accuracy_radius,
                latitude,
                longitude,
                time_zone: "Etc/UTC",
            }),
        subdivisions: vec![BTreeMap::from([("iso_code", "XX")])],
    }
}

fn writer(database_type: &str) -> Writer {
    Writer::builder(database_type)
        .description(&[("en", "authwatch test database")])
        .build_epoch(UNIX_EPOCH + Duration::from_secs(BUILD_EPOCH_S))
        .build()
}

fn net(s: &str) -> IpNet {
    s.parse().expect("a valid network")
}

/// A City database (`database_type` GeoIP2-City) with [`PLACES`] and the [`TRAPS`].
pub fn city_db() -> Vec<u8> {
    city_db_of(&PLACES)
}

pub fn city_db_of(places: &[Place]) -> Vec<u8> {
    let mut w = writer("GeoIP2-City");
    for p in places {
        w.insert(net(p.network), &city_record(p)).expect("insert");
    }
    for trap in TRAPS {
        w.insert(net(trap), &city_record(&SAO_PAULO))
            .expect("insert");
    }
    w.to_bytes().expect("a City database")
}

/// An ASN database (`database_type` GeoLite2-ASN) with the networks of [`PLACES`].
pub fn asn_db() -> Vec<u8> {
    let mut w = writer("GeoLite2-ASN");
    for p in &PLACES {
        if let Some((number, org)) = p.asn {
            let record = AsnRecord {
                autonomous_system_number: number,
                autonomous_system_organization: org,
            };
            w.insert(net(p.network), &record).expect("insert");
        }
    }
    w.to_bytes().expect("an ASN database")
}

/// A database of another schema (country level), which `[geoip] city` must refuse.
pub fn country_db() -> Vec<u8> {
    let mut w = writer("GeoLite2-Country");
    w.insert(net(BERLIN.network), &country("DE"))
        .expect("insert");
    w.to_bytes().expect("a Country database")
}

/// A City database of `n` /24 networks spread over public IPv4 space, for benchmarks.
pub fn big_city_db(n: u32) -> Vec<u8> {
    let mut w = writer("GeoIP2-City");
    for i in 0..n {
        let place = PLACES[i as usize % PLACES.len()];
        w.insert(net(&format!("{}/24", bench_ip(i))), &city_record(&place))
            .expect("insert");
    }
    w.to_bytes().expect("a City database")
}

/// The `i`-th network address of [`big_city_db`] (in 11.0.0.0 and up: public space).
pub fn bench_ip(i: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from((11 << 24) + (i << 8))
}

/// Writes the test databases into `dir`; returns the City and ASN paths.
pub fn write_all(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let city = dir.join("GeoIP2-City-Test.mmdb");
    let asn = dir.join("GeoLite2-ASN-Test.mmdb");
    std::fs::write(&city, city_db()).expect("write the City database");
    std::fs::write(&asn, asn_db()).expect("write the ASN database");
    (city, asn)
}
