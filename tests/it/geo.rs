//! GeoIP enrichment end to end (issue 5): events located by the test databases give exactly
//! the baseline alerts of the same events carrying their `geo`, and a damaged or wrong
//! database stops `check` and `run` with exit 78.

use std::path::Path;

use serde_json::{Value, json};

use crate::geodb::{
    self, BERLIN, BERLIN_V6, DRESDEN, JAPAN, NUREMBERG, PARIS, Place, SAO_PAULO, SAO_PAULO_V6,
    STARLINK_NEW_YORK,
};
use crate::support::{alerts, authwatch, rules_dir, stderr};

const DAY_MS: i64 = 86_400_000;
const MIN_MS: i64 = 60_000;
/// 2026-03-01T08:00:00Z
const START_MS: i64 = 1_772_352_000_000;

/// A successful login of `user` from `place` (`None`: a private address) at `ts`.
struct Login {
    ts: i64,
    user: &'static str,
    place: Option<Place>,
}

fn login(day: i64, minute: i64, user: &'static str, place: Option<Place>) -> Login {
    Login {
        ts: START_MS + day * DAY_MS + minute * MIN_MS,
        user,
        place,
    }
}

/// What the test databases say about a place, as an event's `geo`.
fn geo_of(p: &Place) -> Value {
    let mut geo = json!({"country": p.country});
    if let Some(city) = p.city {
        geo["city"] = city.into();
    }
    if let Some((lat, lon, accuracy)) = p.location {
        geo["lat"] = lat.into();
        geo["lon"] = lon.into();
        geo["accuracy_km"] = f64::from(accuracy).into();
    }
    if let Some((asn, org)) = p.asn {
        geo["asn"] = asn.into();
        geo["as_org"] = org.into();
    }
    geo
}

/// The logins as JSON lines: with `geo` (and no ip), or with only the ip.
fn lines(logins: &[Login], with_geo: bool) -> String {
    let mut out = String::new();
    for l in logins {
        let mut e = json!({"ts": l.ts, "type": "login.success", "tenant": "acme", "user": l.user,
            "username": format!("{}@example.com", l.user), "device": format!("{}-laptop", l.user)});
        match (&l.place, with_geo) {
            (Some(p), true) => e["geo"] = geo_of(p),
            (Some(p), false) => e["ip"] = p.ip.into(),
            (None, true) => {}
            (None, false) => e["ip"] = "10.20.30.40".into(),
        }
        out.push_str(&e.to_string());
        out.push('\n');
    }
    out
}

fn scenario() -> Vec<Login> {
    let mut logins = Vec::new();
    for day in 0..9 {
        // A settled user, then São Paulo 45 minutes after Berlin: new country and travel.
        logins.push(login(day, 0, "u1", Some(BERLIN)));
        // A frequent traveller between two countries of the baseline.
        logins.push(login(day, 0, "u2", Some(BERLIN)));
        logins.push(login(day, 600, "u2", Some(PARIS)));
        // Neighbouring cities ten minutes apart.
        logins.push(login(day, 0, "u3", Some(DRESDEN)));
        logins.push(login(day, 10, "u3", Some(NUREMBERG)));
        // Berlin, then a satellite exit in New York.
        logins.push(login(day, 0, "u4", Some(BERLIN)));
        // IPv6 only.
        logins.push(login(day, 0, "u5", Some(BERLIN_V6)));
        // Private addresses: no location, no history.
        logins.push(login(day, 0, "u6", None));
        // Known only to the country.
        logins.push(login(day, 0, "u7", Some(PARIS)));
    }
    // On the last day, each leaves from Berlin in the morning.
    logins.push(login(9, 0, "u1", Some(BERLIN)));
    logins.push(login(9, 0, "u4", Some(BERLIN)));
    logins.push(login(9, 0, "u5", Some(BERLIN_V6)));
    logins.push(login(9, 45, "u1", Some(SAO_PAULO)));
    logins.push(login(9, 30, "u4", Some(STARLINK_NEW_YORK)));
    logins.push(login(9, 40, "u5", Some(SAO_PAULO_V6)));
    logins.push(login(9, 0, "u6", None));
    logins.push(login(9, 5, "u7", Some(JAPAN)));
    logins.sort_by_key(|l| l.ts);
    logins
}

