"""``manage.py`` with two hooks, for ``bench/fanout.py --profile`` and ``--patch`` only.

    python bench/fanout_support/worker.py db_worker --no-reload ...

Runs the management command exactly as ``manage.py`` would (same settings module, same
argument parsing). Two environment variables change that, and nothing else does:

- ``BENCH_FANOUT_PATCH=FILE``: after ``django.setup()``, FILE is executed (as a module
  named ``bench_fanout_patch``) before the command runs. It is how the benchmark tries a
  change to Signalpost (by monkeypatching) without editing Signalpost; figures measured
  this way are the patch's, not Signalpost's.
- ``BENCH_FANOUT_PROFILE=OUT.pstats``: the command runs inside ``cProfile`` and the stats
  are written to OUT.pstats when it returns (``db_worker`` returns after SIGTERM, once
  its current task is done), timed in CPU seconds (``time.process_time``).
"""

import cProfile
import importlib.util
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def apply_patch(path):
    spec = importlib.util.spec_from_file_location("bench_fanout_patch", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


def main():
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalpost.settings")
    import django
    from django.core.management import execute_from_command_line

    argv = ["manage.py", *sys.argv[1:]]
    patch = os.environ.get("BENCH_FANOUT_PATCH")
    if patch:
        django.setup()
        apply_patch(patch)
    out = os.environ.get("BENCH_FANOUT_PROFILE")
    if not out:
        execute_from_command_line(argv)
        return
    # CPU time, not wall time: what the sender costs, without its waits for the sink.
    profiler = cProfile.Profile(time.process_time)
    try:
        profiler.runcall(execute_from_command_line, argv)
    finally:
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
