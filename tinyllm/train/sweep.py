"""Sweeps: a few settings × seeds, each an ordinary ``tinyllm train`` run directory under one sweep
directory, then one row per setting — best held-out bits per byte, mean ± sd over the seeds,
and its difference from a baseline setting with a verdict.

The settings are a grid (``vary``: every combination of a few options' values), a list of named
option sets (``settings``), or both (every named set with every combination). A sweep directory:

    DIR/sweep.json                     the sweep (its options, seeds) and each run it started:
                                       the options it was trained with, whether it finished
                                       and its best held-out bits per byte
    DIR/lr=1e-3,batch-size=8/seed-1/   one run directory per setting and seed (a named set's
                                       directory is its name: DIR/rotary/seed-1/)
    DIR/lr=1e-3,batch-size=8/seed-1.log  its output, when runs go several at a time
    DIR/compare.png                    tinyllm compare's pictures of every finished run

Runs go seed by seed (every setting's first seed, then every setting's second), one at a time,
or ``parallel`` at a time as separate processes, each with ``OMP_NUM_THREADS`` = cores //
``parallel``. A sweep is resumable: run again with the same options, it skips the runs
``sweep.json`` lists as finished (their directories are not touched) and continues a run
stopped in the middle from its checkpoint (``tinyllm train --resume-if-exists``). Killed with
SIGKILL, its runs get SIGTERM (Linux) and save a checkpoint; on Ctrl-C they save and stop too.
More seeds or settings extend a sweep; a run that was trained with other options is one error.

A sweep file (TOML; ``read_config``), every key optional:

    out = "sweeps/lr"                   # the sweep's directory
    seeds = 3                           # 3 seeds from ``seed`` (default 1337), or a list: [1, 2, 3]
    baseline = "lr=1e-3"                # the setting the others are measured against (default:
                                        # the first)
    parallel = 1                        # runs at a time
    train = "--data sample --max-time 120"  # every run's options (a string, or a list of them)
    [vary]                              # a grid: every combination
    lr = ["1e-3", "3e-3"]
    [settings]                          # named option sets
    default = ""
    rotary = "--position rotary"

The verdict of a setting against the baseline (``verdict``, the ladder's rule) pairs their
seeds: Δ = bits per byte (setting) − bits per byte (baseline) per seed; "better" when mean(Δ) +
2·sd(Δ)/√n < 0, "worse" when mean(Δ) − 2·sd(Δ)/√n > 0, else "within noise" (one seed: never
better or worse).
"""
import ctypes
import itertools
import math
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TinyLLMError
from ..files import lock, read_json, write_json

STATE = "sweep.json"
PICTURE = "compare.png"
FIRST_SEED = 1337
TRAIN = [sys.executable, "-m", "tinyllm", "train"]          # the command that trains one run
RESERVED = ("--out", "--resume", "--resume-if-exists", "--seed")   # the sweep's, for each run
KEYS = ("out", "seeds", "seed", "baseline", "parallel", "train", "vary", "settings")
USAGE = 2                   # a run's exit status for options ``tinyllm train`` rejects
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,@-]*")       # a setting's name: a directory's


# -- what a sweep is made of --------------------------------------------------------------------

def parse_vary(spec: str) -> tuple[str, list[str]]:
    """'lr=1e-3,3e-3' -> ('lr', ['1e-3', '3e-3']): an option of ``tinyllm train`` (its name
    without the dashes) and the values it takes, as written."""
    name, sep, values = spec.partition("=")
    name = name.strip().lstrip("-")
    values = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name or not values:
        raise TinyLLMError(f"--vary {spec!r}: write NAME=VALUE[,VALUE...], e.g. "
                           "--vary lr=1e-3,3e-3")
    return name, values


def parse_setting(spec: str) -> tuple[str, list[str]]:
    """'rotary=--position rotary' -> ('rotary', ['--position', 'rotary']): a named option set."""
    name, sep, flags = spec.partition("=")
    if not sep or not name.strip():
        raise TinyLLMError(f"--setting {spec!r}: write NAME=OPTIONS, e.g. --setting "
                           "'rotary=--position rotary' (or 'default=' for none)")
    return name.strip(), split_flags(flags, f"--setting {name.strip()}")


