"""EXPLAIN ANALYZE the reads of a send at 1,000,000 seeded by ``claims_seed.py``, and time
the selectors that use them; with ``old`` as the last argument, main's queries with its
(issue, status) index (created here, dropped after). From the repository root::

    .venv/bin/python manage.py shell -c \\
        "exec(open('bench/fanout_support/claims_explain.py').read())"
    .venv/bin/python manage.py shell -c \\
        "import sys; sys.argv.append('old'); exec(open('bench/fanout_support/claims_explain.py').read())"
"""  # noqa: E501

import sys
import time

from django.db import connection, transaction

from signalpost.publishing import selectors, services
from signalpost.publishing.models import Issue

X = Issue.objects.get(slug="x").pk
TABLE = "publishing_delivery"
UNCLAIMED = f"issue_id = {X} AND claimed_by <= ''"
with connection.cursor() as c:
    c.execute(f"SELECT claimed_by FROM {TABLE} WHERE issue_id = %s AND status = 'sending'", [X])
    CLAIMER = c.fetchone()[0]
QUERIES = {
    "claim (next 500 queued)": f"SELECT id FROM {TABLE} WHERE {UNCLAIMED} AND status = 'queued' "
    "ORDER BY claimed_by LIMIT 500 FOR UPDATE SKIP LOCKED",
    "claim, own (a rerun)": f"SELECT id FROM {TABLE} WHERE issue_id = {X} "
    f"AND claimed_by = '{CLAIMER}' AND status = 'sending'",
    "finish probe (queued/held left?)": f"SELECT 1 FROM {TABLE} WHERE {UNCLAIMED} "
    "AND status IN ('queued', 'held') ORDER BY claimed_by LIMIT 1",
    "counts by status": f"SELECT status, count(id) FROM {TABLE} WHERE issue_id = {X} "
    "GROUP BY status",
    "cancel (queued/held -> cancelled)": f"UPDATE {TABLE} SET status = 'cancelled' "
    f"WHERE {UNCLAIMED} AND status IN ('queued', 'held')",
}
OLD = {
    "old: claim": f"SELECT id FROM {TABLE} WHERE issue_id = {X} AND status = 'queued' "
    "ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED",
    "old: finish probe": f"SELECT 1 FROM {TABLE} WHERE issue_id = {X} "
    "AND status IN ('queued', 'sending', 'held') LIMIT 1",
    "old: claimers in flight": f"SELECT DISTINCT claimed_by FROM {TABLE} "
    f"WHERE issue_id = {X} AND status = 'sending'",
    "old: counts by status": QUERIES["counts by status"],
    "old: cancel": f"UPDATE {TABLE} SET status = 'cancelled' WHERE issue_id = {X} "
    "AND status IN ('queued', 'held')",
}


def explain(queries):
    for name, sql in queries.items():
        with transaction.atomic(), connection.cursor() as c:
            c.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
            plan = [row[0] for row in c.fetchall()]
            transaction.set_rollback(True)
        print(f"### {name}\n" + "\n".join(plan) + "\n")


def timed(name, call, runs=5):
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    print(f"{name}: {best * 1000:.1f} ms (best of {runs}); result {str(result)[:80]}")


if sys.argv[-1] == "old":
    with connection.cursor() as c:
        c.execute(f"CREATE INDEX claims_explain_status ON {TABLE} (issue_id, status)")
        c.execute(f"ANALYZE {TABLE}")
    try:
        explain(OLD)
    finally:
        with connection.cursor() as c:
            c.execute("DROP INDEX claims_explain_status")
else:
    explain(QUERIES)
    timed("delivery_claimers", lambda: len(selectors.delivery_claimers(issue_id=X)))
    timed("claimers_stranded", lambda: selectors.claimers_stranded(issue_id=X))
    timed("_send_stranded (the heartbeat's check)", lambda: services._send_stranded(issue_id=X))
    timed("issue_finish_if_done (queued left)", lambda: services.issue_finish_if_done(issue_id=X))
    timed("deliveries_counts", lambda: selectors.deliveries_counts(issue_id=X), runs=3)
