//! GeoIP: locates an ip with MaxMind DB files (GeoIP2/GeoLite2 City and ASN schemas, IPv4
//! and IPv6), behind a bounded per-ip cache, reloading a file when it is replaced.
//!
//! Databases are read into memory rather than memory-mapped: updaters replace the file
//! weekly, and a file truncated under a mapping would crash the daemon.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use maxminddb::{MaxMindDbError, Reader};
use serde::Deserialize;

use crate::event::Geo;

/// IPs one cache generation holds. Two generations are kept (see [`IpCache`]), so at most
/// twice this many ips, about 200 bytes each: 13 MB for 64k distinct recent addresses.
pub const CACHE_IPS_PER_GENERATION: usize = 32_768;

/// The clock is read every this many lookups to decide whether to look at the files again:
/// reading it per event would cost more than a cache hit.
const CLOCK_EVERY_LOOKUPS: u32 = 16;
/// How often the database files are looked at (one `stat` each) for a replacement.
pub const RELOAD_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// Lookup errors (a damaged file) logged one by one before they are only counted.
const ERRORS_LOGGED: u64 = 10;

/// Which schema a database file must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    City,
    Asn,
}

impl DbKind {
    /// The `[geoip]` key that names this kind of file.
    pub fn key(self) -> &'static str {
        match self {
            DbKind::City => "city",
            DbKind::Asn => "asn",
        }
    }

    /// Whether a `database_type` from the file's metadata has this schema. City-level
    /// products carry "City" (GeoIP2-City, GeoLite2-City, DBIP-City-Lite) or are the
    /// Enterprise superset; AS data comes in the ASN and ISP products.
    fn accepts(self, database_type: &str) -> bool {
        let t = database_type.to_ascii_lowercase();
        match self {
            DbKind::City => t.contains("city") || t.contains("enterprise"),
            DbKind::Asn => t.contains("asn") || t.contains("isp"),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            DbKind::City => "a City database (GeoIP2-City, GeoLite2-City)",
            DbKind::Asn => "an ASN database (GeoLite2-ASN, GeoIP2-ISP)",
        }
    }
}

/// Why a database could not be used.
#[derive(Debug)]
pub struct OpenError {
    pub kind: DbKind,
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[geoip] {} `{}`: {}",
            self.kind.key(),
            self.path.display(),
            self.reason
        )
    }
}

impl std::error::Error for OpenError {}

/// What identifies one version of a file: a replaced file has a new inode or mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(FileStamp {
            inode: m.ino(),
            modified: m.modified().ok(),
            len: m.len(),
        })
    }
}

/// One open, checked database file.
pub struct Database {
    kind: DbKind,
    path: PathBuf,
    reader: Reader<Vec<u8>>,
    stamp: FileStamp,
    /// A replacement that could not be used, so it is not read again until it changes.
    refused: Option<FileStamp>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("database_type", &self.database_type())
            .finish()
    }
}

/// How much checking an open does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Metadata and schema only: what a reload on the hot path can afford.
    Metadata,
    /// Also walk the whole search tree and data section (`check` and start).
    Full,
}

impl Database {
    /// Opens `path`, which must hold a MaxMind DB of `kind`'s schema.
    pub fn open(kind: DbKind, path: &Path, verify: Verify) -> Result<Database, OpenError> {
        let fail = |reason: String| OpenError {
            kind,
            path: path.to_path_buf(),
            reason,
        };
        let stamp = FileStamp::of(path).map_err(|e| fail(e.to_string()))?;
        let reader = Reader::open_readfile(path).map_err(|e| fail(describe_open_error(&e)))?;
        let database_type = reader.metadata().database_type.clone();
        if !kind.accepts(&database_type) {
            return Err(fail(format!(
                "is a `{database_type}` database; `{}` needs {}",
                kind.key(),
                kind.expected()
            )));
        }
        if verify == Verify::Full {
            reader.verify().map_err(|e| {
                fail(format!(
                    "the file is damaged ({e}); download it again (geoipupdate)"
                ))
            })?;
        }
        Ok(Database {
            kind,
            path: path.to_path_buf(),
            reader,
            stamp,
            refused: None,
        })
    }

    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When MaxMind built this edition of the file.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    fn supports(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() || self.reader.metadata().ip_version == 6
    }

    fn city(&self, ip: IpAddr) -> Result<Option<CityRecord<'_>>, MaxMindDbError> {
        if !self.supports(ip) {
            return Ok(None);
        }
        self.reader.lookup(ip)?.decode()
    }

    fn asn(&self, ip: IpAddr) -> Result<Option<AsnRecord<'_>>, MaxMindDbError> {
        if !self.supports(ip) {
            return Ok(None);
        }
        self.reader.lookup(ip)?.decode()
    }

    /// The file now at the path, if it was replaced since this one was read (and is not a
    /// replacement already refused).
    fn replacement(&mut self) -> Option<Result<Database, OpenError>> {
        let now = FileStamp::of(&self.path).ok()?;
        if now == self.stamp || self.refused == Some(now) {
            return None;
        }
        let opened = Database::open(self.kind, &self.path, Verify::Metadata);
        if opened.is_err() {
            self.refused = Some(now);
        }
        Some(opened)
    }
}