/// The alerts of a replay, without what legitimately differs between the two inputs (ids
/// hash the input bytes; evidence and `ip` show the events themselves).
fn replay(config: &Path, input: &str) -> Vec<Value> {
    let rules = rules_dir();
    let out = authwatch(
        &[
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "-",
        ],
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut alerts: Vec<Value> = alerts(&out)
        .into_iter()
        .map(|a| {
            json!({"rule": a["rule"], "group": a["group"], "ts": a["ts"],
                   "count": a["count"], "summary": a["summary"]})
        })
        .collect();
    alerts.sort_by_key(|a| a.to_string());
    alerts
}

fn config_with(dir: &Path, city: &Path, asn: &Path) -> std::path::PathBuf {
    let config = dir.join("authwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[geoip]\ncity = \"{}\"\nasn = \"{}\"\n",
            city.display(),
            asn.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn events_located_by_geoip_give_the_alerts_of_events_carrying_geo() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = geodb::write_all(dir.path());
    let config = config_with(dir.path(), &city, &asn);
    let logins = scenario();
    let from_geo = replay(&config, &lines(&logins, true));
    let from_ips = replay(&config, &lines(&logins, false));
    assert_eq!(from_geo, from_ips);

    let fired = |rule: &str, user: &str| {
        from_ips
            .iter()
            .filter(|a| a["rule"] == rule && a["group"]["user"] == user)
            .count()
    };
    assert_eq!(fired("new-country-login", "u1"), 1);
    assert_eq!(fired("impossible-travel", "u1"), 1);
    assert_eq!(fired("new-country-login", "u5"), 1, "IPv6");
    assert_eq!(fired("impossible-travel", "u5"), 1, "IPv6");
    assert_eq!(
        fired("new-country-login", "u4"),
        1,
        "a new country all the same"
    );
    assert_eq!(fired("impossible-travel", "u4"), 0, "an ignored network");
    assert_eq!(
        fired("new-country-login", "u7"),
        1,
        "a country without a city"
    );
    for quiet in ["u2", "u3", "u6"] {
        assert_eq!(
            from_ips
                .iter()
                .filter(|a| a["group"]["user"] == quiet)
                .count(),
            0,
            "{quiet}"
        );
    }
    let travel = from_ips
        .iter()
        .find(|a| a["rule"] == "impossible-travel" && a["group"]["user"] == "u1")
        .unwrap();
    assert!(
        travel["summary"]
            .as_str()
            .unwrap()
            .contains("Berlin DE -> São Paulo BR"),
        "{travel}"
    );
    let country = from_ips
        .iter()
        .find(|a| a["rule"] == "new-country-login" && a["group"]["user"] == "u1")
        .unwrap();
    assert!(
        country["summary"]
            .as_str()
            .unwrap()
            .contains("new geo.country=BR for tenant=acme, user=u1 (seen before: DE)"),
        "{country}"
    );
}

#[test]
fn check_opens_and_verifies_the_databases() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = geodb::write_all(dir.path());
    let rules = rules_dir();
    let check = |config: &Path| {
        authwatch(
            &[
                "check",
                "--config",
                config.to_str().unwrap(),
                "--rules",
                rules.to_str().unwrap(),
            ],
            b"",
        )
    };
    let good = check(&config_with(dir.path(), &city, &asn));
    assert_eq!(good.status.code(), Some(0), "{}", stderr(&good));

    // The databases swapped: each is of the wrong schema.
    let swapped = check(&config_with(dir.path(), &asn, &city));
    assert_eq!(swapped.status.code(), Some(78));
    let err = stderr(&swapped);
    assert!(
        err.contains("is a `GeoLite2-ASN` database; `city` needs a City database"),
        "{err}"
    );
    assert!(
        err.contains("is a `GeoIP2-City` database; `asn` needs an ASN database"),
        "{err}"
    );

    let bytes = std::fs::read(&city).unwrap();
    let damaged = dir.path().join("damaged.mmdb");
    std::fs::write(&damaged, &bytes[..bytes.len() - 40]).unwrap();
    let config = config_with(dir.path(), &damaged, &asn);
    let out = check(&config);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("[geoip] city `"), "{}", stderr(&out));

    // `run` refuses to start on it too.
    let run = authwatch(&["run", "--config", config.to_str().unwrap()], b"");
    assert_eq!(run.status.code(), Some(78), "{}", stderr(&run));
}

