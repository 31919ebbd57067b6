//! The calling thread's scheduling: time slice, nice value, CPU.

use std::io;

/// Ask the scheduler for a time slice of `slice` for the calling thread (SCHED_OTHER with
/// `sched_runtime`, honoured by the EEVDF scheduler since Linux 6.12; clamped by the kernel to
/// 0.1–100 ms). A thread with a shorter slice gets an earlier deadline, so when it wakes on a
/// busy CPU it preempts the running task sooner. Keeps the thread's nice value.
pub fn set_thread_slice(slice: std::time::Duration) -> io::Result<()> {
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: getpriority reads the thread's nice value; errno is reset first because -1 is a
    // valid result.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t)
    };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: slice.as_nanos().min(u64::MAX as u128) as u64,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a valid struct sched_attr (size set) that outlives the call; pid 0 is
    // the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the calling thread's nice value (Linux: a thread's own scheduling weight).
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority changes only the scheduling weight of the given thread.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pin the calling thread to one CPU (`sched_setaffinity`).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 = this thread; the set pointer and size describe a live local.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPU the calling thread runs on now.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    (c >= 0).then_some(c as usize)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn own_sched_field(name: &str) -> Option<u64> {
        let text = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split(':').nth(1)?.trim().parse().ok()
    }

    #[test]
    fn thread_slice_applies_to_the_calling_thread_and_keeps_its_nice_value() {
        std::thread::spawn(|| {
            set_thread_slice(std::time::Duration::from_micros(200)).unwrap();
            if let Some(slice) = own_sched_field("se.slice") {
                assert_eq!(slice, 200_000);
            }
            // SAFETY (test): lowers this thread's nice value (no privilege needed).
            assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 5) }, 0);
            // SAFETY (test): reads this thread's nice value.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            assert_eq!(nice, 5);
            // A new slice keeps the nice value.
            set_thread_slice(std::time::Duration::from_micros(300)).unwrap();
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            assert_eq!(nice, 5);
        })
        .join()
        .unwrap();
        // SAFETY (test): reads the main thread's nice value, untouched.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        assert_eq!(nice, 0);
    }
}
