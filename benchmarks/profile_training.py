"""Profile minireparam's side of one bench_training.py workload, to see where a step's time goes.

Builds the workload exactly as benchmarks/bench_training.py does (same shapes, weights
and data), runs a few warm-up steps, then profiles ``--steps`` training steps and prints:

1. the time per step without and with the profiler (cProfile slows Python-heavy code
   down more than GEMM-heavy code, so the shares below are estimates). By default the
   profile counts process CPU time (``--timer cpu``), which other processes on a shared
   machine distort least;
2. self time (tottime) grouped by where the code lives: each minireparam module, numpy,
   the C kernels (cffi calls), builtins. cProfile cannot see numpy ufunc calls, so the
   time of ``a * b`` or ``np.tanh(a)`` counts as self time of the function calling it;
3. the top functions by self time and by cumulative time.

With ``--tool pyinstrument`` (if installed) it prints pyinstrument's call tree instead.

Usage:
    python benchmarks/profile_training.py W-LSTM
    python benchmarks/profile_training.py W-OPS --side "minireparam no_grad fwd" --top 15
    python benchmarks/profile_training.py W-ATTN --tool pyinstrument --steps 3
"""
import argparse
import cProfile
import collections
import importlib.util
import io
import os
import pstats
import sys
import time

BENCH_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_training.py")
PROFILED_WORKLOADS = ("W-LSTM", "W-ATTN", "W-VAE", "W-OPS", "W-GRADCHECK")


def load_bench():
    """Import bench_training.py from beside this file, so both scripts build the same workloads."""
    spec = importlib.util.spec_from_file_location("bench_training", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seconds_per_step(step, steps, clock=time.perf_counter):
    began = clock()
    for _ in range(steps):
        step()
    return (clock() - began) / steps


def location_of(function_key):
    """Name the place a profiled function lives: a minireparam module, numpy, the C kernels or a builtin.

    cProfile does not see numpy ufunc calls (``a * b``, ``np.tanh(a)``), so their time
    counts as self time of the Python function that calls them.
    """
    filename, _line, name = function_key
    if filename == "~":  # a builtin: a C function or a method of a C type
        if "_ccore" in name:
            return "C kernels (GEMM, softmax, cross-entropy via cffi)"
        if "numpy" in name:
            return "numpy C functions (not ufuncs)"
        return "Python builtins"
    path = filename.replace(os.sep, "/")
    if "/minireparam/" in path:
        return "minireparam/" + path.rsplit("/minireparam/", 1)[1]
    for package in ("numpy", "torch", "threadpoolctl"):
        if f"/{package}/" in path:
            return f"{package} (Python)"
    return os.path.basename(path)


def print_grouped(stats, steps, top):
    by_location = collections.Counter()
    for key, (_calls, _primitive, self_time, _cumulative, _callers) in stats.stats.items():
        by_location[location_of(key)] += self_time
    total = sum(by_location.values())
    print("\nself time by location (profiled ms per step; share of all profiled time):")
    for location, seconds in by_location.most_common(top):
        print(f"  {1e3 * seconds / steps:9.2f} ms  {100 * seconds / total:5.1f}%  {location}")


def print_top(stats, sort_key, top):
    stream = io.StringIO()
    stats.stream = stream
    stats.sort_stats(sort_key).print_stats(top)
    stats.stream = sys.stdout
    lines = stream.getvalue().splitlines()
    start = next((index for index, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    print(f"\ntop {top} functions by {sort_key} (all {stats.total_calls} calls of the profiled steps):")
    print("\n".join(lines[start:]))


def profile_with_cprofile(step, steps, top, timer):
    # Process CPU time leaves out the time other processes hold the cores (a shared machine).
    profiler = cProfile.Profile(time.process_time) if timer == "cpu" else cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    profiled = (time.perf_counter() - began) / steps
    stats = pstats.Stats(profiler)
    print(f"with cProfile: {1e3 * profiled:.1f} ms of wall time per step, {stats.total_calls / steps:.0f} function calls per step")
    print_grouped(stats, steps, top)
    print_top(stats, "tottime", top)
    print_top(stats, "cumulative", top)


def profile_with_pyinstrument(step, steps):
    try:
        from pyinstrument import Profiler
    except ImportError:
        sys.exit("pyinstrument is not installed: pip install pyinstrument, or use --tool cprofile")
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(steps):
        step()
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=PROFILED_WORKLOADS, help="the bench_training.py workload to profile")
    parser.add_argument("--side", default="minireparam",
                        help="the timed side to profile (default: minireparam; W-OPS has 'minireparam fwd+bwd' "
                             "and 'minireparam no_grad fwd')")
    parser.add_argument("--steps", type=int, default=10, help="profiled steps (default: 10)")
    parser.add_argument("--threads", type=int, default=1, help="threads for BLAS, torch and the C kernels (default: 1)")
    parser.add_argument("--tool", choices=("cprofile", "pyinstrument"), default="cprofile",
                        help="profiler (default: cprofile)")
    parser.add_argument("--timer", choices=("cpu", "wall"), default="cpu",
                        help="cProfile's clock: process CPU time or wall time (default: cpu)")
    parser.add_argument("--top", type=int, default=25, help="rows in each table (default: 25)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and data (default: 0)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's malloc defaults (bench_training.py calls "
                             "minireparam.allocator.reuse_freed_memory(), and so does this script unless told not to)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    bench = load_bench()
    if not args.default_malloc:
        bench.mr.allocator.reuse_freed_memory()
    builder, sizes = bench.BUILDERS[args.workload]
    with bench.thread_count(args.threads):
        workload = builder(sizes["full"], args.seed)
        side = args.side
        if side == "minireparam" and side not in workload.sides:
            side = next(label for label in workload.sides if label.startswith("minireparam"))
        if side not in workload.sides:
            sys.exit(f"{args.workload} has no side {args.side!r}; its sides are {', '.join(workload.sides)}")
        step = workload.sides[side]
        print(f"{workload.name} [{side}]: {workload.description}; {args.threads} thread(s)")

        seconds_per_step(step, 2)  # warm-up: first-call allocations and lazy imports
        clock = time.process_time if args.timer == "cpu" else time.perf_counter
        print(f"without profiler: {1e3 * seconds_per_step(step, args.steps, clock):.1f} ms per step "
              f"({args.timer} time)")
        if args.tool == "pyinstrument":
            profile_with_pyinstrument(step, args.steps)
        else:
            profile_with_cprofile(step, args.steps, args.top, args.timer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
