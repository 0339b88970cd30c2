#!/usr/bin/env python3
"""Writes demo/events.jsonl: one morning of authentication events for the tenant `acme` (and a
little of `globex`), normal traffic mixed with the attacks listed in demo/README.md.

Deterministic: a fixed random seed and fixed attack times, so the output only changes when this
script does. Standard library only. Run from anywhere: `python3 demo/generate.py`.

Addresses are documentation ranges: users at home come from 192.0.2.0/24 and 2001:db8:1::/48, the
acme office NAT is 198.51.100.10; attackers use 203.0.113.0/24 and the rest of 198.51.100.0/24.
"""

import json
import os
import random
from datetime import datetime, timedelta, timezone

SEED = 20260302
DAY = datetime(2026, 3, 2, tzinfo=timezone.utc)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "events.jsonl")

rnd = random.Random(SEED)
events = []


def at(hh, mm, ss=0):
    return DAY + timedelta(hours=hh, minutes=mm, seconds=ss)


def emit(ts, type_, **fields):
    ev = {"ts": ts, "type": type_}
    for k, v in fields.items():
        if v is not None:
            ev[k] = v
    events.append(ev)
    return ev


# --------------------------------------------------------------------------- places and clients

CITIES = {
    "berlin": {"country": "DE", "city": "Berlin", "lat": 52.52, "lon": 13.405, "accuracy_km": 20},
    "hamburg": {"country": "DE", "city": "Hamburg", "lat": 53.551, "lon": 9.993, "accuracy_km": 20},
    "munich": {"country": "DE", "city": "Munich", "lat": 48.137, "lon": 11.575, "accuracy_km": 20},
    "paris": {"country": "FR", "city": "Paris", "lat": 48.857, "lon": 2.352, "accuracy_km": 20},
    "london": {"country": "GB", "city": "London", "lat": 51.507, "lon": -0.128, "accuracy_km": 20},
    "amsterdam": {"country": "NL", "city": "Amsterdam", "lat": 52.37, "lon": 4.895, "accuracy_km": 20},
    "vienna": {"country": "AT", "city": "Vienna", "lat": 48.208, "lon": 16.373, "accuracy_km": 20},
    "warsaw": {"country": "PL", "city": "Warsaw", "lat": 52.23, "lon": 21.012, "accuracy_km": 20},
    "lisbon": {"country": "PT", "city": "Lisbon", "lat": 38.722, "lon": -9.139, "accuracy_km": 20},
}
ISPS = [(3320, "Deutsche Telekom AG"), (3209, "Vodafone GmbH"), (6805, "Telefonica Germany"),
        (3215, "Orange S.A."), (2856, "British Telecommunications PLC"), (1136, "KPN B.V.")]
OFFICE_IP = "198.51.100.10"           # acme's Berlin office NAT: many users share it
OFFICE_GEO = dict(CITIES["berlin"], asn=64500, as_org="ACME Office Berlin")

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.3 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:135.0) Gecko/20100101 Firefox/135.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:135.0) Gecko/20100101 Firefox/135.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36",
]
MOBILE_UA = "AcmeMobile/4.12.1 (iPhone; iOS 18.3; Scale/3.00)"
CLIENTS = ["acme-portal", "acme-mail", "acme-crm"]

FIRST = ["anna", "ben", "clara", "david", "elif", "felix", "greta", "hannes", "ines", "jonas",
         "katrin", "lukas", "mia", "nils", "olga", "paul", "quirin", "rosa", "stefan", "tina",
         "uwe", "vera", "wolfgang", "xenia", "yusuf", "zoe", "amir", "bianca", "carlos", "dana",
         "emil", "fatima", "georg", "helena", "ivo", "julia", "karl", "laura", "moritz", "nadia"]
LAST = ["schmidt", "meyer", "wagner", "becker", "schulz", "hoffmann", "koch", "richter", "klein",
        "wolf", "neumann", "schwarz", "zimmermann", "braun", "hartmann", "lange", "werner",
        "krause", "lehmann", "koehler", "maier", "koenig", "walter", "peters", "fuchs", "vogel",
        "roth", "beck", "lorenz", "frank", "albrecht", "sommer", "graf", "kraus", "jung", "haas",
        "brandt", "schuster", "berger", "ernst"]


