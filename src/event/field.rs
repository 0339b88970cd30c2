//! The field paths rules can address (`username`, `geo.country`, `attrs.a.b`) and their values.

use std::fmt::{self, Write};
use std::net::IpAddr;

use super::Event;

/// A field of the canonical event, resolved once when a rule is compiled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Ts,
    Type,
    Id,
    Tenant,
    User,
    Username,
    Ip,
    UserAgent,
    Device,
    Session,
    Client,
    Factor,
    Reason,
    Source,
    Geo(GeoField),
    /// A path inside `attrs`, already split on dots.
    Attr(Vec<String>),
    /// The client address cut to its network (`ip/24`, `ip/48`, `ip/24/56`): only where a
    /// rule groups or counts (`group_by`, `distinct`, `field`), never in `match` (use `cidr`).
    IpNet(NetPrefix),
}

/// The prefix lengths of an `ip/...` grouping, one per address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetPrefix {
    pub v4: u8,
    pub v6: u8,
}

/// `ip/N` names one family's length; the other takes the length that is, by convention, one
/// customer network: a /24 for IPv4, a /48 (one site's allocation) for IPv6.
const DEFAULT_V4_PREFIX: u8 = 24;
const DEFAULT_V6_PREFIX: u8 = 48;

impl NetPrefix {
    /// Parses the part after `ip/`: `24` (IPv4 /24, IPv6 /48), `48` (IPv6 /48, IPv4 /24) or
    /// `24/56` (both). The error says what a valid prefix looks like.
    pub fn parse(text: &str) -> Result<NetPrefix, String> {
        let usage = "write `ip/<length>`: 1 to 32 is the IPv4 length (IPv6 then /48), 33 to \
                     128 the IPv6 length (IPv4 then /24); or `ip/<v4>/<v6>` for both, like ip/24/56";
        let number = |t: &str| t.parse::<u8>().ok().filter(|n| *n >= 1);
        let parts: Vec<&str> = text.split('/').collect();
        let prefix = match parts.as_slice() {
            [one] => match number(one) {
                Some(n @ 1..=32) => NetPrefix {
                    v4: n,
                    v6: DEFAULT_V6_PREFIX,
                },
                Some(n @ 33..=128) => NetPrefix {
                    v4: DEFAULT_V4_PREFIX,
                    v6: n,
                },
                _ => return Err(format!("`ip/{text}` is not a network prefix; {usage}")),
            },
            [a, b] => match (number(a), number(b)) {
                (Some(v4 @ 1..=32), Some(v6 @ 1..=128)) => NetPrefix { v4, v6 },
                _ => return Err(format!("`ip/{text}` is not a network prefix; {usage}")),
            },
            _ => return Err(format!("`ip/{text}` is not a network prefix; {usage}")),
        };
        Ok(prefix)
    }

    /// The network `ip` belongs to (an IPv4-mapped IPv6 address counts as the IPv4 one).
    pub fn network(self, ip: IpAddr) -> ipnet::IpNet {
        let ip = ip.to_canonical();
        let len = if ip.is_ipv4() { self.v4 } else { self.v6 };
        ipnet::IpNet::new(ip, len)
            .expect("lengths are checked at parse")
            .trunc()
    }
}

impl fmt::Display for NetPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.v4, self.v6) {
            (v4, DEFAULT_V6_PREFIX) => write!(f, "ip/{v4}"),
            (DEFAULT_V4_PREFIX, v6) if v6 > 32 => write!(f, "ip/{v6}"),
            (v4, v6) => write!(f, "ip/{v4}/{v6}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GeoField {
    Country,
    City,
    Lat,
    Lon,
    AccuracyKm,
    Asn,
    AsOrg,
}

/// A borrowed field value. Numbers stay numbers so `gt`/`lt` compare them as such.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldValue<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Ip(IpAddr),
    /// A network (`ip/24` groupings), written `198.51.100.0/24`.
    Net(ipnet::IpNet),
    /// An `attrs` value that is an array or object.
    Json(&'a serde_json::Value),
}

impl FieldValue<'_> {
    /// The value as a number, when it is one (or a string holding one).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            FieldValue::Int(i) => Some(i as f64),
            FieldValue::Float(f) => Some(f),
            FieldValue::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// Writes the value as text (group keys, summaries, string operators).
    pub fn write_to(&self, out: &mut String) {
        let _ = match *self {
            FieldValue::Str(s) => {
                out.push_str(s);
                Ok(())
            }
            FieldValue::Int(i) => write!(out, "{i}"),
            FieldValue::Float(f) => write!(out, "{f}"),
            FieldValue::Bool(b) => write!(out, "{b}"),
            FieldValue::Ip(ip) => write!(out, "{ip}"),
            FieldValue::Net(net) => write!(out, "{net}"),
            FieldValue::Json(v) => write!(out, "{v}"),
        };
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.write_to(&mut s);
        s
    }

