//! A periodic timer on a `timerfd`, registered with the worker's poll: it wakes the
//! event loop at each open-loop arrival with nanosecond precision, which a poll
//! timeout (whole milliseconds) cannot.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// A monotonic periodic timer.
pub struct Timer {
    fd: OwnedFd,
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

impl Timer {
    /// A disarmed timer.
    pub fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create has no memory-safety preconditions; the result is checked.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd })
    }

    /// Fires first after `first` (at least 1 ns), then every `period`; a zero period
    /// fires once. Re-arming resets the expiry count.
    pub fn arm(&self, first: Duration, period: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: timespec(period),
            it_value: timespec(first.max(Duration::from_nanos(1))),
        };
        // SAFETY: `spec` is a valid itimerspec and the old-value pointer may be null.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops the timer.
    pub fn disarm(&self) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: timespec(Duration::ZERO),
            it_value: timespec(Duration::ZERO),
        };
        // SAFETY: as in `arm`; a zero it_value disarms.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Clears pending expirations (so that the next one is a new readiness edge).
    pub fn clear(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into an 8-byte buffer; EAGAIN is fine.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Source for Timer {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.raw()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.raw()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.raw()).deregister(registry)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use mio::{Events, Poll};

    use super::*;

    #[test]
    fn periodic_timer_wakes_the_poll() {
        let mut poll = Poll::new().unwrap();
        let mut t = Timer::new().unwrap();
        poll.registry()
            .register(&mut t, Token(7), Interest::READABLE)
            .unwrap();
        t.arm(Duration::from_millis(2), Duration::from_millis(2))
            .unwrap();
        let start = Instant::now();
        let mut events = Events::with_capacity(4);
        let mut wakes = 0;
        while wakes < 5 && start.elapsed() < Duration::from_secs(2) {
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            for e in events.iter() {
                assert_eq!(e.token(), Token(7));
                t.clear();
                wakes += 1;
            }
        }
        assert_eq!(wakes, 5);
        assert!(start.elapsed() >= Duration::from_millis(9));
        t.disarm().unwrap();
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        assert!(events.is_empty());
    }
}
