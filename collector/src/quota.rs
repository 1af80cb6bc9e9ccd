//! Rate limits per client address: requests and events per second, each a
//! token bucket with a burst. Past either, the request is answered 429 with
//! `Retry-After` (which the runtime honours) and nothing is stored.
//!
//! The address is the connection's peer: behind a reverse proxy it is the
//! proxy's, so rate-limit there. The table of addresses is bounded: past
//! [`MAX_CLIENTS`] it forgets those whose buckets have refilled (looked for
//! at most once per [`SWEEP_EVERY`]: a look walks the whole table under its
//! lock), and until one is, a new address shares one bucket with the other
//! newcomers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The client an address stands for: an IPv4 address, or the /64 of an
/// IPv6 one (one host is given a whole /64), an IPv4-mapped IPv6 address
/// as the IPv4 it maps.
pub fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1_u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
        },
    }
}

/// Addresses remembered at once.
pub const MAX_CLIENTS: usize = 100_000;

/// How often a full table is searched for clients to forget.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A rate and its burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// The default limits: far above what one CLI user sends (a batch per
/// run), and a CI host sharing an address.
pub const DEFAULT_REQUESTS: Rate = Rate {
    per_second: 20.0,
    burst: 200.0,
};
/// See [`DEFAULT_REQUESTS`].
pub const DEFAULT_EVENTS: Rate = Rate {
    per_second: 2_000.0,
    burst: 20_000.0,
};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
    }

    /// Takes `n` tokens, or says how long until there are enough. More
    /// than the burst passes on a full bucket and leaves a debt, so a large
    /// batch waits for the bucket rather than forever.
    fn take(&mut self, n: f64, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        let needed = n.min(rate.burst);
        if self.tokens >= needed {
            self.tokens -= n;
            return Ok(());
        }
        let missing = needed - self.tokens;
        Err(Duration::from_secs_f64(
            (missing / rate.per_second.max(f64::MIN_POSITIVE)).min(3600.0),
        ))
    }
}

#[derive(Debug, Clone, Copy)]
struct Client {
    requests: Bucket,
    events: Bucket,
}

/// The limits and the buckets of every client address.
#[derive(Debug)]
pub struct Quota {
    requests: Rate,
    events: Rate,
    clients: Mutex<Clients>,
}

#[derive(Debug, Default)]
struct Clients {
    by_address: HashMap<IpAddr, Client>,
    /// When a full table was last searched for idle clients.
    swept: Option<Instant>,
}

/// Where newcomers go when the table is full of busy clients.
const OVERFLOW: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

impl Quota {
    pub fn new(requests: Rate, events: Rate) -> Self {
        Self {
            requests,
            events,
            clients: Mutex::new(Clients::default()),
        }
    }

    /// One request from `client`: `Err(retry_after)` when it is over its
    /// rate.
    pub fn request(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        self.with(client, now, |c, quota| {
            c.requests.take(1.0, quota.requests, now)
        })
    }

    /// `events` events from `client`, charged once its batch is valid.
    pub fn events(&self, client: IpAddr, events: usize, now: Instant) -> Result<(), Duration> {
        // An f64 holds every batch size exactly.
        #[allow(clippy::cast_precision_loss)]
        let n = events as f64;
        self.with(client, now, |c, quota| c.events.take(n, quota.events, now))
    }

    fn with<R>(&self, client: IpAddr, now: Instant, f: impl FnOnce(&mut Client, &Self) -> R) -> R {
        let client = client_of(client);
        let mut table = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let Clients { by_address, swept } = &mut *table;
        let newcomer = |clients: &HashMap<IpAddr, Client>| {
            clients.len() >= MAX_CLIENTS && !clients.contains_key(&client)
        };
        if newcomer(by_address)
            && swept.is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY)
        {
            self.forget_idle(by_address, now);
            *swept = Some(now);
        }
        let key = if newcomer(by_address) {
            OVERFLOW
        } else {
            client
        };
        let entry = by_address.entry(key).or_insert_with(|| Client {
            requests: Bucket::full(self.requests, now),
            events: Bucket::full(self.events, now),
        });
        f(entry, self)
    }

    /// Forgets the clients whose buckets are full again: they would start
    /// from a full bucket anyway.
    fn forget_idle(&self, clients: &mut HashMap<IpAddr, Client>, now: Instant) {
        clients.retain(|_, c| {
            c.requests.refill(self.requests, now);
            c.events.refill(self.events, now);
            c.requests.tokens < self.requests.burst || c.events.tokens < self.events.burst
        });
    }
}

