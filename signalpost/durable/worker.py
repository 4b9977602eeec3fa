"""The task worker loop: claims due tasks in batches, runs them, records outcomes per batch.

It runs over django-tasks-db's table (``DBTaskResult``): what is queued, by
``task.enqueue`` or ``durable.writes.task_insert``, is unchanged; only the
worker's side differs from django-tasks-db's own ``Worker``, which claims one
task per transaction and writes each outcome on its own (measured in
docs/durable.md: 69% of a no-op task's cost). Here:

1. one transaction claims up to ``size`` due tasks (``SELECT ... FOR UPDATE SKIP
   LOCKED`` in priority, then ``run_after``, then enqueue order; on SQLite the
   transaction is exclusive) and marks them running with this worker's id, by one
   UPDATE (one per distinct earlier ``worker_ids``, almost always one);
2. the tasks run one after another in this process; durable calls of a
   ``batch=True`` receiver run together, in one call, and so do the calls of a
   plain task that has a batch form (``durable.batches``);
3. the durable calls those tasks queued (a form task's confirmation email) are
   claimed by id in one more transaction and run in the same batch
   (``_claim_follow_ups``);
4. one UPDATE records the successes of the batch, and one (``CASE`` per row) the
   failures, if any. A durable call's failure is also recorded at once by its
   retry (``durable_call_failed``), in the transaction that queues the retry.

A worker killed mid-batch records nothing of that batch: its tasks stay
running until its heartbeat is a lease old, then any live worker puts them back
(``orphaned_tasks_requeue``); the durable calls among them run again with the
same idempotency key. SIGTERM finishes the running task, records the batch,
puts the tasks not started back in the queue, and exits.

The batch size adapts: each batch is sized to about ``target_seconds`` of CPU
from the last batches' CPU per task, and at most ``max_wall_seconds`` by the clock,
between 1 and ``max_size`` (``BatchSize``).
"""

import functools
import json
import logging
import signal
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from django.db import OperationalError, close_old_connections, router
from django.db.models import Case, Q, Value, When
from django.tasks import Task, TaskContext, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django_tasks_db.backend import TaskResult
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import (
    exclusive_transaction,
    is_locked_database_exception,
)