class User:
    n = 0

    def __init__(self, name, tenant="acme", city=None, office=False, mfa=None, domain="example.com"):
        User.n += 1
        self.username = f"{name}@{domain}"
        self.user = f"auth0|{tenant[:2]}{User.n:05d}"
        self.tenant = tenant
        self.office = office
        city = city or rnd.choice(list(CITIES))
        asn, org = rnd.choice(ISPS)
        if office:
            self.ip, self.geo = OFFICE_IP, OFFICE_GEO
        elif rnd.random() < 0.2:
            self.ip = f"2001:db8:1:{User.n:x}::{rnd.randint(2, 250):x}"
            self.geo = dict(CITIES[city], asn=asn, as_org=org)
        else:
            self.ip = f"192.0.2.{10 + User.n}"
            self.geo = dict(CITIES[city], asn=asn, as_org=org)
        self.ua = rnd.choice(BROWSERS)
        self.device = f"dev-{rnd.getrandbits(40):010x}"
        self.phone = f"dev-{rnd.getrandbits(40):010x}"
        self.mfa = mfa if mfa is not None else rnd.choices(
            ["push", "totp", "webauthn", "sms", ""], [45, 25, 12, 6, 12])[0]
        self.sessions = 0

    def where(self):
        return dict(tenant=self.tenant, user=self.user, username=self.username, ip=self.ip,
                    geo=self.geo, user_agent=self.ua, device=self.device)

    def new_session(self):
        self.sessions += 1
        return f"sess-{self.user[-5:]}-{self.sessions}"


def normal_login(u, ts, typo=None, mfa_hiccup=None, client=None, method="password"):
    """A user's ordinary login: optional typo, MFA if enrolled, success. Returns (ts, session)."""
    w = u.where()
    client = client or rnd.choice(CLIENTS)
    if typo:
        emit(ts - timedelta(seconds=rnd.randint(15, 40)), "login.failure", client=client,
             reason="bad_password", **w)
    if u.mfa:
        t = ts + timedelta(seconds=rnd.randint(2, 4))
        if u.mfa in ("push", "sms"):
            emit(t, "mfa.challenge", factor=u.mfa, client=client, **w)
        if mfa_hiccup:
            t += timedelta(seconds=rnd.randint(30, 60))
            emit(t, "mfa.failure", factor=u.mfa, client=client, reason=mfa_hiccup, **w)
            if u.mfa in ("push", "sms"):
                t += timedelta(seconds=2)
                emit(t, "mfa.challenge", factor=u.mfa, client=client, **w)
        t += timedelta(seconds=rnd.randint(5, 25))
        emit(t, "mfa.success", factor=u.mfa, client=client, **w)
        ts = t + timedelta(seconds=1)
    session = u.new_session()
    emit(ts, "login.success", client=client, session=session,
         attrs={"auth_method": method, "email_verified": True}, **w)
    return ts, session


def normal_day(u, start, end_of_demo, refresh_every=(40, 60), logout_after=None, **kw):
    ts, session = normal_login(u, start, **kw)
    client = "acme-portal"
    stop = end_of_demo
    if logout_after:
        stop = min(stop, ts + logout_after)
    t = ts
    while True:
        t += timedelta(minutes=rnd.randint(*refresh_every), seconds=rnd.randint(0, 59))
        if t >= stop:
            break
        emit(t, "token.refresh", client=client, session=session,
             **{k: v for k, v in u.where().items() if k != "username"})
    if logout_after and ts + logout_after < end_of_demo:
        emit(ts + logout_after, "logout", session=session, **u.where())


def rand_start(lo=(7, 0), hi=(9, 45)):
    a = lo[0] * 3600 + lo[1] * 60
    b = hi[0] * 3600 + hi[1] * 60
    # most people arrive between 07:45 and 09:00
    s = int(rnd.triangular(a, b, 8 * 3600 + 15 * 60))
    return DAY + timedelta(seconds=s)


END = at(11, 0)

# --------------------------------------------------------------------------- normal traffic

