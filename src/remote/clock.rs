//! Versions for local writes, process ids and the wall clock.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    time::{SystemTime, UNIX_EPOCH},
};

use super::Version;

/// Issues the versions of local writes: a hybrid logical clock.
///
/// A version is the wall time in milliseconds and a counter. The clock never
/// goes back, and it moves forward to every version it observes, so a write
/// made after a remote change was applied always gets a higher version, even
/// when this host's clock is behind the remote writer's.
#[derive(Debug)]
pub(crate) struct VersionClock {
    origin: u64,
    unix_ms: i64,
    counter: u32,
}

impl VersionClock {
    pub(crate) fn new(origin: u64) -> Self {
        VersionClock {
            origin,
            unix_ms: i64::MIN,
            counter: 0,
        }
    }

    /// Returns a version higher than every version issued or observed so
    /// far.
    pub(crate) fn tick(&mut self, now_ms: i64) -> Version {
        if now_ms > self.unix_ms {
            self.unix_ms = now_ms;
            self.counter = 0;
        } else if let Some(next) = self.counter.checked_add(1) {
            self.counter = next;
        } else {
            // Four billion writes within one millisecond: borrow the next
            // millisecond instead of wrapping the counter.
            self.unix_ms += 1;
            self.counter = 0;
        }
        Version::new(self.unix_ms, self.counter, self.origin)
    }

    /// Moves the clock up to `version`, so that the next tick is higher.
    pub(crate) fn observe(&mut self, version: Version) {
        if (version.unix_ms(), version.counter()) > (self.unix_ms, self.counter) {
            self.unix_ms = version.unix_ms();
            self.counter = version.counter();
        }
    }
}

/// Returns a random 64-bit process id, seeded by the standard library's
/// random hash keys, the process id and the time.
pub(crate) fn random_origin() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_i64(unix_time_ms());
    hasher.finish()
}

/// Returns the current time in milliseconds since the Unix epoch, or 0 when
/// the clock is before it.
pub(crate) fn unix_time_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_follows_wall_clock() {
        let mut clock = VersionClock::new(7);
        assert_eq!(clock.tick(1_000), Version::new(1_000, 0, 7));
        assert_eq!(clock.tick(1_005), Version::new(1_005, 0, 7));
    }

    #[test]
    fn tick_counts_within_millisecond() {
        let mut clock = VersionClock::new(7);
        clock.tick(1_000);
        assert_eq!(clock.tick(1_000), Version::new(1_000, 1, 7));
        assert_eq!(clock.tick(999), Version::new(1_000, 2, 7));
    }

    #[test]
    fn tick_after_observe_is_newer() {
        let mut clock = VersionClock::new(1);
        let remote = Version::new(5_000, 3, 9);
        clock.observe(remote);
        let local = clock.tick(4_000);
        assert!(local > remote, "{local} is not newer than {remote}");
    }

    #[test]
    fn observe_older_keeps_clock() {
        let mut clock = VersionClock::new(1);
        clock.tick(5_000);
        clock.observe(Version::new(4_000, 0, 9));
        assert_eq!(clock.tick(3_000), Version::new(5_000, 1, 1));
    }

    #[test]
    fn origins_differ() {
        assert_ne!(random_origin(), random_origin());
    }
}
