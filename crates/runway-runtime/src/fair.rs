//! CPU fairness between apps: how many guests of one app may compete for
//! the CPU at once.
//!
//! The executor runs its runnable tasks in turn, and a CPU-bound guest runs
//! until the next epoch tick (10 ms) before it yields. Left alone, an app
//! with many runnable guests (endless loops, a wide fan-out of app-to-app
//! calls) would fill the run queue, and every request to any other app would
//! wait behind all of them: a share of the CPU proportional to how many
//! guests an app can start.
//!
//! So each app — the *tenant*: the app of the incoming request, which every
//! app-to-app call it causes inherits through its [`crate::CallBudget`] —
//! has a few **run slots** (`RuntimeConfig::app_cpu_slots`, default: the
//! executor's worker threads). A guest holds one while it is runnable: taken
//! when it is polled, kept across the yields of the epoch ticker (it still
//! wants the CPU), given back as soon as it waits for anything else (I/O, a
//! timer, another app) or ends. When other guests of the same tenant wait
//! for a slot, a guest that yielded at a tick hands its slot to the one that
//! waited longest and queues behind them (round robin in ticks within the
//! app). A guest waiting for a slot costs no CPU and is not in the
//! executor's run queue. Hence at most `app_cpu_slots` guests of one tenant
//! are ever runnable, and a request to another app waits behind at most that
//! many slices of it, however many guests it starts.
//!
//! Waiting for a slot does not stop the clock: a guest's deadline and its
//! client going away still end it (they are checked outside the slot), and a
//! guest still waiting when the runtime interrupts guests ends at once.
//!
//! A guest that yielded at a tick is rescheduled only after the executor has
//! polled for I/O and timers (as `tokio::task::yield_now` does), so guests
//! that are always runnable cannot keep sockets waiting either.
//!
//! Cost per poll of a guest that gets its slot at once: one semaphore
//! `try_acquire` and release, and a few atomic operations.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use crate::invoke::DeadlineExceeded;

/// The run slots of one tenant (one app and the app-to-app calls its
/// requests cause).
#[derive(Debug)]
pub(crate) struct CpuShare {
    slots: Arc<Semaphore>,
    /// Guests of this tenant waiting for a slot now.
    waiting: AtomicU32,
}

impl CpuShare {
    pub(crate) fn new(slots: u32) -> CpuShare {
        CpuShare {
            slots: Arc::new(Semaphore::new(slots.max(1) as usize)),
            waiting: AtomicU32::new(0),
        }
    }
}

/// A guest's wait for a slot, counted in [`CpuShare::waiting`] until it
/// ends (with a slot, or dropped).
struct Waiting {
    share: Arc<CpuShare>,
    acquire: Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>,
}