names = [f"{f}.{l}" for f, l in zip(FIRST, LAST)]
acme = []
for i, name in enumerate(names):
    office = i % 3 == 0          # a third of the staff sit behind the office NAT
    acme.append(User(name, office=office))

# people the attacks below are aimed at (also have their normal morning)
priya = User("priya.natarajan", city="paris", mfa="push")     # brute force target
tom = User("tom.becker", city="hamburg", mfa="")              # brute force then success
marta = User("marta.kowalski", city="warsaw", mfa="webauthn")  # CEO: distributed stuffing, impersonated
lena = User("lena.fischer", city="munich", mfa="push")         # MFA fatigue
omar = User("omar.haddad", city="vienna", mfa="totp")          # MFA code guessing
sofia = User("sofia.rossi", city="lisbon", mfa="push")         # refresh token stolen
ana = User("ana.silva", city="lisbon", mfa="sms")              # account takeover chain
noah = User("noah.miller", city="london", mfa="totp")          # typed a breached password
kim = User("kim.sato", city="berlin", office=True, mfa="webauthn")       # helpdesk agent
admin = User("it.admin", city="berlin", office=True, mfa="webauthn")     # tenant administrator
targets = [priya, tom, marta, lena, omar, sofia, ana, noah, kim, admin]

globex = [User(n, tenant="globex", domain="globex.example", city=rnd.choice(["london", "amsterdam"]))
          for n in ["alex.hunt", "bea.cole", "chris.ward", "dina.shah", "eli.moss", "faye.lin"]]

# a few ordinary hiccups, spread over different users and addresses: password typos (three of
# them behind the office NAT), push prompts that time out, mistyped TOTP codes
office_idx = [i for i, u in enumerate(acme) if u.office]
home_idx = [i for i, u in enumerate(acme) if not u.office]
typo_users = set(rnd.sample(office_idx, 3) + rnd.sample(home_idx, 3))
hiccup_users = {}
for i in rnd.sample([i for i, u in enumerate(acme) if u.mfa in ("push", "sms")], 3):
    hiccup_users[i] = "mfa_timeout"
for i in rnd.sample([i for i, u in enumerate(acme) if u.mfa == "totp"], 2):
    hiccup_users[i] = "bad_code"

for i, u in enumerate(acme):
    logout = timedelta(hours=rnd.randint(2, 3), minutes=rnd.randint(0, 59)) if rnd.random() < 0.35 else None
    normal_day(u, rand_start(), END, logout_after=logout,
               typo=i in typo_users, mfa_hiccup=hiccup_users.get(i))
    if rnd.random() < 0.3:
        # the mobile app later in the morning, same user, same place
        t = rand_start((9, 30), (10, 50))
        w = dict(u.where(), user_agent=MOBILE_UA, device=u.phone)
        emit(t, "token.refresh", client="acme-mobile", session=f"sess-{u.user[-5:]}-m",
             **{k: v for k, v in w.items() if k != "username"})

for u in globex:
    normal_day(u, rand_start(), END, logout_after=timedelta(hours=2, minutes=rnd.randint(0, 59)))

# the targets' own, legitimate mornings
normal_day(priya, at(7, 18, 11), END)
normal_day(tom, at(7, 51, 40), END)
normal_day(marta, at(8, 2, 5), END)
normal_day(lena, at(7, 36, 52), END)
normal_day(omar, at(7, 28, 30), END)
normal_day(kim, at(7, 58, 3), END)
normal_day(admin, at(7, 49, 27), END)
normal_day(ana, at(7, 40, 16), at(8, 45), logout_after=timedelta(minutes=50))

# a user who forgot her password resets it the normal way (no email change, no MFA removal)
forgetful = acme[4]
w = forgetful.where()
emit(at(9, 12, 0), "password.reset_request", client="acme-portal", **w)
emit(at(9, 14, 31), "password.reset", client="acme-portal", **w)
normal_login(forgetful, at(9, 15, 2))

# someone replaces their phone: enrols the new one, removes the old one (no reset, no email change)
phone_swap = acme[10]
emit(at(9, 41, 0), "mfa.enroll", factor="push", **dict(phone_swap.where(), device=phone_swap.phone))
emit(at(9, 42, 12), "mfa.remove", factor="sms", **phone_swap.where())