fn describe_open_error(e: &MaxMindDbError) -> String {
    match e {
        MaxMindDbError::Io(io) => io.to_string(),
        other => format!("not a readable MaxMind DB file ({other})"),
    }
}

/// The part of a City record that events carry; everything else is skipped undecoded.
#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, default)]
    city: Option<Named<'a>>,
    #[serde(borrow, default)]
    country: Option<Country<'a>>,
    #[serde(default)]
    location: Option<Location>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct Country<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
    #[serde(default)]
    accuracy_radius: Option<u16>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

/// Counters of what GeoIP did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoStats {
    /// Events that had an ip and no `geo`.
    pub lookups: u64,
    pub cache_hits: u64,
    /// Lookups that gave a location or a network.
    pub located: u64,
    /// Private, loopback and reserved addresses: never looked up.
    pub not_public: u64,
    /// Lookups that failed on a damaged file.
    pub errors: u64,
    /// Databases replaced while running.
    pub reloads: u64,
}

/// A bounded map from ip to its (possibly absent) location: two generations, new entries go
/// to the current one, a hit in the previous one is moved forward, and when the current one
/// is full it becomes the previous one (dropping the older). Constant time, bounded, and
/// what is used keeps its place, as with an LRU. The hasher is randomly seeded: ips are
/// chosen by whoever sends the traffic.
struct IpCache {
    current: foldhash::HashMap<IpAddr, Option<Box<Geo>>>,
    previous: foldhash::HashMap<IpAddr, Option<Box<Geo>>>,
    per_generation: usize,
}

impl IpCache {
    fn new(per_generation: usize) -> IpCache {
        IpCache {
            current: foldhash::HashMap::default(),
            previous: foldhash::HashMap::default(),
            per_generation: per_generation.max(1),
        }
    }

    fn get(&mut self, ip: &IpAddr) -> Option<&Option<Box<Geo>>> {
        if !self.current.contains_key(ip) {
            let moved = self.previous.remove(ip)?;
            self.insert(*ip, moved);
        }
        self.current.get(ip)
    }

