//! The bid handler takes a request's start from `glommio::timer::loop_instant` (runtime
//! patch 6). A deadline is only right if that instant is fresh whenever a task runs: an
//! instant left over from before the shard slept would make every request after an
//! idle spell look late, and turn it into a no-bid.

use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

#[test]
fn the_loop_instant_is_read_again_after_every_sleep() {
    assert_eq!(
        glommio::timer::loop_instant(),
        None,
        "no executor on this thread"
    );
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(|| async {
            for pause in [Duration::from_millis(1), Duration::from_millis(60)] {
                let before = Instant::now();
                glommio::timer::sleep(pause).await;
                let seen = glommio::timer::loop_instant().expect("set by the reactor");
                let now = Instant::now();
                assert!(seen <= now, "never in the future");
                assert!(
                    seen >= before + pause,
                    "read after the {pause:?} sleep, not before it ({:?} early)",
                    (before + pause) - seen
                );
            }
        })
        .expect("executor");
    handle.join().expect("executor thread");
}