# a contractor logs in with Google: email_verified false from Google is not our verification flow
contractor = User("ext.rivera", city="amsterdam", mfa="", domain="contractor.example")
normal_login(contractor, at(9, 3, 44), method="google")
events[-1]["attrs"] = {"auth_method": "google", "email_verified": False, "connection": "google-oauth2"}

# the admin turns a protection back on after maintenance and tightens a policy (no alert)
emit(at(7, 55, 10), "admin.security_change", client="acme-admin-console",
     attrs={"setting": "password_min_length", "value": 14, "previous": 12}, **admin.where())

# --------------------------------------------------------------------------- attacks

BOT_UA = "python-requests/2.32.3"
HEADLESS_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"


def attacker(ip, country, city, lat, lon, asn, org):
    return {"ip": ip, "geo": {"country": country, "city": city, "lat": lat, "lon": lon,
                              "accuracy_km": 50, "asn": asn, "as_org": org}}


# A. 07:42 brute force against one account (brute-force-user)
a = attacker("203.0.113.45", "NL", "Amsterdam", 52.37, 4.895, 64496, "Example Hosting B.V.")
t = at(7, 42, 3)
for n in range(12):
    emit(t, "login.failure", tenant="acme", user=priya.user, username=priya.username,
         user_agent=BOT_UA, client="acme-portal", reason="bad_password" if n < 10 else "locked", **a)
    if n == 9:
        emit(t + timedelta(seconds=1), "account.lock", tenant="acme", user=priya.user,
             username=priya.username, reason="bad_password", **a)
    t += timedelta(seconds=rnd.randint(25, 40))

# B. 07:57 a user types a password that is on a breach list (breached-password)
w = noah.where()
emit(at(7, 57, 12), "login.failure", reason="breached_password", client="acme-mail", **w)
emit(at(7, 57, 40), "password.reset_request", client="acme-mail", **w)
emit(at(7, 59, 58), "password.reset", client="acme-mail", **w)
normal_day(noah, at(8, 0, 31), END)

# C. 08:05 credential stuffing from one ip (credential-stuffing-ip, and brute-force-ip at the 50th)
a = attacker("198.51.100.23", "US", "Ashburn", 39.044, -77.487, 64497, "Example Cloud LLC")
t = at(8, 5, 0)
existing = rnd.sample(acme, 4)
leaked = [f"{f}{rnd.randint(1, 99)}@{d}" for f, d in zip(
    rnd.sample(FIRST + LAST, 56), [rnd.choice(["example.com", "example.net", "example.org"]) for _ in range(56)])]
stuffing_list = [u.username for u in existing] + leaked
rnd.shuffle(stuffing_list)
known = {u.username: u for u in existing}
for name in stuffing_list:
    u = known.get(name)
    emit(t, "login.failure", tenant="acme", user=u.user if u else None, username=name,
         user_agent=HEADLESS_UA, client="acme-portal",
         reason="bad_password" if u else "unknown_user", **a)
    t += timedelta(seconds=rnd.randint(8, 12))

# D. 08:20 a stolen refresh token is used, then the real app presents the rotated one (refresh-token-reuse)
normal_day(sofia, at(7, 31, 8), at(8, 15))
sofia_session = f"sess-{sofia.user[-5:]}-1"
a = attacker("203.0.113.210", "SG", "Singapore", 1.352, 103.82, 64498, "Example VPS Pte")
emit(at(8, 20, 44), "token.refresh", tenant="acme", user=sofia.user, client="acme-portal",
     session=sofia_session, user_agent="curl/8.5.0", **a)
emit(at(8, 34, 2), "token.reuse", tenant="acme", user=sofia.user, client="acme-portal",
     session=sofia_session, user_agent=sofia.ua, device=sofia.device, ip=sofia.ip, geo=sofia.geo,
     attrs={"description": "Unsuccessful Refresh Token exchange, reused - refresh token detected"})
emit(at(8, 34, 3), "session.revoke", tenant="acme", user=sofia.user, session=sofia_session,
     ip=sofia.ip, attrs={"reason": "refresh token family revoked after reuse"})