impl Waiting {
    fn start(share: &Arc<CpuShare>) -> Waiting {
        share.waiting.fetch_add(1, Ordering::AcqRel);
        Waiting {
            share: share.clone(),
            acquire: Box::pin(share.slots.clone().acquire_owned()),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.share.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The waker a guest's run sees. A wake that arrives while the run is being
/// polled (wasmtime wakes the task itself when it yields at an epoch tick)
/// is noted instead of passed on, so that [`Fair`] can reschedule a
/// CPU-bound guest *after* the executor next polls for I/O and timers, like
/// `tokio::task::yield_now`: otherwise guests that are always runnable would
/// keep sockets and timers waiting (tokio checks them only every
/// `event_interval` polls while tasks are runnable).
struct RunWaker {
    state: AtomicU8,
    task: AtomicWaker,
}

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN_WHILE_POLLING: u8 = 2;

impl Wake for RunWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self.state.compare_exchange(
            POLLING,
            WOKEN_WHILE_POLLING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) | Err(WOKEN_WHILE_POLLING) => {}
            Err(_) => self.task.wake(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A guest's run (instantiation and handler) under its tenant's run
    /// slots; see the module docs.
    pub(crate) struct Fair<F> {
        #[pin]
        run: F,
        wake: Arc<RunWaker>,
        waker: Waker,
        share: Arc<CpuShare>,
        slot: Option<OwnedSemaphorePermit>,
        waiting: Option<Waiting>,
        // Set by the store's epoch callback when the guest yields at a
        // tick: it is still runnable.
        yielded: Arc<AtomicBool>,
        // The runtime's "stop every guest" flag.
        interrupted: Arc<AtomicBool>,
    }
}

impl<F> Fair<F> {
    pub(crate) fn new(
        run: F,
        share: Arc<CpuShare>,
        yielded: Arc<AtomicBool>,
        interrupted: Arc<AtomicBool>,
    ) -> Fair<F> {
        let wake = Arc::new(RunWaker {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        Fair {
            run,
            waker: Waker::from(wake.clone()),
            wake,
            share,
            slot: None,
            waiting: None,
            yielded,
            interrupted,
        }
    }
}

impl<F, T> Future for Fair<F>
where
    F: Future<Output = wasmtime::Result<T>>,
{
    type Output = wasmtime::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.slot.is_none() {
            if this.waiting.is_none() {
                match this.share.slots.clone().try_acquire_owned() {
                    Ok(slot) => *this.slot = Some(slot),
                    Err(_) => *this.waiting = Some(Waiting::start(this.share)),
                }
            }
            if let Some(waiting) = this.waiting {
                if this.interrupted.load(Ordering::Relaxed) {
                    // It would only run to the next tick to be stopped there.
                    return Poll::Ready(Err(DeadlineExceeded.into()));
                }
                match waiting.acquire.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    // The semaphore is never closed; run without a slot
                    // rather than fail the guest if it ever were.
                    Poll::Ready(slot) => *this.slot = slot.ok(),
                }
                *this.waiting = None;
                // A slot handed over by a guest that yielded wakes this task
                // ahead of everything else on that thread; run only once the
                // executor has polled for I/O and timers, or a chain of
                // hand-overs would keep them waiting.
                let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
                return Poll::Pending;
            }
        }
        this.yielded.store(false, Ordering::Relaxed);
        this.wake.task.register(cx.waker());
        this.wake.state.store(POLLING, Ordering::Release);
        let polled = this.run.poll(&mut Context::from_waker(this.waker));
        let woken = this.wake.state.swap(IDLE, Ordering::AcqRel) == WOKEN_WHILE_POLLING;
        let runnable = polled.is_pending() && this.yielded.swap(false, Ordering::Relaxed);
        if !runnable || this.share.waiting.load(Ordering::Acquire) > 0 {
            // Waiting for something else, done, or its turn is over: the
            // slot goes to the guest of this tenant that waited longest.
            *this.slot = None;
        }
        if polled.is_pending() && woken {
            if runnable {
                // Back in the run queue once the executor has polled for
                // I/O and timers.
                let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
            } else {
                cx.waker().wake_by_ref();
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A stand-in for a guest: `yields` epoch yields (runnable throughout),
    /// then done; notes its name in `trace` at every poll.
    fn spinner(
        name: char,
        yielded: Arc<AtomicBool>,
        yields: u32,
        trace: Arc<Mutex<String>>,
    ) -> impl Future<Output = wasmtime::Result<()>> {
        let mut left = yields;
        std::future::poll_fn(move |cx| {
            trace.lock().unwrap().push(name);
            if left == 0 {
                return Poll::Ready(Ok(()));
            }
            left -= 1;
            yielded.store(true, Ordering::Relaxed);
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    }

    fn guest(
        name: char,
        yields: u32,
        share: &Arc<CpuShare>,
        interrupted: &Arc<AtomicBool>,
        trace: &Arc<Mutex<String>>,
    ) -> Fair<impl Future<Output = wasmtime::Result<()>> + use<>> {
        let yielded = Arc::new(AtomicBool::new(false));
        let run = spinner(name, yielded.clone(), yields, trace.clone());
        Fair::new(run, share.clone(), yielded, interrupted.clone())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runnable_guests_of_one_tenant_take_turns_at_each_yield() {
        let share = Arc::new(CpuShare::new(1));
        let interrupted = Arc::new(AtomicBool::new(false));
        let trace = Arc::new(Mutex::new(String::new()));
        let a = tokio::spawn(guest('a', 4, &share, &interrupted, &trace));
        let b = tokio::spawn(guest('b', 4, &share, &interrupted, &trace));
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        let trace = trace.lock().unwrap().clone();
        // Once both want the CPU they take turns (without the hand-over:
        // "aaaaabbbbb"); a turn may span two polls, as the one that gets a
        // slot is rescheduled after the executor's next I/O poll.
        assert_eq!(trace.matches('a').count(), 5, "{trace}");
        assert_eq!(trace.matches('b').count(), 5, "{trace}");
        assert!(!trace.contains("aaa") && !trace.contains("bbb"), "{trace}");
        assert_eq!(share.waiting.load(Ordering::Relaxed), 0);
        assert_eq!(share.slots.available_permits(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_guest_that_waits_for_io_gives_its_slot_back() {
        let share = Arc::new(CpuShare::new(1));
        let interrupted = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let yielded = Arc::new(AtomicBool::new(false));
        let run = async move {
            let _ = rx.await;
            Ok(())
        };
        let mut fair = Box::pin(Fair::new(run, share.clone(), yielded, interrupted));
        assert!(futures::poll!(fair.as_mut()).is_pending());
        assert_eq!(share.slots.available_permits(), 1, "kept while waiting");
        tx.send(()).unwrap();
        assert!(futures::poll!(fair.as_mut()).is_ready());
        assert_eq!(share.slots.available_permits(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_guest_waiting_for_a_slot_does_not_run_and_ends_once_interrupted() {
        let share = Arc::new(CpuShare::new(1));
        let interrupted = Arc::new(AtomicBool::new(false));
        let trace = Arc::new(Mutex::new(String::new()));
        let taken = share.slots.clone().try_acquire_owned().unwrap();
        let mut waiter = Box::pin(guest('w', 0, &share, &interrupted, &trace));
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        assert_eq!(share.waiting.load(Ordering::Relaxed), 1);
        interrupted.store(true, Ordering::Relaxed);
        match futures::poll!(waiter.as_mut()) {
            Poll::Ready(Err(e)) => assert!(e.downcast_ref::<DeadlineExceeded>().is_some()),
            other => panic!("expected the interruption, got {other:?}"),
        }
        assert_eq!(trace.lock().unwrap().as_str(), "", "the waiter ran");
        drop(waiter);
        assert_eq!(share.waiting.load(Ordering::Relaxed), 0);
        drop(taken);
        assert_eq!(share.slots.available_permits(), 1);
    }
}