def split_flags(value, where: str) -> list[str]:
    """Options as one string (split as a shell does) or a list of strings."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise TinyLLMError(f"{where}: {e} in {value!r}") from None
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) and
                                       not isinstance(v, bool) for v in value):
        return [str(v) for v in value]
    raise TinyLLMError(f"{where} must be options as a string or a list of strings, not "
                       f"{value!r}")


def read_config(path) -> dict:
    """A sweep file (TOML, see the module docstring) as ``Sweep``'s keyword arguments."""
    try:
        import tomllib
    except ImportError:                                           # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise TinyLLMError("a sweep file needs Python 3.11 or later (or pip install "
                               "tomli)") from None
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise TinyLLMError(f"sweep file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise TinyLLMError(f"{path} is not valid TOML: {e}") from None
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise TinyLLMError(f"{path}: unknown key {unknown[0]!r} (a sweep file has "
                           f"{', '.join(KEYS)})")
    config = {}
    if "out" in data:
        config["out"] = Path(_typed(data, "out", str, path))
    if isinstance(data.get("seeds"), list):
        if "seed" in data:
            raise TinyLLMError(f"{path}: give seeds as a list, or as a count from seed: not both")
        config["seeds"] = data["seeds"]
    elif "seeds" in data or "seed" in data:
        config["seeds"] = seed_range(_typed(data, "seeds", int, path, 1),
                                     _typed(data, "seed", int, path, FIRST_SEED))
    for key, kind in (("baseline", str), ("parallel", int)):
        if key in data:
            config[key] = _typed(data, key, kind, path)
    if "train" in data:
        config["train"] = split_flags(data["train"], f"{path}: train")
    for key in ("vary", "settings"):
        if not isinstance(data.get(key, {}), dict):
            raise TinyLLMError(f"{path}: {key} must be a table ([{key}])")
    config["vary"] = {name: _values(values, f"{path}: vary.{name}")
                      for name, values in data.get("vary", {}).items()}
    config["settings"] = {name: split_flags(flags, f"{path}: settings.{name}")
                          for name, flags in data.get("settings", {}).items()}
    return config


def _typed(data: dict, key: str, kind: type, path, default=None):
    value = data.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool):
        what = {str: "a string", int: "a whole number"}[kind]
        raise TinyLLMError(f"{path}: {key} must be {what}, not {value!r}")
    return value


def _values(values, where: str) -> list[str]:
    """A grid option's values: a list of strings or numbers, or one comma-separated string."""
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    if not isinstance(values, list) or not values or any(
            isinstance(v, (bool, dict, list)) for v in values):
        raise TinyLLMError(f"{where} must be a non-empty list of values, e.g. [\"1e-3\", "
                           "\"3e-3\"]")
    return [str(v) for v in values]


def seed_range(count: int, first: int = FIRST_SEED) -> list[int]:
    """``count`` seeds from ``first``."""
    if count < 1:
        raise TinyLLMError(f"--seeds must be 1 or more, got {count}")
    return list(range(first, first + count))


# -- the verdict and the table ------------------------------------------------------------------

def verdict(deltas: list[float]) -> dict:
    """{'delta': mean, 'delta_sd': sd, 'paired': n, 'verdict': 'better' | 'worse' | 'within
    noise'} of differences in bits per byte (setting − baseline, paired by seed): better or
    worse when the mean lies more than two standard errors from 0 (one difference: neither)."""
    mean, sd = statistics.mean(deltas), _sd(deltas)
    margin = 2 * sd / math.sqrt(len(deltas)) if len(deltas) > 1 else math.inf
    return {"delta": mean, "delta_sd": sd, "paired": len(deltas),
            "verdict": "better" if mean + margin < 0 else
                       "worse" if mean - margin > 0 else "within noise"}