normal_login(sofia, at(8, 35, 30))

# E. 08:35 password spray: one password against 10 real accounts, one every ~5 minutes (password-spray-ip)
a = attacker("203.0.113.66", "BR", "Sao Paulo", -23.55, -46.633, 64499, "Example Residential Proxy")
t = at(8, 35, 20)
for u in rnd.sample([x for x in acme if x not in existing], 10):
    emit(t, "login.failure", tenant="acme", user=u.user, username=u.username,
         user_agent=rnd.choice(BROWSERS), client="acme-portal", reason="bad_password", **a)
    t += timedelta(minutes=rnd.randint(4, 6), seconds=rnd.randint(0, 59))

# F. 08:52 account takeover: reset, login, email change, MFA removal (account-takeover-chain)
a = attacker("203.0.113.150", "VN", "Hanoi", 21.028, 105.834, 64500 + 11, "Example Mobile JSC")
w = dict(tenant="acme", user=ana.user, username=ana.username, user_agent=HEADLESS_UA,
         device="dev-9f00ba7c11", **a)
emit(at(8, 52, 7), "password.reset_request", client="acme-portal", **w)
emit(at(8, 55, 40), "password.reset", client="acme-portal", **w)
emit(at(8, 55, 58), "mfa.challenge", factor="sms", client="acme-portal", **w)
emit(at(8, 56, 31), "mfa.success", factor="sms", client="acme-portal", **w)
emit(at(8, 56, 32), "login.success", client="acme-portal", session="sess-x-ana",
     attrs={"auth_method": "password", "email_verified": True}, **w)
emit(at(8, 58, 3), "email.change", client="acme-portal", session="sess-x-ana",
     attrs={"old_email": ana.username, "new_email": "ana.silva.mail@example.net"}, **w)
emit(at(9, 0, 47), "mfa.remove", factor="sms", client="acme-portal", session="sess-x-ana", **w)
emit(at(9, 1, 5), "mfa.enroll", factor="totp", client="acme-portal", session="sess-x-ana", **w)

# G. 09:05 one account failing from many addresses (distributed-stuffing-user)
t = at(9, 5, 11)
bots = [("198.51.100.150", "US", "Dallas", 32.777, -96.797), ("198.51.100.171", "IN", "Mumbai", 19.076, 72.878),
        ("203.0.113.88", "ID", "Jakarta", -6.208, 106.846), ("198.51.100.133", "MX", "Mexico City", 19.433, -99.133),
        ("203.0.113.19", "TR", "Istanbul", 41.008, 28.978), ("198.51.100.190", "ZA", "Johannesburg", -26.204, 28.047),
        ("203.0.113.231", "AR", "Buenos Aires", -34.604, -58.382)]
for ip, cc, city, lat, lon in bots:
    emit(t, "login.failure", tenant="acme", user=marta.user, username=marta.username,
         user_agent=rnd.choice(BROWSERS), client="acme-portal", reason="bad_password",
         **attacker(ip, cc, city, lat, lon, 64501, "Example Residential ISP"))
    t += timedelta(seconds=rnd.randint(60, 130))

# H. 09:15 an admin session disables brute-force protection (protection-disabled); turned back on at 09:44
emit(at(9, 15, 26), "admin.security_change", client="acme-admin-console",
     attrs={"setting": "brute_force_protection", "enabled": False}, **admin.where())
emit(at(9, 44, 2), "admin.security_change", client="acme-admin-console",
     attrs={"setting": "brute_force_protection", "enabled": True}, **admin.where())

# I. 09:31 brute force that works: 6 wrong passwords, then the right one (brute-force-then-success)
a = attacker("203.0.113.77", "NG", "Lagos", 6.524, 3.379, 64502, "Example Telecom Ltd")
w = dict(tenant="acme", user=tom.user, username=tom.username, user_agent=BOT_UA, client="acme-mail", **a)
t = at(9, 31, 2)
for _ in range(6):
    emit(t, "login.failure", reason="bad_password", **w)
    t += timedelta(seconds=rnd.randint(20, 35))
emit(t, "login.success", session="sess-x-tom", attrs={"auth_method": "password", "email_verified": True}, **w)

