//! Synthetic authentication traffic for benchmarks, load tests and determinism tests:
//! normal logins, MFA and token refreshes from a pool of users, with attacks mixed in
//! (brute force, credential stuffing, password spray, MFA push floods, token reuse, reset
//! floods). Deterministic for a given seed.

pub mod evasive;

use std::net::{IpAddr, Ipv4Addr};

use compact_str::format_compact;

use crate::event::{Event, EventType};

/// A small, fast, seedable generator (xorshift64*): synthetic data needs no more.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Shape of the generated stream.
#[derive(Clone, Debug)]
pub struct Traffic {
    pub seed: u64,
    /// Event time of the first event (ms since the epoch).
    pub start_ms: i64,
    /// Mean gap between events in event time.
    pub mean_gap_ms: i64,
    pub users: u64,
    pub tenants: u64,
    /// One event in this many starts an attack burst.
    pub attack_every: u64,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            seed: 7,
            start_ms: 1_772_438_400_000, // 2026-03-02T08:00:00Z
            mean_gap_ms: 20,
            users: 20_000,
            tenants: 3,
            attack_every: 2_000,
        }
    }
}

impl Traffic {
    /// Generates `n` events in event-time order.
    pub fn generate(&self, n: usize) -> Vec<Event> {
        let mut rng = Rng::new(self.seed);
        let mut out = Vec::with_capacity(n);
        let mut ts = self.start_ms;
        while out.len() < n {
            ts += rng.below(2 * self.mean_gap_ms as u64 + 1) as i64;
            if rng.below(self.attack_every) == 0 {
                self.attack(&mut rng, ts, &mut out);
            } else {
                out.push(self.normal(&mut rng, ts));
            }
        }
        // Attacks spread over the next minutes: sort so the stream is in event-time order.
        out.sort_by_key(|e| e.ts);
        out.truncate(n);
        for (i, e) in out.iter_mut().enumerate() {
            e.id = Some(format_compact!("synth-{}-{i}", self.seed));
            e.fingerprint =
                crate::event::fingerprint(e.id.as_deref().unwrap_or_default().as_bytes());
        }
        out
    }

    fn user_event(&self, rng: &mut Rng, ts: i64, kind: EventType, user: u64) -> Event {
        let mut e = Event::new(ts, kind);
        e.tenant = Some(format_compact!("tenant{}", user % self.tenants));
        e.user = Some(format_compact!("u{user}"));
        e.username = Some(format_compact!("user{user}@example.com"));
        e.ip = Some(client_ip(user, rng.below(3)));
        e.client = Some("portal".into());
        e
    }

    fn normal(&self, rng: &mut Rng, ts: i64) -> Event {
        let user = rng.below(self.users);
        let roll = rng.below(100);
        let kind = match roll {
            0..=49 => EventType::LoginSuccess,
            50..=54 => EventType::LoginFailure,
            55..=64 => EventType::MfaChallenge,
            65..=74 => EventType::MfaSuccess,
            75..=89 => EventType::TokenRefresh,
            _ => EventType::Logout,
        };
        let mut e = self.user_event(rng, ts, kind, user);
        match kind {
            EventType::LoginFailure => e.reason = Some("bad_password".into()),
            EventType::MfaChallenge | EventType::MfaSuccess => e.factor = Some("push".into()),
            _ => {}
        }
        e
    }

    fn attack(&self, rng: &mut Rng, ts: i64, out: &mut Vec<Event>) {
        let victim = rng.below(self.users);
        let attacker = IpAddr::V4(Ipv4Addr::new(203, 0, 113, rng.below(250) as u8 + 1));
        let step = 1_000 + rng.below(5_000) as i64;
        match rng.below(6) {
            0 => {
                // Brute force on one account, sometimes ending in a success.
                for i in 0..12 {
                    let mut e =
                        self.user_event(rng, ts + i * step, EventType::LoginFailure, victim);
                    e.ip = Some(attacker);
                    e.reason = Some("bad_password".into());
                    out.push(e);
                }
                let mut e = self.user_event(rng, ts + 12 * step, EventType::LoginSuccess, victim);
                e.ip = Some(attacker);
                out.push(e);
            }
            1 | 2 => {
                // Credential stuffing / spray: one IP, many usernames.
                for i in 0..20 {
                    let target = rng.below(self.users);
                    let mut e =
                        self.user_event(rng, ts + i * step / 4, EventType::LoginFailure, target);
                    e.ip = Some(attacker);
                    e.reason = Some(
                        if i % 2 == 0 {
                            "bad_password"
                        } else {
                            "unknown_user"
                        }
                        .into(),
                    );
                    out.push(e);
                }
            }
            3 => {
                // MFA push flood, denied, then approved.
                for i in 0..6 {
                    let mut e =
                        self.user_event(rng, ts + i * step / 2, EventType::MfaChallenge, victim);
                    e.factor = Some("push".into());
                    out.push(e);
                    let mut d = self.user_event(
                        rng,
                        ts + i * step / 2 + 500,
                        EventType::MfaFailure,
                        victim,
                    );
                    d.factor = Some("push".into());
                    d.reason = Some("mfa_denied".into());
                    out.push(d);
                }
                let mut e = self.user_event(rng, ts + 4 * step, EventType::MfaSuccess, victim);
                e.factor = Some("push".into());
                out.push(e);
            }
            4 => out.push(self.user_event(rng, ts, EventType::TokenReuse, victim)),
            _ => {
                for i in 0..12 {
                    let target = rng.below(self.users);
                    let mut e =
                        self.user_event(rng, ts + i * 300, EventType::PasswordResetRequest, target);
                    e.ip = Some(attacker);
                    out.push(e);
                }
            }
        }
    }
}

fn client_ip(user: u64, device: u64) -> IpAddr {
    let n = (user * 3 + device) as u32;
    IpAddr::V4(Ipv4Addr::new(198, 51, (n >> 8) as u8, n as u8))
}

/// Events as JSON lines, the form sources deliver.
pub fn to_json_lines(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 256);
    for e in events {
        serde_json::to_writer(&mut out, e).expect("events serialise");
        out.push(b'\n');
    }
    out
}
