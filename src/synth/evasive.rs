//! Synthetic weeks of one organisation for the evasive attacks of issue 17 and the busy but
//! benign days that look like them: ordinary working days (logins from the office NAT and from
//! home, typos, MFA pushes, long sessions, phones moving to cellular), three benign floods
//! (a password-expiry morning behind the NAT, an identity-provider outage, a help-desk mass MFA
//! re-enrolment) and five attacks (credential stuffing through residential proxies, a
//! low-and-slow spray, a slow brute force, a session hijack, slow MFA fatigue).
//!
//! Deterministic for a seed. Attackers only ever use addresses in 203.0.113.0/24 and
//! 198.18.0.0/15 (benchmarking space), which benign traffic never does, so a test can tell an
//! alert about an attack from a false alert by its evidence.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};

use super::Rng;
use crate::event::{Event, decode_value};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// 2026-03-02T00:00:00Z, a Monday.
pub const MONDAY_MS: i64 = 1_772_409_600_000;

pub const TENANT: &str = "acme";
/// The office's NAT: everyone at work logs in from it.
pub const OFFICE_NAT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const OFFICE_ASN: u32 = 64510;
/// Home ISPs (documentation AS numbers); a phone's cellular network.
const HOME_ASNS: [u32; 6] = [64496, 64497, 64498, 64499, 64500, 64501];
const CELLULAR_ASN: u32 = 64505;

/// The kinds of busy days and attacks the generator can add to the ordinary ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// 150 people behind the NAT fail with `expired`, change their password and log in, within
    /// half an hour (benign).
    ExpiryMorning,
    /// Ten minutes of `rate_limited` / `server_error` for hundreds of people, then success
    /// (benign).
    IdpOutage,
    /// The help desk removes and re-enrols the push factor of 200 people in an hour (benign).
    MfaReenrolment,
    /// 400 usernames (mostly unknown) in half an hour from 200 residential proxies in 8
    /// networks, each proxy trying twice.
    ProxyStuffing,
    /// One bad password for 300 real accounts over 24 hours from 40 addresses in 3 networks.
    SlowSpray,
    /// 36 failures against one account over six hours from 12 addresses.
    SlowBruteForce,
    /// A session started at home refreshed 40 minutes later from another country, a hosting
    /// network and another user agent.
    SessionHijack,
    /// A push every eight minutes for almost two hours, each timing out, then an approval.
    SlowMfaFatigue,
}

impl Scenario {
    pub const BENIGN: [Scenario; 3] = [
        Scenario::ExpiryMorning,
        Scenario::IdpOutage,
        Scenario::MfaReenrolment,
    ];
    pub const ATTACKS: [Scenario; 5] = [
        Scenario::ProxyStuffing,
        Scenario::SlowSpray,
        Scenario::SlowBruteForce,
        Scenario::SessionHijack,
        Scenario::SlowMfaFatigue,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::ExpiryMorning => "expiry-morning",
            Scenario::IdpOutage => "idp-outage",
            Scenario::MfaReenrolment => "mfa-reenrolment",
            Scenario::ProxyStuffing => "proxy-stuffing",
            Scenario::SlowSpray => "slow-spray",
            Scenario::SlowBruteForce => "slow-brute-force",
            Scenario::SessionHijack => "session-hijack",
            Scenario::SlowMfaFatigue => "slow-mfa-fatigue",
        }
    }

    /// The rules of the default pack that must catch the attack (none for benign floods).
    pub fn expected_rules(self) -> &'static [&'static str] {
        match self {
            Scenario::ExpiryMorning | Scenario::IdpOutage | Scenario::MfaReenrolment => &[],
            Scenario::ProxyStuffing => &["credential-stuffing-tenant", "credential-stuffing-asn"],
            Scenario::SlowSpray => &["password-spray-network"],
            Scenario::SlowBruteForce => &["slow-brute-force-user"],
            Scenario::SessionHijack => &["session-hijack"],
            Scenario::SlowMfaFatigue => &["mfa-fatigue-slow"],
        }
    }
}

/// True for the addresses only attackers use.
pub fn is_attacker_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (o[0], o[1], o[2]) == (203, 0, 113) || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(_) => false,
    }
}