    fn insert(&mut self, ip: IpAddr, geo: Option<Box<Geo>>) {
        if self.current.len() >= self.per_generation {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(ip, geo);
    }

    fn clear(&mut self) {
        self.current.clear();
        self.previous.clear();
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// The City and ASN databases with their cache.
pub struct GeoIp {
    city: Option<Database>,
    asn: Option<Database>,
    cache: IpCache,
    lookups_until_clock: u32,
    last_check: Instant,
    pub stats: GeoStats,
}

impl GeoIp {
    pub fn new(city: Option<Database>, asn: Option<Database>) -> GeoIp {
        GeoIp::with_cache(city, asn, CACHE_IPS_PER_GENERATION)
    }

    pub fn with_cache(
        city: Option<Database>,
        asn: Option<Database>,
        per_generation: usize,
    ) -> GeoIp {
        GeoIp {
            city,
            asn,
            cache: IpCache::new(per_generation),
            lookups_until_clock: CLOCK_EVERY_LOOKUPS,
            last_check: Instant::now(),
            stats: GeoStats::default(),
        }
    }

    /// The location of `ip`, from the cache or the databases; `None` for private, loopback
    /// and reserved addresses and for addresses the databases do not know.
    pub fn locate(&mut self, ip: IpAddr) -> Option<Box<Geo>> {
        self.stats.lookups += 1;
        self.maybe_reload();
        let ip = ip.to_canonical();
        if !is_public(ip) {
            self.stats.not_public += 1;
            return None;
        }
        if let Some(cached) = self.cache.get(&ip) {
            self.stats.cache_hits += 1;
            return cached.clone();
        }
        let geo = self.look_up(ip);
        if geo.is_some() {
            self.stats.located += 1;
        }
        self.cache.insert(ip, geo.clone());
        geo
    }

    /// Number of ips cached.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn look_up(&mut self, ip: IpAddr) -> Option<Box<Geo>> {
        let mut geo = Geo::default();
        let city = self.city.as_ref().map(|db| db.city(ip));
        match city {
            Some(Ok(Some(record))) => fill_city(&mut geo, record),
            Some(Err(e)) => self.lookup_failed(DbKind::City, ip, &e),
            _ => {}
        }
        let asn = self.asn.as_ref().map(|db| db.asn(ip));
        match asn {
            Some(Ok(Some(record))) => {
                geo.asn = record.autonomous_system_number;
                geo.as_org = record.autonomous_system_organization.map(Into::into);
            }
            Some(Err(e)) => self.lookup_failed(DbKind::Asn, ip, &e),
            _ => {}
        }
        (geo != Geo::default()).then(|| Box::new(geo))
    }

    fn lookup_failed(&mut self, kind: DbKind, ip: IpAddr, e: &MaxMindDbError) {
        self.stats.errors += 1;
        if self.stats.errors <= ERRORS_LOGGED {
            tracing::warn!(database = kind.key(), %ip, "GeoIP lookup failed: {e}");
            if self.stats.errors == ERRORS_LOGGED {
                tracing::warn!("further GeoIP lookup errors are counted, not logged");
            }
        }
    }

    /// Looks at the files every [`RELOAD_CHECK_INTERVAL`], reading the clock only every
    /// few lookups.
    fn maybe_reload(&mut self) {
        self.lookups_until_clock -= 1;
        if self.lookups_until_clock > 0 {
            return;
        }
        self.lookups_until_clock = CLOCK_EVERY_LOOKUPS;
        if self.last_check.elapsed() >= RELOAD_CHECK_INTERVAL {
            self.reload_if_replaced();
        }
    }

    /// Swaps in any database whose file was replaced; a replacement that cannot be read (a
    /// download still being written) is logged and tried again at the next check, the old
    /// file staying in use. Returns how many were swapped.
    pub fn reload_if_replaced(&mut self) -> usize {
        self.last_check = Instant::now();
        let mut swapped = 0;
        for slot in [&mut self.city, &mut self.asn].into_iter().flatten() {
            match slot.replacement() {
                Some(Ok(db)) => {
                    tracing::info!(path = %db.path.display(), database_type = db.database_type(), build_epoch = db.build_epoch(), "GeoIP database reloaded");
                    *slot = db;
                    swapped += 1;
                }
                Some(Err(e)) => tracing::warn!("{e}; still using the previous file"),
                None => {}
            }
        }
        if swapped > 0 {
            self.stats.reloads += swapped as u64;
            self.cache.clear();
        }
        swapped
    }
}

fn fill_city(geo: &mut Geo, record: CityRecord<'_>) {
    geo.country = record.country.and_then(|c| c.iso_code).map(Into::into);
    geo.city = record
        .city
        .and_then(|c| c.names)
        .and_then(|n| n.en)
        .map(Into::into);
    if let Some(location) = record.location {
        geo.lat = location.latitude;
        geo.lon = location.longitude;
        geo.accuracy_km = location.accuracy_radius.map(f64::from);
    }
}

/// Special-purpose IPv4 blocks (IANA registry) that locate no one.
const NOT_PUBLIC_V4: [(u32, u8); 15] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 carrier-grade NAT
    (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
    (0xa9fe_0000, 16), // 169.254.0.0/16 link-local
    (0xac10_0000, 12), // 172.16.0.0/12 private
    (0xc000_0000, 24), // 192.0.0.0/24 protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24 documentation
    (0xc058_6300, 24), // 192.88.99.0/24 deprecated 6to4 relays
    (0xc0a8_0000, 16), // 192.168.0.0/16 private
    (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24 documentation
    (0xcb00_7100, 24), // 203.0.113.0/24 documentation
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved, broadcast
];

/// Special-purpose blocks inside IPv6 global unicast (2000::/3), which is all that is public.
const NOT_PUBLIC_V6: [(u128, u8); 3] = [
    (0x2001_0000 << 96, 23), // 2001::/23 protocol assignments
    (0x2001_0db8 << 96, 32), // 2001:db8::/32 documentation
    (0x3fff_0000 << 96, 20), // 3fff::/20 documentation
];

/// True for addresses that can be located: not private, loopback, link-local, multicast,
/// documentation or otherwise reserved. IPv4-mapped IPv6 addresses count as their IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            !NOT_PUBLIC_V4
                .iter()
                .any(|&(net, len)| bits >> (32 - len) == net >> (32 - len))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let global_unicast = bits >> 125 == 0b001;
            global_unicast
                && !NOT_PUBLIC_V6
                    .iter()
                    .any(|&(net, len)| bits >> (128 - len) == net >> (128 - len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn private_loopback_and_reserved_addresses_are_not_public() {
        for ip in [
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "192.0.2.7",
            "198.51.100.7",
            "203.0.113.7",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!public(ip), "{ip}");
        }
        for ip in [
            "81.2.69.142",
            "8.8.8.8",
            "172.32.0.1",
            "2a02:c7f::1",
            "2600::1",
            "::ffff:81.2.69.142",
        ] {
            assert!(public(ip), "{ip}");
        }
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_what_is_used() {
        let mut cache = IpCache::new(4);
        let ip = |i: u8| IpAddr::from([1, 1, 1, i]);
        cache.insert(ip(0), None);
        for i in 1..=20 {
            cache.insert(ip(i), None);
            assert!(cache.get(&ip(0)).is_some(), "used at every step: kept");
            assert!(cache.len() <= 8);
        }
        assert!(cache.get(&ip(1)).is_none(), "unused: dropped");
    }
}