    /// The value as JSON, for the alert's `group` object.
    pub fn to_json(&self) -> serde_json::Value {
        match *self {
            FieldValue::Str(s) => s.into(),
            FieldValue::Int(i) => i.into(),
            FieldValue::Float(f) => f.into(),
            FieldValue::Bool(b) => b.into(),
            FieldValue::Ip(ip) => ip.to_string().into(),
            FieldValue::Net(net) => net.to_string().into(),
            FieldValue::Json(v) => v.clone(),
        }
    }
}

impl Field {
    /// Resolves a dotted path; `None` when no such field exists.
    pub fn parse(path: &str) -> Option<Field> {
        Some(match path {
            "ts" => Field::Ts,
            "type" => Field::Type,
            "id" => Field::Id,
            "tenant" => Field::Tenant,
            "user" => Field::User,
            "username" => Field::Username,
            "ip" => Field::Ip,
            "user_agent" => Field::UserAgent,
            "device" => Field::Device,
            "session" => Field::Session,
            "client" => Field::Client,
            "factor" => Field::Factor,
            "reason" => Field::Reason,
            "source" => Field::Source,
            "geo.country" => Field::Geo(GeoField::Country),
            "geo.city" => Field::Geo(GeoField::City),
            "geo.lat" => Field::Geo(GeoField::Lat),
            "geo.lon" => Field::Geo(GeoField::Lon),
            "geo.accuracy_km" => Field::Geo(GeoField::AccuracyKm),
            "geo.asn" => Field::Geo(GeoField::Asn),
            "geo.as_org" => Field::Geo(GeoField::AsOrg),
            _ => {
                let rest = path.strip_prefix("attrs.")?;
                let parts: Vec<String> = rest.split('.').map(str::to_string).collect();
                if parts.iter().any(String::is_empty) {
                    return None;
                }
                Field::Attr(parts)
            }
        })
    }

    /// Like [`Field::parse`], and also the network of the address (`ip/24`), for what a rule
    /// groups or counts by. The error says what is wrong.
    pub fn parse_grouping(path: &str) -> Result<Field, String> {
        if let Some(prefix) = path.strip_prefix("ip/") {
            return NetPrefix::parse(prefix).map(Field::IpNet);
        }
        Field::parse(path).ok_or_else(|| format!("unknown field `{path}`"))
    }

    /// Every path `parse` accepts besides `attrs.*`, for "did you mean" messages.
    pub const NAMES: [&'static str; 21] = [
        "ts",
        "type",
        "id",
        "tenant",
        "user",
        "username",
        "ip",
        "user_agent",
        "device",
        "session",
        "client",
        "factor",
        "reason",
        "source",
        "geo.country",
        "geo.city",
        "geo.lat",
        "geo.lon",
        "geo.accuracy_km",
        "geo.asn",
        "geo.as_org",
    ];

    /// Reads the field from an event; `None` when it is absent.
    pub fn get<'a>(&self, e: &'a Event) -> Option<FieldValue<'a>> {
        let s = |v: &'a Option<super::Text>| v.as_deref().map(FieldValue::Str);
        match self {
            Field::Ts => Some(FieldValue::Int(e.ts)),
            Field::Type => Some(FieldValue::Str(e.kind.as_str())),
            Field::Id => s(&e.id),
            Field::Tenant => s(&e.tenant),
            Field::User => s(&e.user),
            Field::Username => s(&e.username),
            Field::Ip => e.ip.map(FieldValue::Ip),
            Field::IpNet(prefix) => e.ip.map(|ip| FieldValue::Net(prefix.network(ip))),
            Field::UserAgent => s(&e.user_agent),
            Field::Device => s(&e.device),
            Field::Session => s(&e.session),
            Field::Client => s(&e.client),
            Field::Factor => s(&e.factor),
            Field::Reason => s(&e.reason),
            Field::Source => s(&e.source),
            Field::Geo(g) => {
                let geo = e.geo.as_ref()?;
                match g {
                    GeoField::Country => s(&geo.country),
                    GeoField::City => s(&geo.city),
                    GeoField::Lat => geo.lat.map(FieldValue::Float),
                    GeoField::Lon => geo.lon.map(FieldValue::Float),
                    GeoField::AccuracyKm => geo.accuracy_km.map(FieldValue::Float),
                    GeoField::Asn => geo.asn.map(|a| FieldValue::Int(a.into())),
                    GeoField::AsOrg => s(&geo.as_org),
                }
            }
            Field::Attr(path) => {
                let mut v = e.attrs.as_ref()?.get(&path[0])?;
                for part in &path[1..] {
                    v = v.get(part.as_str())?;
                }
                json_value(v)
            }
        }
    }
}