# J. 09:50 MFA fatigue: 7 pushes, 4 denied, 2 ignored, then approved (mfa-push-flood,
#    mfa-denied-repeatedly, mfa-fatigue-success)
a = attacker("198.51.100.201", "BR", "Rio de Janeiro", -22.907, -43.173, 64503, "Example Broadband")
w = dict(tenant="acme", user=lena.user, username=lena.username, user_agent=rnd.choice(BROWSERS),
         client="acme-portal", **a)
t = at(9, 50, 14)
for outcome in ["mfa_denied", "mfa_denied", "mfa_timeout", "mfa_denied", "mfa_timeout", "mfa_denied", "ok"]:
    emit(t, "mfa.challenge", factor="push", **w)
    t += timedelta(seconds=rnd.randint(15, 50))
    if outcome == "ok":
        emit(t, "mfa.success", factor="push", **w)
        emit(t + timedelta(seconds=1), "login.success", session="sess-x-lena",
             attrs={"auth_method": "password", "email_verified": True}, **w)
    else:
        emit(t, "mfa.failure", factor="push", reason=outcome, **w)
    t += timedelta(seconds=rnd.randint(5, 20))

# K. 10:10 MFA code guessing after a phished password (mfa-code-guessing)
a = attacker("203.0.113.140", "RO", "Bucharest", 44.426, 26.102, 64504, "Example Datacenter SRL")
w = dict(tenant="acme", user=omar.user, username=omar.username, user_agent=HEADLESS_UA,
         client="acme-portal", **a)
t = at(10, 10, 9)
for _ in range(4):
    emit(t, "mfa.failure", factor="totp", reason="bad_code", **w)
    t += timedelta(seconds=rnd.randint(15, 35))

# L. 10:25 password-reset flood from one address (reset-flood-tenant, reset-flood-ip)
a = attacker("198.51.100.99", "DE", "Frankfurt", 50.11, 8.682, 64505, "Example Server GmbH")
t = at(10, 25, 0)
reset_targets = [u.username for u in rnd.sample(acme, 25)] + [
    f"{n}@example.com" for n in rnd.sample(FIRST, 15)]
rnd.shuffle(reset_targets)
for name in reset_targets:
    emit(t, "password.reset_request", tenant="acme", username=name, user_agent=BOT_UA,
         client="acme-portal", **a)
    t += timedelta(seconds=1)

# M. 10:40 the helpdesk impersonates the CEO (impersonation-started)
emit(at(10, 40, 33), "impersonation.start", tenant="acme", user=marta.user, username=marta.username,
     ip=kim.ip, geo=kim.geo, user_agent=kim.ua, client="acme-admin-console",
     attrs={"actor": kim.user, "actor_username": kim.username, "ticket": None})

# N. 10:47 an account squatting someone's address logs in without ever verifying it (unverified-email-login)
a = attacker("198.51.100.177", "GB", "Manchester", 53.481, -2.243, 64506, "Example VPN Ltd")
squat = dict(tenant="acme", user="auth0|ac99001", username="jane.doe.hr@example.com",
             user_agent=rnd.choice(BROWSERS), client="acme-portal", **a)
emit(at(10, 44, 51), "signup", attrs={"connection": "Username-Password-Authentication"}, **squat)
emit(at(10, 47, 20), "login.success", session="sess-x-squat",
     attrs={"auth_method": "password", "email_verified": False}, **squat)

# --------------------------------------------------------------------------- write

events = [e for e in events if e["ts"] < END + timedelta(minutes=1)]
events.sort(key=lambda e: e["ts"])
with open(OUT, "w") as f:
    for n, e in enumerate(events, 1):
        ev = {"ts": e["ts"].strftime("%Y-%m-%dT%H:%M:%SZ"), "type": e["type"], "id": f"demo-{n:04d}"}
        for k, v in e.items():
            if k not in ("ts", "type"):
                if isinstance(v, dict):
                    v = {a: b for a, b in v.items() if b is not None}
                ev[k] = v
        f.write(json.dumps(ev, ensure_ascii=False) + "\n")
print(f"wrote {len(events)} events to {OUT}")