/// An organisation's traffic over `days` days from [`MONDAY_MS`].
#[derive(Clone, Debug)]
pub struct Org {
    pub seed: u64,
    /// At least 300 (the floods and the spray pick their people among them).
    pub users: u32,
    pub days: u32,
    /// `(scenario, day)`: what happens on top of the ordinary days.
    pub scenarios: Vec<(Scenario, u32)>,
}

impl Org {
    /// Every event, in event-time order.
    pub fn generate(&self) -> Vec<Event> {
        let mut rng = Rng::new(self.seed);
        let mut out = Vec::new();
        for day in 0..self.days {
            ordinary_day(&mut rng, self.users, day, &mut out);
        }
        for &(scenario, day) in &self.scenarios {
            let start = MONDAY_MS + i64::from(day) * DAY;
            add_scenario(&mut rng, self.users, scenario, start, &mut out);
        }
        let mut events: Vec<Event> = out
            .into_iter()
            .map(|v| decode_value(v).expect("generated events are valid"))
            .collect();
        events.sort_by_key(|e| e.ts);
        events
    }
}

/// One person of the organisation.
struct Person {
    username: String,
    user: String,
    home_ip: IpAddr,
    home_asn: u32,
    user_agent: &'static str,
    device: String,
    /// Works at the office on weekdays (from the NAT).
    office: bool,
    /// Uses the phone app (sessions may move to cellular).
    mobile: bool,
}

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0",
    "Mozilla/5.0 (Macintosh) Safari/605.1",
    "Mozilla/5.0 (X11; Linux) Firefox/133.0",
    "AcmeApp/5.1 (iPhone; iOS 18.1)",
];

fn person(i: u32) -> Person {
    let isp = (i as usize) % HOME_ASNS.len();
    // Home addresses in shared address space, each ISP its own /16.
    let home_ip = IpAddr::V4(Ipv4Addr::new(
        100,
        64 + isp as u8,
        (i / 200) as u8,
        (i % 200 + 1) as u8,
    ));
    let ua = USER_AGENTS[(i as usize / 7) % USER_AGENTS.len()];
    Person {
        username: format!("user{i}@acme.example"),
        user: format!("u-{i}"),
        home_ip,
        home_asn: HOME_ASNS[isp],
        user_agent: ua,
        device: format!("dev-{i}"),
        office: i % 5 < 2,
        mobile: ua.starts_with("AcmeApp"),
    }
}

/// An event as JSON, with the tenant and the person's identity.
fn ev(ts: i64, kind: &str, p: &Person) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("ts".into(), ts.into());
    m.insert("type".into(), kind.into());
    m.insert("tenant".into(), TENANT.into());
    m.insert("user".into(), p.user.clone().into());
    m.insert("username".into(), p.username.clone().into());
    m.insert("device".into(), p.device.clone().into());
    m.insert("user_agent".into(), p.user_agent.into());
    m
}

fn at(m: &mut serde_json::Map<String, Value>, ip: IpAddr, country: &str, asn: u32) {
    m.insert("ip".into(), ip.to_string().into());
    m.insert("geo".into(), json!({"country": country, "asn": asn}));
}

fn push(out: &mut Vec<Value>, m: serde_json::Map<String, Value>) {
    out.push(Value::Object(m));
}

/// Where a person is at `ts` on `day`: the office NAT on weekdays for office workers.
fn place(p: &Person, weekday: bool) -> (IpAddr, u32) {
    if p.office && weekday {
        (IpAddr::V4(OFFICE_NAT), OFFICE_ASN)
    } else {
        (p.home_ip, p.home_asn)
    }
}

