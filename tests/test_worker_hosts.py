"""Workers on several machines share one send through the database and the cache.

Each "host" here is a group of real ``db_worker`` processes in a session of its own
(``start_new_session``), with its own environment (host name, home, temporary
directory), and nothing shared with the other but the database URL and the cache URL,
as workers on other machines have (docs/deploy.md).
"""

import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django_tasks_db.models import DBTaskResult

from signalpost.newsletters.services import subscribe
from signalpost.publishing.models import Delivery, Issue
from signalpost.publishing.services import issue_create, issue_send
from tests.durable_helpers import ROOT, database_url_of_test_database, stop, wait_for
from tests.factories import make_newsletter

pytestmark = pytest.mark.django_db(transaction=True)

RECIPIENTS = 240
# The cache both hosts share (Redis database 5 of this machine's Redis).
CACHE_URL = os.environ.get("SIGNALPOST_TEST_SHARED_CACHE_URL", "redis://127.0.0.1:6379/5")


def redis_reachable():
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def start_host(name, tmp_path, *, email_url, workers=2):
    """Start ``workers`` db_worker processes as one host: own session, own environment."""
    home = tmp_path / name
    (home / "tmp").mkdir(parents=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "HOSTNAME": f"{name}.example.internal",
        "DATABASE_URL": database_url_of_test_database(),
        "CACHE_URL": CACHE_URL,
        "EMAIL_URL": email_url,
        "SITE_URL": "https://news.example.com",
        "SEND_BATCH_SIZE": "20",
        "SEND_PREPARE_CHUNK_SIZE": "50",
        # Shared through the cache: the two hosts together stay under it.
        "SEND_RATE_PER_SECOND": "150",
        "PYTHONUNBUFFERED": "1",
    }
    for key in ("DATABASE_TRANSACTION_POOLING", "VIRTUAL_ENV"):
        if key in os.environ:
            env[key] = os.environ[key]
    processes = []
    for number in range(1, workers + 1):
        output = open(home / f"worker{number}.out", "w")  # noqa: SIM115  (closed with it)
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "db_worker",
                    "--no-reload",
                    "--no-startup-delay",
                    "--interval=0.1",
                    f"--worker-id={name}-{number}",
                ],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return processes


@pytest.mark.skipif(not redis_reachable(), reason="needs Redis on 127.0.0.1:6379")
def test_workers_on_two_hosts_share_a_send_each_recipient_once(tmp_path, smtp_inbox, settings):
    port = settings.MAILERS["default"]["OPTIONS"]["port"]
    letter = make_newsletter(slug="weekly")
    audience = [f"reader{number}@example.com" for number in range(RECIPIENTS)]
    for email in audience:
        subscribe(email=email, newsletter=letter, source="admin")
    issue = issue_create(newsletter=letter, subject="News", body_markdown="News.")
    hosts = {
        name: start_host(name, tmp_path, email_url=f"smtp://127.0.0.1:{port}")
        for name in ("host-a", "host-b")
    }
    groups = {os.getpgid(process.pid) for processes in hosts.values() for process in processes}
    assert len(groups) == 4, "each worker in a process group of its own, none in ours"
    try:
        issue_send(issue=issue)
        wait_for(
            lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
            timeout=120,
            what="the send to finish",
        )
    finally:
        codes = [stop(process) for processes in hosts.values() for process in processes]
    assert codes == [0, 0, 0, 0]

    received = Counter(
        message["To"] for message in smtp_inbox.messages if message["Subject"] == "News"
    )
    assert sorted(received) == sorted(audience)
    assert set(received.values()) == {1}, "nobody got it twice"
    assert Delivery.objects.filter(issue=issue, status="sent").count() == RECIPIENTS
    ran_on = Counter(
        worker_ids[-1].rsplit("-", 1)[0]
        for worker_ids in DBTaskResult.objects.filter(
            task_path__endswith=".issue_send_batch"
        ).values_list("worker_ids", flat=True)
    )
    assert set(ran_on) == {"host-a", "host-b"}, f"both hosts sent batches: {ran_on}"


def test_the_deploy_docs_show_workers_on_other_machines():
    text = (Path(ROOT) / "docs" / "deploy.md").read_text()
    assert "Workers on other machines" in text
