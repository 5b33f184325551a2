"""How many CPU threads tinyllm computes with, chosen in one place: the CPUs this process may run
on, less the ones other processes keep busy — unless the user said how many.

A laptop is never idle. PyTorch starts one OpenMP worker per core, and the workers meet at a
barrier after every operation: with one core busy with something else, the worker that shares it
is descheduled and every operation waits for it. A small model runs ~100 short operations a
step, so it pays that wait ~100 times: measured on a 2-core AMD EPYC, 2 threads beside one
spinning process train at 0.3× their idle speed, 1 thread at 0.7× (docs/benchmarks.md). So:

    available   = the CPUs this process may run on: its affinity (os.sched_getaffinity), capped by
                  a cgroup CPU quota (/sys/fs/cgroup/cpu.max) when there is one
    others      = the cores the other processes kept busy over the last while, measured from
                  /proc/stat less this process's own CPU time
    threads     = available - ⌈others - 0.3⌉, at least 1: a core another process keeps busy 30 %
                  of the time or more is not ours (beside 2 threads of ours a spinning process gets
                  only ~0.67 of a core: it must still count as one)

``--threads N`` (or ``OMP_NUM_THREADS`` in the environment) fixes the number: then it is never
changed. Otherwise a training run looks again every few seconds (``ThreadGovernor``), so that a
competitor that starts or stops during a run moves the number down or back up.

OpenMP's wait policy is left as it is (its workers spin a while before they sleep): measured,
``OMP_WAIT_POLICY=PASSIVE`` doubles the speed beside a busy core (the spinning is what collides)
but costs ~35 % on an idle machine, while fewer threads give more beside a busy core and nothing
idle. PyTorch already runs small operations on one thread (below its grain size). A Python user
who wants the same without tinyllm's choosing sets ``OMP_NUM_THREADS`` before importing torch.

Nothing here imports torch: the command line reads it before torch is loaded.
"""
import math
import os
import time

BUSY_SHARE = 0.3          # a core another process keeps this busy (or more) is not counted as ours
LOOK_EVERY = 3.0          # seconds between two looks at the load during a run


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity, capped by a cgroup (v2 or v1) quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def cgroup_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of this process's cgroup, in CPUs (None: no limit)."""
    try:
        with open(os.path.join(root, "cpu.max")) as f:             # cgroup v2: "max 100000"
            quota, period = f.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:                                                             # cgroup v1
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as f:
            quota = int(f.read())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as f:
            period = int(f.read())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def user_threads(requested: int | None = None, environ=os.environ) -> int | None:
    """The number of threads the user asked for: ``requested`` (--threads), else a whole
    ``OMP_NUM_THREADS`` from the environment; None: tinyllm chooses."""
    if requested is not None:
        return requested
    value = environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def threads_for(available: int, others: float) -> int:
    """``available`` CPUs less those ``others`` (in cores) keep busy: see the module docstring."""
    return max(1, available - max(0, math.ceil(others - BUSY_SHARE)))


class CpuClock:
    """The CPU time the whole machine and this process spent, to tell what others used."""

    def __init__(self):
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last = self.read()

    def read(self):
        """(wall seconds, busy CPU-seconds of the machine, CPU-seconds of this process), or None
        where /proc/stat cannot be read (not Linux)."""
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)    # idle + iowait
        busy = (sum(fields[:8]) - idle) / self.ticks                # user..steal, not guests
        mine = sum(os.times()[:2])                                  # this process, all threads
        return time.monotonic(), busy, mine

    def others(self) -> float | None:
        """The cores other processes kept busy since the last call (None: not measurable)."""
        now = self.read()
        if now is None or self.last is None or now[0] - self.last[0] < 0.05:
            return None
        (t0, busy0, mine0), (t1, busy1, mine1) = self.last, now
        self.last = now
        return max(0.0, ((busy1 - busy0) - (mine1 - mine0)) / (t1 - t0))


class ThreadGovernor:
    """Sets PyTorch's thread count for a run and, unless the user fixed it, moves it with the
    load: ``look()`` between steps (at most every ``LOOK_EVERY`` seconds) measures what other
    processes use and sets ``threads_for(available, others)``."""

    def __init__(self, requested: int | None = None):
        import torch
        self.before = torch.get_num_threads()   # restored when the governor is done
        self.fixed = user_threads(requested)
        self.available = available_cpus()
        self.clock = CpuClock()
        self.others = None                  # cores others used at the last look
        self.threads = self.fixed or threads_for(self.available, self._idle_load())
        self.changes = []                   # (threads, others) at each change
        self._set(self.threads)
        self._next = time.monotonic() + LOOK_EVERY

    def _idle_load(self) -> float:
        """What others use right now, over a short look (0.1 s) before the run starts."""
        time.sleep(0.1)
        others = self.clock.others()
        self.others = others
        return others or 0.0

    def look(self) -> bool:
        """Look at the load again if it is time; True when the thread count changed."""
        if self.fixed is not None or time.monotonic() < self._next:
            return False
        self._next = time.monotonic() + LOOK_EVERY
        others = self.clock.others()
        if others is None:
            return False
        self.others = others
        threads = threads_for(self.available, others)
        if threads == self.threads:
            return False
        self.changes.append((threads, others))
        self._set(threads)
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._set(self.before)

    def _set(self, threads: int) -> None:
        import torch
        self.threads = threads
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


__all__ = ["available_cpus", "cgroup_quota", "user_threads", "threads_for", "ThreadGovernor"]
