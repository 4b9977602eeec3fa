"""What staff see and do about the queue: status page, dead letters in the admin,
recovery of a lost worker's task."""

from datetime import timedelta

import pytest
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from signalpost.durable.models import DeadLetter, WorkerProcess
from signalpost.durable.services import orphaned_tasks_requeue, worker_register
from tests.durable_helpers import run_worker_until_idle
from tests.durable_receivers import probe
from tests.factories import make_profile, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client):
    staff = make_user(username="staff", is_staff=True, is_superuser=True)
    client.force_login(staff)
    return client


def claimed_task(*, by, minutes_ago):
    """Send a probe and mark its task as claimed by worker ``by`` some minutes ago."""
    probe.send(sender=None, profile=make_profile(), label="ok")
    task = DBTaskResult.objects.latest("enqueued_at")
    task.status = TaskResultStatus.RUNNING
    task.started_at = timezone.now() - timedelta(minutes=minutes_ago)
    task.worker_ids = [by]
    task.save()
    return task


def test_a_task_whose_worker_stopped_beating_is_requeued():
    WorkerProcess.objects.create(
        worker_id="lost",
        hostname="h",
        pid=1,
        queues="default",
        started_at=timezone.now() - timedelta(hours=1),
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )
    task = claimed_task(by="lost", minutes_ago=5)

    assert orphaned_tasks_requeue(lease_seconds=30) == 1
    task.refresh_from_db()
    assert task.status == TaskResultStatus.READY


def test_a_task_of_a_live_worker_or_within_the_lease_is_left_alone():
    worker_register(worker_id="alive", queues=["default"])
    long_running = claimed_task(by="alive", minutes_ago=60)
    just_started = claimed_task(by="vanished", minutes_ago=0)

    assert orphaned_tasks_requeue(lease_seconds=30) == 0
    for task in (long_running, just_started):
        task.refresh_from_db()
        assert task.status == TaskResultStatus.RUNNING


def test_queue_status_page_is_for_staff_only(client):
    response = client.get("/admin/queue/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert client.get("/admin/queue/?format=json").status_code == 302


def test_queue_status_counts_tasks_by_state_and_the_oldest_waiting(staff_client, test_dir):
    probe.send(sender=None, profile=make_profile(), label="ok")
    run_worker_until_idle()
    probe.send(sender=None, profile=make_profile(), label="ok")
    probe.send(sender=None, profile=make_profile(), label="ok")
    worker_register(worker_id="w1", queues=["default"])

    data = staff_client.get("/admin/queue/?format=json").json()

    assert data["tasks"]["waiting"] == 2
    assert data["tasks"]["succeeded"] == 1
    assert data["tasks"]["running"] == 0
    assert data["oldest_waiting"]["age_seconds"] >= 0
    assert [worker["worker_id"] for worker in data["workers"]] == ["w1"]
    assert data["workers_alive"] == 1

    page = staff_client.get("/admin/queue/").content.decode()
    assert '<td id="count-waiting">2</td>' in page
    assert '<td id="count-succeeded">1</td>' in page


def test_staff_see_dead_letters_with_their_last_error_and_replay_them(staff_client, test_dir):
    probe.send(sender=None, profile=make_profile(), label="always-fail")
    run_worker_until_idle()
    dead_letter = DeadLetter.objects.get()

    listing = staff_client.get("/admin/durable/deadletter/").content.decode()
    assert "tests.record_probe" in listing
    detail = staff_client.get(f"/admin/durable/deadletter/{dead_letter.pk}/change/")
    assert "the mail server said no" in detail.content.decode()

    (test_dir / "fixed").touch()
    response = staff_client.post(
        "/admin/durable/deadletter/",
        {"action": "replay_selected", "_selected_action": [dead_letter.pk]},
        follow=True,
    )
    assert "Queued 1 replay(s)" in response.content.decode()
    run_worker_until_idle()
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetter.Status.RESOLVED


def test_every_admin_page_links_to_the_task_queue(staff_client):
    page = staff_client.get("/admin/").content.decode()
    assert 'href="/admin/queue/"' in page
    assert "Signalpost administration" in page


def test_staff_without_permission_to_see_dead_letters_do_not_see_the_queue(client):
    client.force_login(make_user(username="editor", is_staff=True))
    assert client.get("/admin/queue/").status_code == 403
    assert client.get("/admin/queue/?format=json").status_code == 403


def test_queue_metrics_show_throughput_per_receiver_latency_and_backlog(staff_client, test_dir):
    for _ in range(3):
        probe.send(sender=None, profile=make_profile(), label="ok")
    probe.send(sender=None, profile=make_profile(), label="always-fail")
    # Each of these waited 10 s (enqueued then, claimed now).
    DBTaskResult.objects.update(enqueued_at=timezone.now() - timedelta(seconds=10))
    run_worker_until_idle()
    # Waiting: one, enqueued a minute ago.
    probe.send(sender=None, profile=make_profile(), label="ok")
    DBTaskResult.objects.filter(status=TaskResultStatus.READY).update(
        enqueued_at=timezone.now() - timedelta(seconds=60)
    )
    finished_long_ago = DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).first()
    DBTaskResult.objects.filter(pk=finished_long_ago.pk).update(
        finished_at=timezone.now() - timedelta(hours=1),
        started_at=timezone.now() - timedelta(hours=1),
    )

    metrics = staff_client.get("/admin/queue/?format=json").json()["metrics"]

    assert metrics["window_seconds"] == 300
    [probe_rate] = metrics["throughput"]
    assert probe_rate["name"] == "tests.record_probe", "by the receiver's id"
    # 3 ok + 3 attempts of always-fail, minus the one finished an hour ago.
    assert probe_rate["tasks"] == 5
    assert probe_rate["failed"] == 3
    assert probe_rate["per_second"] == round(5 / 300, 3)
    latency = metrics["latency"]
    assert latency["tasks"] == 5
    assert 9 <= latency["p50_seconds"] <= 60
    assert latency["p99_seconds"] >= latency["p50_seconds"]
    [backlog] = metrics["backlog"]
    assert backlog["queue_name"] == "default"
    assert backlog["waiting"] == 1
    assert backlog["oldest_age_seconds"] >= 59

    page = staff_client.get("/admin/queue/").content.decode()
    assert "tests.<wbr>record_probe" in page
    assert 'id="latency-p50"' in page
    assert "Backlog per queue" in page


def test_queue_metrics_of_an_empty_queue_say_so(staff_client):
    metrics = staff_client.get("/admin/queue/?format=json").json()["metrics"]
    assert metrics["throughput"] == []
    assert metrics["latency"] == {"tasks": 0, "p50_seconds": None, "p99_seconds": None}
    assert metrics["backlog"] == []
    page = staff_client.get("/admin/queue/").content.decode()
    assert "No task finished." in page
    assert "no task started" in page