def _sd(values) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def summarize(results: dict, baseline: str) -> list[dict]:
    """One row per setting of ``results`` ({setting: {seed: bits per byte}}, in order): setting,
    runs, bpb and bpb_sd (mean and sd over the seeds; None with no run), baseline (bool), and
    for the others ``verdict``'s fields against ``baseline``'s same seeds."""
    base = results.get(baseline, {})
    rows = []
    for label, by_seed in results.items():
        values = list(by_seed.values())
        row = {"setting": label, "runs": len(values), "baseline": label == baseline,
               "bpb": statistics.mean(values) if values else None, "bpb_sd": _sd(values)}
        deltas = [bpb - base[seed] for seed, bpb in by_seed.items() if seed in base]
        if label != baseline and deltas:
            row.update(verdict(deltas))
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """``summarize``'s rows as an aligned text table, best bits per byte first."""
    header = ["setting", "runs", "best bits/byte (mean ± sd)", "Δ vs baseline (± sd)", "verdict"]
    body = []
    for r in sorted(rows, key=lambda r: math.inf if r["bpb"] is None else r["bpb"]):
        runs = f"{r['runs']}" + (f"/{r['of']}" if r.get("of", r["runs"]) != r["runs"] else "")
        bpb = "-" if r["bpb"] is None else f"{r['bpb']:.4f}{_pm(r['bpb_sd'])}"
        if r["baseline"]:
            delta, said = "baseline", ""
        elif "delta" in r:
            delta, said = f"{r['delta']:+.4f}{_pm(r['delta_sd'])}", r["verdict"]
        else:
            delta, said = "-", "no finished run" if r["bpb"] is None else "no paired seed"
        body.append([r["setting"], runs, bpb, delta, said])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i in (0, 4) else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
             for line in [header, *body]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _pm(sd: float) -> str:
    return "" if math.isnan(sd) else f" ± {sd:.4f}"


# -- the sweep ----------------------------------------------------------------------------------

@dataclass
class Run:
    """One run of a sweep: its setting, seed and directory, and the options it trains with."""
    label: str
    seed: int
    dir: Path
    options: list = field(repr=False)        # train options and the setting's, not the seed's

    @property
    def key(self) -> str:
        return f"{self.label}/seed-{self.seed}"

    @property
    def argv(self) -> list[str]:
        """The ``tinyllm train`` arguments that make this run, or continue it."""
        return [*self.options, "--seed", str(self.seed), "--out", str(self.dir),
                "--resume-if-exists"]

    @property
    def spec(self) -> str:
        """``tinyllm compare``'s LABEL=DIR of this run (its label without '=', which would end
        it: 'lr 1e-3, batch-size 8')."""
        return f"{self.label.replace('=', ' ').replace(',', ', ')}={self.dir}"

    @property
    def log(self) -> Path:
        return self.dir.with_name(f"{self.dir.name}.log")