/// A login (with the odd typo), an MFA push (now and then ignored once), a session of token
/// refreshes (a phone's may move to cellular), a logout.
fn ordinary_login(
    rng: &mut Rng,
    p: &Person,
    i: u32,
    start: i64,
    weekday: bool,
    n: u32,
    out: &mut Vec<Value>,
) {
    let (ip, asn) = place(p, weekday);
    let mut t = start;
    let located = |m: &mut serde_json::Map<String, Value>| at(m, ip, "DE", asn);
    match rng.below(1000) {
        // A mistyped password, once or twice.
        0..=19 => {
            for _ in 0..=rng.below(2) {
                let mut m = ev(t, "login.failure", p);
                located(&mut m);
                m.insert("reason".into(), "bad_password".into());
                push(out, m);
                t += 5_000 + rng.below(20_000) as i64;
            }
        }
        // A mistyped username: no account has it.
        20..=22 => {
            let mut m = ev(t, "login.failure", p);
            located(&mut m);
            m.remove("user");
            m.insert("username".into(), format!("usr{i}@acme.example").into());
            m.insert("reason".into(), "unknown_user".into());
            push(out, m);
            t += 10_000;
        }
        _ => {}
    }
    let session = format!("s-{i}-{}-{n}", t / DAY);
    let mut m = ev(t, "mfa.challenge", p);
    located(&mut m);
    m.insert("factor".into(), "push".into());
    push(out, m);
    if rng.below(100) < 4 {
        // The phone was in another room: the push times out, a second one is approved.
        t += 60_000;
        let mut m = ev(t, "mfa.failure", p);
        located(&mut m);
        m.insert("factor".into(), "push".into());
        m.insert("reason".into(), "mfa_timeout".into());
        push(out, m);
        t += 5_000;
        let mut m = ev(t, "mfa.challenge", p);
        located(&mut m);
        m.insert("factor".into(), "push".into());
        push(out, m);
    }
    t += 8_000 + rng.below(10_000) as i64;
    let mut m = ev(t, "mfa.success", p);
    located(&mut m);
    m.insert("factor".into(), "push".into());
    m.insert("session".into(), session.clone().into());
    push(out, m);
    let mut m = ev(t + 500, "login.success", p);
    located(&mut m);
    m.insert("session".into(), session.clone().into());
    push(out, m);
    // Refreshes every ~45 minutes for a few hours.
    let refreshes = 2 + rng.below(6);
    let moves_to_cellular = p.mobile && rng.below(10) == 0;
    for r in 0..refreshes {
        t += 40 * MIN + rng.below(10 * MIN as u64) as i64;
        let mut m = ev(t, "token.refresh", p);
        if moves_to_cellular && r >= refreshes / 2 {
            // Same phone, same country, the carrier's network: not a hijack.
            at(
                &mut m,
                IpAddr::V4(Ipv4Addr::new(100, 80, (i / 250) as u8, (i % 250) as u8)),
                "DE",
                CELLULAR_ASN,
            );
        } else {
            located(&mut m);
        }
        m.insert("session".into(), session.clone().into());
        push(out, m);
    }
    let mut m = ev(t + 5 * MIN, "logout", p);
    located(&mut m);
    m.insert("session".into(), session.into());
    push(out, m);
}

fn ordinary_day(rng: &mut Rng, users: u32, day: u32, out: &mut Vec<Value>) {
    let day_start = MONDAY_MS + i64::from(day) * DAY;
    let weekday = day % 7 < 5;
    for i in 0..users {
        let p = person(i);
        let logins = if weekday {
            1 + u32::from(rng.below(3) == 0)
        } else {
            u32::from(rng.below(5) == 0)
        };
        for n in 0..logins {
            // Mornings 7:00-10:00 for the first login, afternoons or evenings for a second.
            let base = if n == 0 { 7 * HOUR } else { 14 * HOUR };
            let start = day_start + base + rng.below(3 * HOUR as u64) as i64;
            ordinary_login(rng, &p, i, start, weekday, n, out);
        }
    }
}

