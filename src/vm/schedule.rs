//! The one worker pool: runs jobs on at most `parallel` threads (one VM
//! each, for the matrix, the stress test and the bench), and reports each
//! result as it ends.

use super::qemu::{boot, BootOptions, BootOutcome};
use std::collections::VecDeque;
use std::sync::{mpsc, Mutex};

/// The default number of VMs at once: the host's cores.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Runs `work` on every job, at most `parallel` at once (0 =
/// [`default_parallelism`]). `on_done(index, &result)` is called on the
/// caller's thread as each job ends, in completion order; the results are
/// returned in job order.
pub fn run_pool<J: Send, R: Send>(
    jobs: Vec<J>,
    parallel: usize,
    work: impl Fn(J) -> R + Sync,
    mut on_done: impl FnMut(usize, &R),
) -> Vec<R> {
    let n = jobs.len();
    let parallel = if parallel == 0 { default_parallelism() } else { parallel }.min(n.max(1));
    let queue: Mutex<VecDeque<(usize, J)>> = Mutex::new(jobs.into_iter().enumerate().collect());
    let (tx, rx) = mpsc::channel::<(usize, R)>();
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    std::thread::scope(|s| {
        for _ in 0..parallel {
            let tx = tx.clone();
            let (queue, work) = (&queue, &work);
            s.spawn(move || loop {
                let Some((i, job)) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else { break };
                if tx.send((i, work(job))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            on_done(i, &r);
            out[i] = Some(r);
        }
    });
    out.into_iter().map(|o| o.expect("every job reports once")).collect()
}

/// Boots every job through [`run_pool`].
pub fn boot_many(jobs: Vec<BootOptions>, parallel: usize, on_done: impl FnMut(usize, &BootOutcome)) -> Vec<BootOutcome> {
    run_pool(jobs, parallel, |job| boot(&job), on_done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::qemu::BootStatus;

    #[test]
    fn every_job_reports_in_order_even_when_qemu_is_missing() {
        let jobs: Vec<BootOptions> = (0..5)
            .map(|i| {
                let mut o = BootOptions::new(format!("/nonexistent/vmlinuz-{i}"), "/nonexistent/initrd");
                o.qemu = "/nonexistent/qemu".into();
                o
            })
            .collect();
        let mut seen = Vec::new();
        let outs = boot_many(jobs, 2, |i, o| {
            assert!(matches!(o.status, BootStatus::QemuFailed(_)));
            seen.push(i);
        });
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        for (i, o) in outs.iter().enumerate() {
            assert!(matches!(&o.status, BootStatus::QemuFailed(m) if m.contains(&format!("vmlinuz-{i}"))), "{:?}", o.status);
        }
        assert!(boot_many(Vec::new(), 0, |_, _| {}).is_empty());
        let squares = run_pool((0..10u64).collect(), 3, |x| x * x, |_, _| {});
        assert_eq!(squares, (0..10u64).map(|x| x * x).collect::<Vec<_>>());
    }
}
