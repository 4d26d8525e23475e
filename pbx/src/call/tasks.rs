//! The engine's two background tasks: the transaction timers and the
//! once-a-second housekeeping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::client_timer_fired;
use super::engine::{Engine, Hooks};
use crate::transaction::timers::{Timer, TICK};

/// Fires due timers every `TICK`; handlers re-arm what must go on.
pub async fn run_timers<H: Hooks>(engine: Arc<Engine<H>>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for timer in engine.timers().due(Instant::now()) {
            match timer {
                Timer::Client { key, interval } => client_timer_fired(&engine, key, interval),
                Timer::G {
                    key,
                    start,
                    interval,
                } => engine.timer_g_fired(key, start, interval),
            }
        }
    }
}

impl<H: Hooks> Engine<H> {
    /// Periodic housekeeping: finished transactions, expired bindings, and
    /// the features' own (`Hooks::every_second`).
    pub async fn sweep_loop(self: Arc<Self>) {
        let mut ticks = 0u64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.tables().sweep(Instant::now());
            ticks += 1;
            H::every_second(&self, ticks);
            if ticks.is_multiple_of(10) {
                // Give memory freed after a burst back to the system (glibc keeps it otherwise).
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                // SAFETY: malloc_trim only releases free heap pages; no pointers are touched.
                unsafe {
                    libc::malloc_trim(0);
                }
                let n = self.location().sweep();
                if n > 0 {
                    tracing::info!(expired = n, "expired bindings removed");
                }
            }
        }
    }
}