from signalpost.durable.batches import (
    TASK_BATCH_RUNNERS,
    TaskBatchRunner,
    durable_batches_run,
    durable_batches_split,
    task_batch_run,
)
from signalpost.durable.decorators import only_if_answers_kept
from signalpost.durable.payload import payload_prefetch
from signalpost.durable.services import durable_calls_collect
from signalpost.durable.writes import task_result_build
from signalpost.planner import planner_without

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What running one claimed task came to, to be recorded with its batch."""

    row: DBTaskResult[Any, Any]
    error: BaseException | None = None
    return_value: Any = None
    task_result: TaskResult[..., Any] | None = None


@dataclass
class BatchSize:
    """How many tasks to claim next: about ``target_seconds`` of this process's CPU, by
    recent tasks, and no more than ``max_wall_seconds`` of waiting (a slow relay, a sleep).

    Sized by CPU rather than wall time: on a loaded machine (the web server on the
    same cores) every task takes longer by the clock, and batches sized by the clock
    shrank to a few tasks, each paying the batch's claim, reads and record alone.
    """

    max_size: int
    target_seconds: float = 0.5
    max_wall_seconds: float = 2.0
    cpu_per_task: float = 0.0
    wall_per_task: float = 0.0
    samples: list[float] = field(default_factory=list)

    def next(self) -> int:
        if self.wall_per_task <= 0:
            return min(self.max_size, 10)
        size = self.max_size
        if self.cpu_per_task > 0:
            size = min(size, int(self.target_seconds / self.cpu_per_task))
        size = min(size, int(self.max_wall_seconds / self.wall_per_task))
        return max(1, size)

    def observe(self, *, tasks: int, seconds: float, cpu_seconds: float | None = None) -> None:
        """Take a batch of ``tasks`` that took ``seconds`` by the clock and ``cpu_seconds``
        of this process's CPU (unknown: the clock's)."""
        if not tasks:
            return
        cpu = seconds if cpu_seconds is None else cpu_seconds
        # Exponential averages: a slow batch shrinks the next ones quickly.
        self.cpu_per_task = _averaged(self.cpu_per_task, cpu / tasks)
        self.wall_per_task = _averaged(self.wall_per_task, seconds / tasks)


def _averaged(average: float, sample: float) -> float:
    return sample if average <= 0 else 0.5 * average + 0.5 * sample


class BatchWorker:
    """Runs tasks of ``queue_names`` (``"*"``: every queue but ``excluded_queue_names``)."""

    def __init__(
        self,
        *,
        worker_id: str,
        queue_names: list[str],
        excluded_queue_names: list[str],
        backend_name: str,
        interval: float,
        max_batch_size: int,
        exit_when_idle: bool,
        max_tasks: int | None,
    ) -> None:
        self.worker_id = worker_id
        self.queue_names = queue_names
        self.excluded_queue_names = excluded_queue_names
        self.backend_name = backend_name
        self.interval = interval
        self.batch_size = BatchSize(max_size=max_batch_size)
        self.exit_when_idle = exit_when_idle
        self.max_tasks = max_tasks
        self.tasks_run = 0
        self.running = True
        self.running_task = False
        self._tasks: dict[tuple[Any, ...], Task[..., Any]] = {}

    # Signals: the first SIGTERM/SIGINT finishes the running task, the second exits now.
    def configure_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            signal.signal(sig, self.shutdown)

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        if not self.running:
            logger.warning("Received %s again: exiting now", signal.strsignal(signum))
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_DFL)
            sys.exit(1)
        logger.warning(
            "Received %s - shutting down gracefully: finishing the running task, then exiting",
            signal.strsignal(signum),
        )
        self.running = False
        if not self.running_task:
            sys.exit(0)

    def run(self) -> None:
        logger.info("Worker %s starts on queues %s", self.worker_id, ",".join(self.queue_names))
        while self.running:
            close_old_connections()
            size = self.batch_size.next()
            if self.max_tasks is not None:
                size = min(size, self.max_tasks - self.tasks_run)
            rows = self.claim(size)
            if rows:
                started, cpu_started = time.monotonic(), time.process_time()
                ran = self.run_batch(rows)
                self.batch_size.observe(
                    tasks=ran,
                    seconds=time.monotonic() - started,
                    cpu_seconds=time.process_time() - cpu_started,
                )
            elif rows is not None and self.exit_when_idle:
                return
            if self.max_tasks is not None and self.tasks_run >= self.max_tasks:
                return
            if self.running and not rows:
                time.sleep(self.interval)

    def _due(self) -> Any:
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if "*" not in self.queue_names:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        if self.excluded_queue_names:
            tasks = tasks.exclude(queue_name__in=self.excluded_queue_names)
        return tasks

    def claim(
        self, size: int, *, ids: list[Any] | None = None
    ) -> list[DBTaskResult[Any, Any]] | None:
        """Claim up to ``size`` due tasks (of ``ids`` only, when given) in one transaction;
        ``None`` if the database was locked (SQLite), to try again."""
        # Without statistics (a table filled fast, before autovacuum analyzes it) the
        # planner read every row of the queue by the backend and queue indexes and
        # sorted them: 20-24 ms per claim at 78,000 rows, growing with the table. Due
        # tasks go along the ordering index (its order, no sort: 0.3-2 ms); ids by the
        # primary key, then sorted (0.6 ms at 78,000 rows; a small queue may go along
        # the ordering index instead, which costs as little there).
        due = self._due()
        steer: tuple[str, ...] = ("enable_bitmapscan", "enable_sort")
        if ids is not None:
            due, steer = due.filter(id__in=ids), ("enable_bitmapscan",)
        try:
            with exclusive_transaction(due.db):
                # Meta.ordering: priority (high first), run_after, enqueued_at.
                with planner_without(*steer, using=due.db):
                    rows = list(due.select_for_update(skip_locked=True)[:size])
                if not rows:
                    return rows
                now = timezone.now()
                by_history: dict[tuple[str, ...], list[Any]] = defaultdict(list)
                for row in rows:
                    by_history[tuple(row.worker_ids)].append(row.id)
                for history, ids in by_history.items():
                    DBTaskResult.objects.filter(id__in=ids).update(
                        status=TaskResultStatus.RUNNING,
                        started_at=now,
                        worker_ids=[*history, self.worker_id],
                    )
                for row in rows:
                    row.status = TaskResultStatus.RUNNING
                    row.started_at = now
                    row.worker_ids = [*row.worker_ids, self.worker_id]
                return rows
        except OperationalError as error:
            if is_locked_database_exception(error):
                return None
            raise

    def run_batch(self, rows: list[DBTaskResult[Any, Any]]) -> int:
        """Run the claimed ``rows``, record their outcomes; return how many ran.

        Rows not started when SIGTERM came go back to the queue.
        """
        outcomes: list[Outcome] = []
        not_started = {row.id for row in rows}
        try:
            with only_if_answers_kept():
                with durable_calls_collect() as queued:
                    self._run_rows(rows, outcomes, not_started)
                follow_ups = self._claim_follow_ups(queued, claimed=len(rows))
                if follow_ups:
                    rows = [*rows, *follow_ups]
                    not_started.update(row.id for row in follow_ups)
                    self._run_rows(follow_ups, outcomes, not_started)
        finally:
            payload_prefetch([])
            self.tasks_run += len(outcomes)
            self.record(outcomes)
            if not_started and not self.running:
                self.release([row for row in rows if row.id in not_started])
        return len(outcomes)

    def _claim_follow_ups(self, queued: list[Any], *, claimed: int) -> list[DBTaskResult[Any, Any]]:
        """Claim the durable calls that this batch's tasks queued, to run in this batch.

        A form task's confirmation email then goes out with it, whatever else waits:
        one claim more per batch instead of a batch more per sign-up, and an email never
        waits behind the next form tasks. Calls queued for later (``run_after``), in
        other queues, or taken by another worker meanwhile are left alone.
        """
        size = self.batch_size.max_size
        if self.max_tasks is not None:
            size = min(size, self.max_tasks - self.tasks_run - claimed)
        if not queued or not self.running or size <= 0:
            return []
        return self.claim(size, ids=queued) or []

    def _run_rows(
        self, rows: list[DBTaskResult[Any, Any]], outcomes: list[Outcome], not_started: set[Any]
    ) -> None:
        """Run claimed ``rows`` in claim order, adding to ``outcomes``, removing each from
        ``not_started``; a batch receiver's calls run together, at its first one's turn, and
        so do a plain task's calls when it has a batch form."""
        singles, batches = durable_batches_split(rows)
        payload_prefetch([row.args_kwargs for row in rows])
        group_of = {row.id: group for group in batches for row in group[1]}
        task_group_of = {row.id: group for group in self._task_batches(singles) for row in group[1]}
        for row in rows:
            if not self.running:
                break
            if row.id not in not_started:
                continue
            task_group = task_group_of.get(row.id)
            if task_group is not None:
                outcomes.extend(self._run_task_batch(*task_group))
                not_started.difference_update(batch_row.id for batch_row in task_group[1])
                continue
            group = group_of.get(row.id)
            if group is None:
                outcomes.append(self.run_task(row))
                not_started.discard(row.id)
                continue
            durable_receiver, batch_rows = group
            self.running_task = True
            try:
                errors = durable_batches_run(durable_receiver, batch_rows)
            finally:
                self.running_task = False
            for batch_row in batch_rows:
                outcomes.append(Outcome(row=batch_row, error=errors.get(batch_row.id)))
                not_started.discard(batch_row.id)

    def _task_batches(
        self, rows: list[DBTaskResult[Any, Any]]
    ) -> list[tuple[TaskBatchRunner, list[DBTaskResult[Any, Any]]]]:
        """The ``rows`` of plain tasks that have a batch form, grouped by task."""
        groups: dict[str, tuple[TaskBatchRunner, list[DBTaskResult[Any, Any]]]] = {}
        for row in rows:
            try:
                self._task(row)  # imports its module, which declares its batch form
            except Exception:
                continue  # run_task records why
            runner = TASK_BATCH_RUNNERS.get(row.task_path)
            if runner is not None:
                groups.setdefault(row.task_path, (runner, []))[1].append(row)
        return list(groups.values())

    def _run_task_batch(
        self, runner: TaskBatchRunner, rows: list[DBTaskResult[Any, Any]]
    ) -> list[Outcome]:
        """Run ``rows`` of one plain task by its batch form; return their outcomes."""
        self.running_task = True
        try:
            task_results = [self._task_result(row) for row in rows]
            if task_started.has_listeners():
                for task_result in task_results:
                    sender = type(task_result.task.get_backend())
                    task_started.send(sender=sender, task_result=task_result)
            errors = task_batch_run(runner, rows)
        finally:
            self.running_task = False
        return [
            Outcome(row=row, error=errors.get(row.id), task_result=task_result)
            for row, task_result in zip(rows, task_results, strict=True)
        ]

    def _task(self, row: DBTaskResult[Any, Any]) -> Task[..., Any]:
        """The task of ``row`` as django-tasks-db's ``row.task`` makes it, made once per kind."""
        key = (row.task_path, row.priority, row.queue_name, row.run_after, row.backend_name)
        task = self._tasks.get(key)
        if task is None:
            task = row.task
            if len(self._tasks) > 1000:
                self._tasks.clear()
            self._tasks[key] = task
        return task

    def _task_result(self, row: DBTaskResult[Any, Any]) -> TaskResult[..., Any]:
        """``row.task_result`` without importing and copying the task again for each row."""
        task_result = task_result_build(row=row, task=self._task(row), read=True)
        object.__setattr__(task_result, "_return_value", None)
        return task_result

    def run_task(self, row: DBTaskResult[Any, Any]) -> Outcome:
        """Run one claimed task; return its outcome (recorded later, with the batch)."""
        self.running_task = True
        outcome = Outcome(row=row)
        try:
            task = self._task(row)
            arguments = row.args_kwargs
            outcome.task_result = self._task_result(row)
            if task_started.has_listeners():
                task_started.send(sender=type(task.get_backend()), task_result=outcome.task_result)
            if task.takes_context:
                outcome.return_value = task.call(
                    TaskContext(task_result=outcome.task_result),
                    *arguments["args"],
                    **arguments["kwargs"],
                )
            else:
                outcome.return_value = task.call(*arguments["args"], **arguments["kwargs"])
            if outcome.return_value is not None:
                json.dumps(outcome.return_value)
        except Exception as error:
            outcome.error = error
        finally:
            self.running_task = False
        return outcome

    def record(self, outcomes: list[Outcome]) -> None:
        """Record ``outcomes``: one UPDATE for the successes, one for the failures."""
        if not outcomes:
            return
        now = timezone.now()
        rows = DBTaskResult.objects.using(router.db_for_write(DBTaskResult))
        succeeded = [o.row.id for o in outcomes if o.error is None and o.return_value is None]
        returned = [o for o in outcomes if o.error is None and o.return_value is not None]
        failed = [o for o in outcomes if o.error is not None]
        done = {"status": TaskResultStatus.SUCCESSFUL, "finished_at": now}
        if succeeded:
            # Only rows still running: an erasure may have deleted one meanwhile.
            running = rows.filter(id__in=succeeded, status=TaskResultStatus.RUNNING)
            _retried(functools.partial(running.update, **done, return_value=None))
        for outcome in returned:
            one = rows.filter(id=outcome.row.id)
            _retried(functools.partial(one.update, **done, return_value=outcome.return_value))
        if failed:
            _retried(
                functools.partial(
                    rows.filter(id__in=[o.row.id for o in failed]).update,
                    status=TaskResultStatus.FAILED,
                    finished_at=now,
                    return_value=None,
                    exception_class_path=Case(
                        *[When(id=o.row.id, then=Value(_error_class(o.error))) for o in failed]
                    ),
                    traceback=Case(
                        *[When(id=o.row.id, then=Value(_traceback(o.error))) for o in failed]
                    ),
                )
            )
        if task_finished.has_listeners():
            self._finished_send(outcomes, now)

    def _finished_send(self, outcomes: list[Outcome], now: Any) -> None:
        for outcome in outcomes:
            row = outcome.row
            row.finished_at = now
            failed = outcome.error is not None
            row.status = TaskResultStatus.FAILED if failed else TaskResultStatus.SUCCESSFUL
            try:
                task_result = outcome.task_result or self._task_result(row)
                # The outcome, on the task's own TaskResult: built once per task.
                object.__setattr__(task_result, "status", row.status)
                object.__setattr__(task_result, "finished_at", now)
                sender = type(task_result.task.get_backend())
            except Exception:
                logger.exception("Task %s failed unexpectedly", row.id)
                continue
            if failed:
                task_result.errors.append(
                    TaskError(
                        exception_class_path=_error_class(outcome.error),
                        traceback=_traceback(outcome.error),
                    )
                )
            task_finished.send(sender=sender, task_result=task_result)

    def release(self, rows: list[DBTaskResult[Any, Any]]) -> None:
        """Put claimed tasks that did not start back in the queue, as they were."""
        by_history: dict[tuple[str, ...], list[Any]] = defaultdict(list)
        for row in rows:
            by_history[tuple(row.worker_ids[:-1])].append(row.id)
        for history, ids in by_history.items():
            DBTaskResult.objects.filter(Q(id__in=ids), status=TaskResultStatus.RUNNING).update(
                status=TaskResultStatus.READY, started_at=None, worker_ids=list(history)
            )


def _error_class(error: BaseException | None) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


def _traceback(error: BaseException | None) -> str:
    if error is None:
        return ""
    return "".join(traceback.format_exception(error))


def _retried(statement: Callable[[], int], attempts: int = 3) -> int:
    """Run ``statement``; a locked database (SQLite) is tried again a few times."""
    for attempt in range(1, attempts + 1):
        try:
            return statement()
        except OperationalError as error:
            if attempt == attempts or not is_locked_database_exception(error):
                raise
            time.sleep(0.1 * attempt)
    return 0
