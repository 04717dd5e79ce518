//! The CPU time a server process has used, read off `/proc`, so that the
//! report can give a server's CPU per request beside its rate: on a machine
//! whose cores the load generator shares, the rate moves with everything
//! else that runs, while the CPU a request costs the server does not.

use std::path::Path;
use std::time::Duration;

/// The CPU time `pid` has been running on a core, summed over its threads
/// (the first field of each `/proc/PID/task/TID/schedstat`, in
/// nanoseconds); `None` where `/proc` does not tell (not Linux, or the
/// process gone). A thread that exits takes its time with it, which a
/// server's worker threads, alive as long as it is, never do.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    cpu_time_under(&Path::new("/proc").join(pid.to_string()))
}

fn cpu_time_under(process: &Path) -> Option<Duration> {
    let mut nanos: u64 = 0;
    let mut threads = 0;
    for task in std::fs::read_dir(process.join("task")).ok()? {
        let Ok(task) = task else { continue };
        // A thread may exit between the listing and the read.
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else { continue };
        nanos = nanos.saturating_add(parse_schedstat(&text)?);
        threads += 1;
    }
    (threads > 0).then(|| Duration::from_nanos(nanos))
}

/// The time on a core in one `schedstat` line (`RUN_NS WAIT_NS SLICES`).
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// The CPU time per request in microseconds: `None` without a request or
/// a reading.
pub(crate) fn micros_per_request(cpu: Option<Duration>, requests: u64) -> Option<f64> {
    let cpu = cpu?;
    (requests > 0).then(|| cpu.as_secs_f64() * 1e6 / requests as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_lines_parse_and_bad_ones_do_not() {
        assert_eq!(parse_schedstat("116347 0 1\n"), Some(116_347));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 0 1"), None);
    }

    #[test]
    fn this_process_uses_time_and_more_after_work() {
        let pid = std::process::id();
        let before = cpu_time(pid).expect("this process's own CPU time");
        // Spin on this thread until the reading moves: it must.
        let spun = std::time::Instant::now();
        let mut x: u64 = 1;
        while cpu_time(pid).is_some_and(|now| now <= before) && spun.elapsed() < Duration::from_secs(5) {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        assert!(cpu_time(pid).expect("still readable") > before, "{x}");
    }

    #[test]
    fn a_process_that_is_not_there_has_no_time() {
        assert_eq!(cpu_time_under(Path::new("/proc/not-a-process")), None);
    }

    #[test]
    fn per_request_needs_requests_and_a_reading() {
        assert_eq!(micros_per_request(Some(Duration::from_millis(3)), 1_000), Some(3.0));
        assert_eq!(micros_per_request(Some(Duration::from_millis(3)), 0), None);
        assert_eq!(micros_per_request(None, 1_000), None);
    }
}