/// MaxMind's own test databases, as shipped in the PyPI `maxminddb` source distribution
/// (`.ci/run` fetches them and sets `AUTHWATCH_MAXMIND_TEST_DATA`): real schemas, real
/// metadata, and files broken on purpose.
fn maxmind_test_data() -> Option<std::path::PathBuf> {
    match std::env::var_os("AUTHWATCH_MAXMIND_TEST_DATA") {
        Some(dir) => Some(dir.into()),
        None => {
            crate::support::skip_unless_ci(
                "AUTHWATCH_MAXMIND_TEST_DATA is not set (.ci/run sets it to MaxMind's test \
                 databases)",
            );
            None
        }
    }
}

#[test]
fn maxmind_test_databases_are_read_in_their_real_schemas() {
    use authwatch::config::GeoipConfig;
    use authwatch::enrich::{Enricher, Verify};
    use authwatch::event::{Event, EventType};

    let Some(dir) = maxmind_test_data() else {
        return;
    };
    let config = GeoipConfig {
        city: Some(dir.join("GeoIP2-City-Test.mmdb")),
        asn: Some(dir.join("GeoLite2-ASN-Test.mmdb")),
    };
    let mut enricher = Enricher::open(&config, Verify::Full).expect("MaxMind's files open");
    let mut locate = |ip: &str| {
        let mut e = Event::new(0, EventType::LoginSuccess);
        e.ip = Some(ip.parse().unwrap());
        enricher.enrich(&mut e);
        e.geo.map(|g| *g)
    };
    let london = locate("81.2.69.142").expect("located");
    eprintln!("81.2.69.142: {london:?}");
    assert_eq!(london.country.as_deref(), Some("GB"));
    assert_eq!(london.city.as_deref(), Some("London"));
    assert_eq!(
        (london.lat, london.lon, london.accuracy_km),
        (Some(51.5142), Some(-0.0931), Some(10.0))
    );
    let linkoping = locate("89.160.20.128").expect("located");
    eprintln!("89.160.20.128: {linkoping:?}");
    assert_eq!(linkoping.country.as_deref(), Some("SE"));
    assert_eq!(linkoping.city.as_deref(), Some("Linköping"));
    assert_eq!(linkoping.asn, Some(29518), "from the ASN file");
    let telstra = locate("1.128.0.0").expect("in the ASN file");
    eprintln!("1.128.0.0: {telstra:?}");
    assert_eq!(telstra.asn, Some(1221));
    assert_eq!(telstra.as_org.as_deref(), Some("Telstra Pty Ltd"));
}

#[test]
fn maxmind_broken_and_foreign_files_are_refused() {
    use authwatch::config::GeoipConfig;
    use authwatch::enrich::{Enricher, Verify};

    let Some(dir) = maxmind_test_data() else {
        return;
    };
    for (file, why) in [
        ("GeoIP2-City-Test-Broken-Double-Format.mmdb", "damaged"),
        (
            "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
            "not a readable MaxMind DB",
        ),
        (
            "MaxMind-DB-test-broken-pointers-24.mmdb",
            "is a `Test` database",
        ),
        ("GeoIP2-Country-Test.mmdb", "needs a City database"),
        ("GeoIP2-Anonymous-IP-Test.mmdb", "needs a City database"),
    ] {
        let config = GeoipConfig {
            city: Some(dir.join(file)),
            asn: None,
        };
        let errors = Enricher::open(&config, Verify::Full)
            .err()
            .unwrap_or_else(|| panic!("{file} must be refused"));
        let text = errors[0].to_string();
        eprintln!("{text}");
        assert!(text.starts_with("[geoip] city `"), "{text}");
        assert!(text.contains(why), "{file}: {text}");
    }
}