@dataclass
class Sweep:
    """``settings`` (named option sets) and/or a grid (``vary``: option -> values, every
    combination) × ``seeds``, each trained with ``train`` (options of ``tinyllm train``) and its
    own options into ``out``/SETTING/seed-N; ``baseline`` names the setting the others are
    measured against (default: the first)."""
    out: Path
    vary: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    seeds: list = field(default_factory=lambda: [FIRST_SEED])
    train: list = field(default_factory=list)
    baseline: str | None = None

    def __post_init__(self):
        self.out = Path(self.out)
        self.vary, self.settings = dict(self.vary), dict(self.settings)
        if not self.seeds or len(set(self.seeds)) < len(self.seeds) or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise TinyLLMError(f"seeds must be different whole numbers, not {self.seeds!r}")
        for where, options in [("the training options", self.train), *(
                (f"setting {name}", flags) for name, flags in self.settings.items())]:
            for flag in options:
                if flag.split("=")[0] in RESERVED:
                    raise TinyLLMError(f"{flag.split('=')[0]} is the sweep's to set for each "
                                       f"run: leave it out of {where}")
        for name in self.vary:
            if _flag(name) in (a.split("=")[0] for a in self.train):
                raise TinyLLMError(f"{_flag(name)} is both varied and in the training options: "
                                   "give it once")
        labels = list(self.options())
        for label in labels:
            if not _NAME.fullmatch(label):
                raise TinyLLMError(f"setting {label!r} cannot name a directory: use letters, "
                                   "digits and . _ + = , @ - only")
        if self.baseline is not None and self.baseline not in labels:
            raise TinyLLMError(f"baseline {self.baseline!r} is none of the settings: "
                               f"{', '.join(labels)}")

    def options(self) -> dict[str, list[str]]:
        """{setting: its options}, every named set with every grid combination, in order:
        {'rotary,lr=1e-3': ['--position', 'rotary', '--lr', '1e-3'], ...} (neither: one
        setting, 'default', with none)."""
        named = list(self.settings.items()) or [("", [])]
        grid = [(",".join(f"{k}={v}" for k, v in zip(self.vary, values)),
                 [a for k, v in zip(self.vary, values) for a in (_flag(k), v)])
                for values in itertools.product(*self.vary.values())]
        return {",".join(filter(None, (n, g))) or "default": [*flags, *more]
                for (n, flags), (g, more) in itertools.product(named, grid)}

    @property
    def baseline_label(self) -> str:
        return self.baseline or next(iter(self.options()))

    def runs(self) -> list[Run]:
        """Every setting × seed, seed by seed (every setting's first seed first)."""
        return [Run(label, seed, self.out / label / f"seed-{seed}", [*self.train, *options])
                for seed in self.seeds for label, options in self.options().items()]

    # -- its state on disk ---------------------------------------------------------------------
    def state(self) -> dict:
        """{run key: {'options', 'finished', 'best_bpb'}} of the runs of this sweep started so
        far; a run trained with other options than this sweep gives it is one error."""
        path = self.out / STATE
        started = read_json(path, "sweep state file").get("runs", {}) if path.is_file() else {}
        for run in self.runs():
            before = started.get(run.key, {}).get("options", run.options)
            if before != run.options:
                was, now = _differ(before, run.options)
                raise TinyLLMError(
                    f"{self.out} holds another sweep: its run {run.key} was trained with "
                    f"'{was}' where this one gives '{now}': give the same options to continue "
                    "it, or another --out")
        return started

    def finished(self) -> dict:
        """{run key: its entry} of this sweep's finished runs."""
        keys = {run.key for run in self.runs()}
        return {k: v for k, v in self.state().items() if k in keys and v.get("finished")}

    def _record(self, state: dict, run: Run, finished: bool = False) -> None:
        from .compare import read_run          # PyTorch: only once a run is finished
        best = None
        if finished:
            try:
                best = read_run(run.spec)["best_bpb"]
            except TinyLLMError:             # never evaluated on held-out text: no bits per byte
                pass
        state[run.key] = {"options": run.options, "finished": finished, "best_bpb": best}
        plan = {"settings": self.options(), "seeds": self.seeds, "train": self.train,
                "baseline": self.baseline_label}
        write_json(self.out / STATE, {**plan, "runs": state})

    # -- running it ----------------------------------------------------------------------------
    def run(self, parallel: int = 1, command=None, on_event=None) -> list[tuple[Run, str]]:
        """Train the runs not finished yet, ``parallel`` at a time, each a process: ``command``
        + ``Run.argv`` (default ``TRAIN``: ``python -m tinyllm train``). ``on_event(event, run)``
        hears 'start', 'done', 'failed' and 'stopped'. One run at a time shares this process's
        output; several write theirs to ``Run.log``, with the threads split. Returns the runs
        that failed, with why: the others go on (a diverged setting is a result), except when a
        run rejects its options (exit status 2), which stops the sweep. Ctrl-C (or SIGTERM to a
        run) stops every run at its next step, saved, and raises KeyboardInterrupt (or a
        ``TinyLLMError``): the same sweep run again continues."""
        if parallel < 1:
            raise TinyLLMError(f"--parallel must be 1 or more, got {parallel}")
        command = list(command or TRAIN)
        on_event = on_event or (lambda event, run: None)
        self.out.mkdir(parents=True, exist_ok=True)
        with lock(self.out, "sweep"):
            state = self.state()
            todo = [r for r in self.runs() if not state.get(r.key, {}).get("finished")]
            running, failed, stopped = {}, [], None
            try:
                while (todo and stopped is None) or running:
                    while todo and len(running) < parallel and stopped is None:
                        run = todo.pop(0)
                        self._record(state, run)
                        running[self._start(run, command, parallel)] = run
                        on_event("start", run)
                    time.sleep(0.05)
                    for process in [p for p in running if p.poll() is not None]:
                        run, code = running.pop(process), process.returncode
                        if code == 0:
                            self._record(state, run, finished=True)
                            on_event("done", run)
                            continue
                        signalled = code < 0 or code > 128
                        failed.append((run, _why(run, code, parallel)))
                        on_event("stopped" if signalled else "failed", run)
                        if code == USAGE or signalled:         # bad options, or stopped
                            stopped = stopped or failed[-1]
                            _stop(running)
            except KeyboardInterrupt:
                _stop(running)
                raise
        if stopped is not None:
            run, why = stopped
            then = "fix its options and run it again" if why.startswith("failed") else \
                "run the same command to continue it"
            raise TinyLLMError(f"run {run.key} {why}; the sweep stopped: {then}")
        return failed

    def _start(self, run: Run, command: list, parallel: int) -> subprocess.Popen:
        env, output = None, None
        argv = [*command, *run.argv]
        if parallel > 1:
            from .cpu import available_cpus
            threads = str(max(1, available_cpus() // parallel))
            env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
            run.log.parent.mkdir(parents=True, exist_ok=True)
            output = open(run.log, "a", encoding="utf-8")
            argv += [] if "--quiet" in argv else ["--quiet"]
        try:
            return subprocess.Popen(argv, env=env, stdout=output, stderr=output,
                                    stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        finally:
            if output is not None:
                output.close()

    def table(self) -> list[dict]:
        """``summarize``'s rows of the finished runs' best held-out bits per byte, one per
        setting (each with ``of``: its runs in the sweep)."""
        done = self.finished()
        results = {label: {} for label in self.options()}
        for run in self.runs():
            if run.key in done and done[run.key]["best_bpb"] is not None:
                results[run.label][run.seed] = done[run.key]["best_bpb"]
        return [{**row, "of": len(self.seeds)}
                for row in summarize(results, self.baseline_label)]

    def compare_specs(self) -> list[str]:
        """``tinyllm compare``'s LABEL=DIR of every finished run (a setting's seeds share a
        label, and so a colour)."""
        done = self.finished()
        return [run.spec for run in self.runs() if run.key in done]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _differ(before: list, now: list) -> tuple[str, str]:
    """The options (each a flag with its values) in one list and not the other, both ways."""
    def grouped(options):
        groups = []
        for a in options:
            if a.startswith("-") or not groups:
                groups.append([a])
            else:
                groups[-1].append(a)
        return [shlex.join(g) for g in groups]
    a, b = grouped(before), grouped(now)
    return (" ".join(g for g in a if g not in b) or "(nothing more)",
            " ".join(g for g in b if g not in a) or "(nothing more)")


def _why(run: Run, code: int, parallel: int) -> str:
    """'failed (exit status 1: LAST LINE OF ITS LOG)' or 'was stopped (SIGTERM)'."""
    if code < 0 or code > 128:
        number = -code if code < 0 else code - 128
        try:
            return f"was stopped ({signal.Signals(number).name})"
        except ValueError:
            return f"was stopped (signal {number})"
    last = ""
    if parallel > 1 and run.log.is_file():
        lines = [line.strip() for line in run.log.read_text("utf-8", "replace").splitlines()
                 if line.strip()]
        said = [line for line in lines if "error" in line.lower()] or lines
        last = f": {said[-1]}" if said else ""
    return f"failed (exit status {code}{last})" + (f"; its output: {run.log}"
                                                  if parallel > 1 else "")


def _stop(running: dict) -> None:
    """SIGTERM to every run still going (each saves a checkpoint and stops); wait for them."""
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in running:
        process.wait()


def _die_with_parent() -> None:
    """In a run's process (Linux): SIGTERM when the sweep dies, even by SIGKILL, so that the run
    saves and stops rather than going on alone."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)            # PR_SET_PDEATHSIG


__all__ = ["Sweep", "Run", "FIRST_SEED", "parse_vary", "parse_setting", "split_flags", "read_config",
           "seed_range", "verdict", "summarize", "format_table", "STATE", "PICTURE", "TRAIN"]