fn add_scenario(
    rng: &mut Rng,
    users: u32,
    scenario: Scenario,
    day_start: i64,
    out: &mut Vec<Value>,
) {
    match scenario {
        Scenario::ExpiryMorning => {
            // 150 office workers, 8:00-8:30: the old password is refused as expired, they
            // change it and log in, all from the NAT.
            let office: Vec<u32> = (0..users).filter(|&i| person(i).office).take(150).collect();
            for (k, &i) in office.iter().enumerate() {
                let p = person(i);
                let t =
                    day_start + 8 * HOUR + (k as i64 * 30 * MIN) / 150 + rng.below(5_000) as i64;
                let nat = IpAddr::V4(OFFICE_NAT);
                let mut m = ev(t, "login.failure", &p);
                at(&mut m, nat, "DE", OFFICE_ASN);
                m.insert("reason".into(), "expired".into());
                push(out, m);
                let mut m = ev(t + 40_000, "password.change", &p);
                at(&mut m, nat, "DE", OFFICE_ASN);
                push(out, m);
                let mut m = ev(t + 60_000, "login.success", &p);
                at(&mut m, nat, "DE", OFFICE_ASN);
                m.insert("session".into(), format!("s-exp-{i}").into());
                push(out, m);
            }
        }
        Scenario::IdpOutage => {
            // 10:00-10:10: 300 people refused (rate limited or a server error), most retry,
            // then succeed once the provider is back.
            for i in 0..users.min(300) {
                let p = person(i);
                let (ip, asn) = place(&p, true);
                let t0 = day_start + 10 * HOUR + rng.below(10 * MIN as u64) as i64;
                for k in 0..=rng.below(3) as i64 {
                    let mut m = ev(t0 + k * 20_000, "login.failure", &p);
                    at(&mut m, ip, "DE", asn);
                    let reason = if rng.below(2) == 0 {
                        "rate_limited"
                    } else {
                        "server_error"
                    };
                    m.insert("reason".into(), reason.into());
                    push(out, m);
                }
                let mut m = ev(
                    day_start + 10 * HOUR + 11 * MIN + rng.below(5 * MIN as u64) as i64,
                    "login.success",
                    &p,
                );
                at(&mut m, ip, "DE", asn);
                m.insert("session".into(), format!("s-out-{i}").into());
                push(out, m);
            }
        }
        Scenario::MfaReenrolment => {
            // 14:00-15:00: the help desk removes each person's push factor and the person
            // enrols the new phone (one verification push, approved).
            for i in 0..users.min(200) {
                let p = person(i);
                let (ip, asn) = place(&p, true);
                let t = day_start + 14 * HOUR + rng.below(HOUR as u64) as i64;
                for (dt, kind) in [
                    (0, "mfa.remove"),
                    (30_000, "mfa.enroll"),
                    (40_000, "mfa.challenge"),
                    (50_000, "mfa.success"),
                ] {
                    let mut m = ev(t + dt, kind, &p);
                    at(&mut m, ip, "DE", asn);
                    m.insert("factor".into(), "push".into());
                    push(out, m);
                }
            }
        }
        Scenario::ProxyStuffing => {
            // 02:00-02:30: 400 usernames from a list (one in ten is a real account), 200
            // residential proxies in 8 networks, each proxy used for two usernames.
            for k in 0..400u32 {
                let proxy = k / 2;
                let ip = IpAddr::V4(Ipv4Addr::new(
                    198,
                    18 + (proxy % 2) as u8,
                    (proxy * 7 % 250) as u8,
                    (proxy % 250 + 1) as u8,
                ));
                let asn = 64520 + proxy % 8;
                let t =
                    day_start + 2 * HOUR + i64::from(k) * 30 * MIN / 400 + rng.below(3_000) as i64;
                let real = k % 10 == 0;
                let mut m = serde_json::Map::new();
                m.insert("ts".into(), t.into());
                m.insert("type".into(), "login.failure".into());
                m.insert("tenant".into(), TENANT.into());
                let (username, reason) = if real {
                    (
                        format!("user{}@acme.example", (k * 13) % users),
                        "bad_password",
                    )
                } else {
                    (format!("victim{k}@mail.example"), "unknown_user")
                };
                m.insert("username".into(), username.into());
                m.insert("reason".into(), reason.into());
                m.insert(
                    "user_agent".into(),
                    "Mozilla/5.0 (Windows NT 10.0) Chrome/124.0".into(),
                );
                at(&mut m, ip, "US", asn);
                push(out, m);
            }
        }
        Scenario::SlowSpray => {
            // All day: 300 real accounts, one bad password each, 12 or 13 an hour, from 40
            // addresses in three /24s of one hosting network.
            let nets = [(203, 0, 113), (198, 18, 200), (198, 19, 201)];
            for k in 0..300u32 {
                let a = k % 40;
                let (x, y, z) = nets[(a % 3) as usize];
                let ip = IpAddr::V4(Ipv4Addr::new(x, y, z, (10 + a) as u8));
                let t = day_start + i64::from(k) * DAY / 300 + rng.below(60_000) as i64;
                let p = person((k * 7) % users);
                let mut m = serde_json::Map::new();
                m.insert("ts".into(), t.into());
                m.insert("type".into(), "login.failure".into());
                m.insert("tenant".into(), TENANT.into());
                m.insert("username".into(), p.username.into());
                m.insert("user".into(), p.user.into());
                m.insert("reason".into(), "bad_password".into());
                m.insert("user_agent".into(), "python-requests/2.31".into());
                at(&mut m, ip, "NL", 64530);
                push(out, m);
            }
        }
        Scenario::SlowBruteForce => {
            // 09:00-15:00: 36 guesses at one account, one every ten minutes, from 12
            // addresses.
            let p = person(users / 2);
            for k in 0..36i64 {
                let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, (100 + k % 12) as u8));
                let t = day_start + 9 * HOUR + k * 10 * MIN + rng.below(60_000) as i64;
                let mut m = serde_json::Map::new();
                m.insert("ts".into(), t.into());
                m.insert("type".into(), "login.failure".into());
                m.insert("tenant".into(), TENANT.into());
                m.insert("username".into(), p.username.clone().into());
                m.insert("user".into(), p.user.clone().into());
                m.insert("reason".into(), "bad_password".into());
                m.insert(
                    "user_agent".into(),
                    "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0".into(),
                );
                at(&mut m, ip, "RO", 64531);
                push(out, m);
            }
        }
        Scenario::SessionHijack => {
            // 06:00: the victim logs in at home (before work, so the session is apart from
            // the ordinary day's); 06:40 the stolen refresh token is used from a hosting
            // network in Singapore with a script's user agent.
            let p = person(7);
            let session = "s-hijacked-7";
            let t = day_start + 6 * HOUR;
            let mut m = ev(t, "login.success", &p);
            at(&mut m, p.home_ip, "DE", p.home_asn);
            m.insert("session".into(), session.into());
            push(out, m);
            let mut m = ev(t + 15 * MIN, "token.refresh", &p);
            at(&mut m, p.home_ip, "DE", p.home_asn);
            m.insert("session".into(), session.into());
            push(out, m);
            for k in 0..3 {
                let mut m = ev(t + 40 * MIN + k * 15 * MIN, "token.refresh", &p);
                at(
                    &mut m,
                    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 210)),
                    "SG",
                    14061,
                );
                m.insert("user_agent".into(), "python-httpx/0.27".into());
                m.remove("device");
                m.insert("session".into(), session.into());
                push(out, m);
            }
        }
        Scenario::SlowMfaFatigue => {
            // 05:00-06:55: the attacker holds the password and asks for a push every eight
            // minutes; each times out; the fifteenth is approved.
            let p = person(11);
            let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 201));
            let t = day_start + 5 * HOUR;
            for k in 0..14i64 {
                let tk = t + k * 8 * MIN;
                for (dt, kind, reason) in [
                    (0, "mfa.challenge", None),
                    (60_000, "mfa.failure", Some("mfa_timeout")),
                ] {
                    let mut m = ev(tk + dt, kind, &p);
                    at(&mut m, ip, "DE", 64532);
                    m.insert(
                        "user_agent".into(),
                        "Mozilla/5.0 (Windows NT 10.0) Chrome/124.0".into(),
                    );
                    m.remove("device");
                    m.insert("factor".into(), "push".into());
                    if let Some(r) = reason {
                        m.insert("reason".into(), r.into());
                    }
                    push(out, m);
                }
            }
            let tk = t + 14 * 8 * MIN;
            for (dt, kind) in [(0, "mfa.challenge"), (20_000, "mfa.success")] {
                let mut m = ev(tk + dt, kind, &p);
                at(&mut m, ip, "DE", 64532);
                m.insert(
                    "user_agent".into(),
                    "Mozilla/5.0 (Windows NT 10.0) Chrome/124.0".into(),
                );
                m.remove("device");
                m.insert("factor".into(), "push".into());
                push(out, m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_weeks_and_attackers_stay_in_their_ranges() {
        let org = Org {
            seed: 3,
            users: 300,
            days: 2,
            scenarios: Scenario::ATTACKS.iter().map(|&s| (s, 1)).collect(),
        };
        let a = org.generate();
        assert_eq!(a, org.generate());
        assert!(a.windows(2).all(|w| w[0].ts <= w[1].ts));
        let benign = Org {
            scenarios: Vec::new(),
            ..org
        }
        .generate();
        assert!(
            benign
                .iter()
                .all(|e| !e.ip.is_some_and(|ip| is_attacker_ip(&ip)))
        );
        assert!(a.iter().any(|e| e.ip.is_some_and(|ip| is_attacker_ip(&ip))));
    }
}
