"""Seed an empty, migrated database with one send to 1,000,000 in the middle: 600,000 sent by 1,200
batches whose tasks succeeded, 2 batches of 500 in flight, the rest queued; ANALYZEd.

For ``claims_explain.py`` (bench/README.md, "A HOT sent mark")::

    createdb -h 127.0.0.1 -U postgres claims && export DATABASE_URL=postgres://postgres@127.0.0.1:5432/claims
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py shell -c \\
        "exec(open('bench/fanout_support/claims_seed.py').read())"
"""

import uuid

from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.newsletters.models import Newsletter
from signalpost.publishing.models import Issue
from signalpost.publishing.tasks import issue_send_batch

N, SENT_BATCHES, BATCH = 1_000_000, 1200, 500
letter = Newsletter.objects.create(slug="explain", name="Explain", opt_in="single")
issue = Issue.objects.create(
    newsletter=letter,
    subject="x",
    slug="x",
    body_markdown="x",
    status="sending",
    sending_started_at=timezone.now(),
    prepared_at=timezone.now(),
    recipient_count=N,
)
now = timezone.now()
claimers = [uuid.uuid4() for _ in range(SENT_BATCHES + 2)]
DBTaskResult.objects.bulk_create(
    [
        DBTaskResult(
            id=c,
            status="SUCCESSFUL" if i < SENT_BATCHES else "RUNNING",
            args_kwargs={"args": [], "kwargs": {"issue_id": issue.pk}},
            task_path=issue_send_batch.module_path,
            queue_name="default",
            backend_name="default",
            run_after=now,
            exception_class_path="",
            traceback="",
        )
        for i, c in enumerate(claimers)
    ]
)
with connection.cursor() as cursor:
    cursor.execute("CREATE TEMP TABLE c (n int, claimer text)")
    cursor.execute(
        "INSERT INTO c SELECT ordinality - 1, u FROM unnest(%s::text[]) WITH ORDINALITY u",
        [[str(c) for c in claimers]],
    )
    cursor.execute(
        f"""
        INSERT INTO publishing_delivery (issue_id, profile_id, email, status, attempts, claimed_by,
            message_id, last_error, sent_at)
        SELECT %s, NULL, 'reader' || i || '@example.com',
          CASE WHEN i <= {SENT_BATCHES * BATCH} THEN 'sent'
               WHEN i <= {(SENT_BATCHES + 2) * BATCH} THEN 'sending' ELSE 'queued' END,
          CASE WHEN i <= {(SENT_BATCHES + 2) * BATCH} THEN 1 ELSE 0 END,
          CASE WHEN i <= {(SENT_BATCHES + 2) * BATCH}
            THEN (SELECT claimer FROM c WHERE n = (i - 1) / {BATCH}) ELSE '' END,
          CASE WHEN i <= {SENT_BATCHES * BATCH}
            THEN '<' || md5(i::text) || '@news.example.com>' ELSE '' END,
          '', CASE WHEN i <= {SENT_BATCHES * BATCH} THEN now() END
        FROM generate_series(1, %s) i""",
        [issue.pk, N],
    )
    cursor.execute("ANALYZE publishing_delivery")
    cursor.execute("ANALYZE django_tasks_database_dbtaskresult")
print("issue", issue.pk)