/// How much each client holds of something capped per client
/// (connections, body memory): `take` counts up, the guard counts down.
#[derive(Debug)]
pub struct PerClient {
    cap: u64,
    held: Mutex<HashMap<IpAddr, u64>>,
}

/// What one client took; given back when dropped.
#[derive(Debug)]
pub struct Held {
    table: std::sync::Arc<PerClient>,
    client: IpAddr,
    amount: u64,
}

impl PerClient {
    pub fn new(cap: u64) -> Self {
        Self {
            cap: cap.max(1),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// `amount` more for the client of `address`, unless that takes it
    /// past the cap.
    pub fn take(table: &std::sync::Arc<Self>, address: IpAddr, amount: u64) -> Option<Held> {
        let client = client_of(address);
        let mut held = table.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = held.get(&client).copied().unwrap_or(0);
        if mine + amount > table.cap {
            return None;
        }
        held.insert(client, mine + amount);
        Some(Held {
            table: std::sync::Arc::clone(table),
            client,
            amount,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self
            .table
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(mine) = held.get_mut(&self.client) {
            *mine = mine.saturating_sub(self.amount);
            if *mine == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const TWO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn quota() -> Quota {
        Quota::new(
            Rate {
                per_second: 2.0,
                burst: 4.0,
            },
            Rate {
                per_second: 100.0,
                burst: 300.0,
            },
        )
    }

    #[test]
    fn a_burst_then_the_rate_per_client() {
        let quota = quota();
        let now = Instant::now();
        for _ in 0..4 {
            assert_eq!(quota.request(ONE, now), Ok(()));
        }
        let wait = quota.request(ONE, now).expect_err("over the burst");
        assert_eq!(
            wait,
            Duration::from_millis(500),
            "one token at 2 per second"
        );
        assert_eq!(
            quota.request(TWO, now),
            Ok(()),
            "another client is not charged"
        );
        assert_eq!(quota.request(ONE, now + Duration::from_millis(500)), Ok(()));
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("v6");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(client_of(a), client_of(b));
        assert_ne!(client_of(a), client_of(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("mapped");
        assert_eq!(client_of(mapped), ONE);
    }

    #[test]
    fn a_client_holds_up_to_its_cap_and_gives_back_on_drop() {
        let table = std::sync::Arc::new(PerClient::new(2));
        let a = PerClient::take(&table, ONE, 1).expect("one");
        let b = PerClient::take(&table, ONE, 1).expect("two");
        assert!(PerClient::take(&table, ONE, 1).is_none(), "past the cap");
        assert!(PerClient::take(&table, TWO, 2).is_some(), "another client");
        drop((a, b));
        assert!(PerClient::take(&table, ONE, 2).is_some(), "given back");
    }

    #[test]
    fn events_are_charged_by_the_batch() {
        let quota = quota();
        let now = Instant::now();
        assert_eq!(quota.events(ONE, 300, now), Ok(()));
        let wait = quota.events(ONE, 100, now).expect_err("over");
        assert_eq!(wait, Duration::from_secs(1));
        // A batch larger than the burst waits for a full bucket, not
        // forever, and leaves a debt.
        let later = now + Duration::from_secs(10);
        assert_eq!(quota.events(ONE, 1_000, later), Ok(()));
        assert!(
            quota
                .events(ONE, 1, later + Duration::from_secs(6))
                .is_err()
        );
        assert_eq!(quota.events(ONE, 1, later + Duration::from_secs(8)), Ok(()));
    }

    #[test]
    fn a_full_table_is_searched_at_most_once_a_second_and_newcomers_share_meanwhile() {
        let quota = quota();
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        // A full table of busy clients: each spent its whole event burst,
        // refilled 3 s later (300 at 100 per second).
        for n in 0..u32::try_from(MAX_CLIENTS).expect("small") {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            assert_eq!(quota.events(address, 300, base), Ok(()));
        }
        let newcomer = |n: u8| IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, n));
        // Searched, nobody idle yet: the newcomers share one bucket.
        assert_eq!(quota.events(newcomer(1), 300, at(2_900)), Ok(()));
        assert!(quota.events(newcomer(2), 300, at(2_900)).is_err(), "shared");
        // Everyone has refilled, but the table was searched 0.6 s ago.
        assert!(
            quota.events(newcomer(3), 300, at(3_500)).is_err(),
            "not searched"
        );
        // A second on: searched, the idle forgotten, a bucket of its own.
        assert_eq!(quota.events(newcomer(4), 300, at(3_900)), Ok(()));
        assert_eq!(quota.events(newcomer(5), 300, at(3_900)), Ok(()));
    }
}