fn json_value(v: &serde_json::Value) -> Option<FieldValue<'_>> {
    use serde_json::Value as J;
    match v {
        J::Null => None,
        J::Bool(b) => Some(FieldValue::Bool(*b)),
        J::Number(n) => Some(n.as_i64().map_or_else(
            || FieldValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            FieldValue::Int,
        )),
        J::String(s) => Some(FieldValue::Str(s)),
        J::Array(_) | J::Object(_) => Some(FieldValue::Json(v)),
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Attr(path) => write!(f, "attrs.{}", path.join(".")),
            Field::IpNet(prefix) => write!(f, "{prefix}"),
            Field::Geo(g) => {
                let name = match g {
                    GeoField::Country => "country",
                    GeoField::City => "city",
                    GeoField::Lat => "lat",
                    GeoField::Lon => "lon",
                    GeoField::AccuracyKm => "accuracy_km",
                    GeoField::Asn => "asn",
                    GeoField::AsOrg => "as_org",
                };
                write!(f, "geo.{name}")
            }
            other => {
                let name = Field::NAMES
                    .iter()
                    .find(|n| Field::parse(n).as_ref() == Some(other))
                    .copied()
                    .unwrap_or("?");
                f.write_str(name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode_line;

    #[test]
    fn every_named_field_parses_and_prints_back() {
        for name in Field::NAMES {
            assert_eq!(Field::parse(name).unwrap().to_string(), name);
        }
        assert_eq!(Field::parse("attrs.a.b").unwrap().to_string(), "attrs.a.b");
        assert!(Field::parse("attrs.").is_none());
        assert!(Field::parse("usr").is_none());
    }

    #[test]
    fn network_groupings_parse_cut_addresses_and_print_back() {
        let net = |path: &str, ip: &str| {
            let e = decode_line(format!(r#"{{"ts":1,"type":"other","ip":"{ip}"}}"#).as_bytes())
                .unwrap();
            Field::parse_grouping(path)
                .unwrap()
                .get(&e)
                .unwrap()
                .to_text()
        };
        assert_eq!(net("ip/24", "198.51.100.77"), "198.51.100.0/24");
        assert_eq!(net("ip/24", "2001:db8:1:2::9"), "2001:db8:1::/48");
        assert_eq!(net("ip/48", "198.51.100.77"), "198.51.100.0/24");
        assert_eq!(net("ip/64", "2001:db8:1:2::9"), "2001:db8:1:2::/64");
        assert_eq!(net("ip/16/32", "198.51.100.77"), "198.51.0.0/16");
        assert_eq!(net("ip/16/32", "2001:db8:1:2::9"), "2001:db8::/32");
        assert_eq!(net("ip/32", "198.51.100.77"), "198.51.100.77/32");
        // An IPv4-mapped IPv6 address is the IPv4 address.
        assert_eq!(net("ip/24", "::ffff:198.51.100.77"), "198.51.100.0/24");
        for path in ["ip/24", "ip/16/32", "ip/64", "ip/16"] {
            assert_eq!(Field::parse_grouping(path).unwrap().to_string(), path);
        }
        // `ip/48` and `ip/24/48` are `ip/24`: the same grouping, one name.
        assert_eq!(
            Field::parse_grouping("ip/24/48").unwrap().to_string(),
            "ip/24"
        );
        assert_eq!(Field::parse_grouping("ip/48").unwrap().to_string(), "ip/24");
        for bad in [
            "ip/0",
            "ip/129",
            "ip/",
            "ip/x",
            "ip/33/64",
            "ip/24/0",
            "ip/24/48/1",
        ] {
            let err = Field::parse_grouping(bad).unwrap_err();
            assert!(err.contains("not a network prefix"), "{bad}: {err}");
        }
        // Not a match key: a network is matched with `cidr`.
        assert!(Field::parse("ip/24").is_none());
    }

    #[test]
    fn nested_attrs_are_reachable() {
        let e = decode_line(br#"{"ts":1,"type":"other","attrs":{"a":{"b":false}}}"#).unwrap();
        let v = Field::parse("attrs.a.b").unwrap().get(&e);
        assert_eq!(v, Some(FieldValue::Bool(false)));
        assert_eq!(Field::parse("attrs.a.c").unwrap().get(&e), None);
    }
}
