"""Celery and Django's tasks framework with real workers and real brokers."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import pytest
from django.db import transaction

from django_nexmo_conversion import mark_converted
from django_nexmo_conversion.models import Conversion, Status

from .helpers import configure, requests_per_message, sandbox_settings
from .processes import django_admin, require_service, running, wait_until, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

BROKERS = {
    "redis": ("Redis", "127.0.0.1", 6379, "redis://127.0.0.1:6379/14"),
    "rabbitmq": ("RabbitMQ", "127.0.0.1", 5672, "amqp://guest:guest@127.0.0.1:5672//"),
}


@pytest.fixture
def celery_producer():
    """A fresh Celery app per broker for the test process (enqueueing side).

    Producer pools are bound to the broker they first connected to, so reusing one app
    across brokers would quietly send every task to the first.
    """
    from celery import Celery
    from celery._state import get_current_app

    previous = get_current_app()
    apps = []

    def make(url: str) -> Celery:
        app = Celery("tests-producer", broker=url, set_as_current=True)
        app.conf.task_ignore_result = True
        app.conf.broker_connection_retry_on_startup = False
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()
    previous.set_current()


def reported_count() -> int:
    return Conversion.objects.filter(status=Status.REPORTED).count()


#: A queue of this run's own, so two test runs sharing a broker never take each other's tasks.
QUEUE = f"nexmo-conversion-tests-{os.getpid()}"


def celery_worker(*extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.celery_app",
        "worker",
        "--pool=threads",
        "--concurrency=2",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
        f"--queues={QUEUE}",
        *extra,
    ]


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_celery_worker_reports_each_conversion_once_after_commit(
    broker, nexmo_sandbox, settings, tmp_path, celery_producer
):
    name, host, port, url = BROKERS[broker]
    require_service(name, host, port)
    app = celery_producer(url)
    configure(settings, DISPATCH="celery", CELERY_TASK_OPTIONS={"queue": QUEUE})
    # Purge what an earlier, interrupted run may have left in the queue.
    app.control.purge()
    env = worker_env(sandbox_settings(nexmo_sandbox), NEXMO_TEST_BROKER_URL=url)

    with running(celery_worker(), env, log=tmp_path / "worker.log"):
        # The rolled-back mark first, while the worker has nothing to write: on SQLite, in a
        # deferred transaction (Django's default there), a write after a read fails at once
        # with "database is locked" while another process writes, instead of waiting. CI hit
        # it with this mark placed after the worker had begun reporting the twenty.
        with transaction.atomic():
            mark_converted("ROLLEDBACK0001")
            transaction.set_rollback(True)
        with transaction.atomic():
            for n in range(20):
                mark_converted(f"CELERY{broker.upper()}{n:04d}")
            # Enqueued on commit: the worker cannot see a row before it is committed.
            assert not nexmo_sandbox.requests
        assert wait_until(lambda: reported_count() == 20, timeout=60), (
            tmp_path / "worker.log"
        ).read_text()[-3000:]

    ids = requests_per_message(nexmo_sandbox)
    assert len(ids) == 20
    assert max(ids.values()) == 1
    assert "ROLLEDBACK0001" not in ids


def test_celery_beat_reports_what_is_due(nexmo_sandbox, tmp_path, celery_producer):
    """The periodic task picks up conversions no one enqueued (manual dispatch, retries)."""
    require_service("Redis", "127.0.0.1", 6379)
    celery_producer(BROKERS["redis"][3]).control.purge()
    for n in range(5):
        mark_converted(f"BEAT{n:04d}")  # DISPATCH is "manual" in the test settings
    # Beat sends to the default queue: make that this run's queue too.
    env = worker_env(
        sandbox_settings(nexmo_sandbox),
        NEXMO_TEST_BEAT_INTERVAL="0.5",
        NEXMO_TEST_CELERY_QUEUE=QUEUE,
    )
    # Beat's own in-memory scheduler: the default one keeps its schedule in a shelve file,
    # which Python 3.13 backs with SQLite and which once failed to open ("locking protocol")
    # while two suites ran side by side. What is tested is the periodic task, not that file.
    with running(
        celery_worker("--beat", "--scheduler=celery.beat:Scheduler"),
        env,
        log=tmp_path / "worker.log",
    ):
        assert wait_until(lambda: reported_count() == 5, timeout=60), (
            tmp_path / "worker.log"
        ).read_text()[-3000:]
    assert sorted(r.message_id for r in nexmo_sandbox.reported()) == [
        f"BEAT{n:04d}" for n in range(5)
    ]


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_never_fails_the_caller(
    settings, celery_producer, caplog: pytest.LogCaptureFixture
):
    celery_producer("redis://127.0.0.1:9/0")  # nothing listens there
    settings.NEXMO_CONVERSION = {
        **settings.NEXMO_CONVERSION,
        "DISPATCH": "celery",
        "CELERY_TASK_OPTIONS": {"retry": False},
    }
    with caplog.at_level(logging.ERROR, logger="django_nexmo_conversion"), transaction.atomic():
        conversion = mark_converted("BROKERDOWN1")
    # Committed and answered; the row waits for the periodic task or the command.
    conversion.refresh_from_db()
    assert conversion.status == Status.PENDING
    assert "Could not enqueue conversion" in caplog.text


def test_django_tasks_immediate_backend_reports_on_commit(nexmo_sandbox, settings):
    configure(settings, DISPATCH="django_tasks")
    with transaction.atomic():
        conversion = mark_converted("TASKIMMEDIATE1")
        assert not nexmo_sandbox.requests
    conversion.refresh_from_db()
    assert conversion.status == Status.REPORTED
    assert [r.message_id for r in nexmo_sandbox.requests] == ["TASKIMMEDIATE1"]


def test_django_tasks_database_worker(nexmo_sandbox, settings, tmp_path):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    configure(settings, DISPATCH="django_tasks", DJANGO_TASKS_USING={"queue_name": "default"})
    with transaction.atomic():
        for n in range(10):
            mark_converted(f"TASKDB{n:04d}")
    # Queued, not run: nothing is sent until a worker takes the tasks.
    assert not nexmo_sandbox.requests
    env = worker_env(sandbox_settings(nexmo_sandbox), NEXMO_TEST_TASKS="database")
    with running(
        django_admin("db_worker", "--batch", "--no-startup-delay"),
        env,
        log=tmp_path / "db_worker.log",
    ) as worker:
        worker.wait(timeout=60)
    assert worker.returncode == 0, (tmp_path / "db_worker.log").read_text()[-3000:]
    assert reported_count() == 10
    assert requests_per_message(nexmo_sandbox) == {f"TASKDB{n:04d}": 1 for n in range(10)}


def test_tasks_module_imports_without_celery(monkeypatch):
    monkeypatch.setitem(sys.modules, "celery", None)
    import django_nexmo_conversion.tasks as tasks

    try:
        reloaded = importlib.reload(tasks)
        assert reloaded.celery_report_conversion is None
        from django.core.exceptions import ImproperlyConfigured

        with pytest.raises(ImproperlyConfigured, match="Celery is not installed"):
            reloaded.enqueue_celery(1)
    finally:
        monkeypatch.undo()
        importlib.reload(tasks)
