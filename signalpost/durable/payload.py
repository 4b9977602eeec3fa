"""Turning a signal's arguments into JSON for a task, and back in the worker.

Model instances travel as their label and primary key and are read again in
the worker, so a receiver sees the row as committed, not a stale copy. Values
that cannot travel raise ``TypeError`` at send time, inside the sender's
transaction, rather than failing later in the worker.
"""

import datetime
import decimal
import uuid
from contextvars import ContextVar
from typing import Any

from django.apps import apps
from django.db.models import ForeignKey, Model

from signalpost.durable.exceptions import PermanentFailure

TAG = "$"


def payload_dump(value: object, *, where: str = "argument") -> Any:
    """Return ``value`` as JSON-compatible data; raise ``TypeError`` if it cannot travel."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Model):
        if value.pk is None:
            raise TypeError(f"{where}: an unsaved {type(value).__name__} cannot be sent durably")
        return {"$model": value._meta.label, "pk": payload_dump(value.pk, where=where)}
    if isinstance(value, type) and issubclass(value, Model):
        return {"$model_class": value._meta.label}
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, (set, frozenset)):
        return {"$set": [payload_dump(item, where=where) for item in value]}
    if isinstance(value, (list, tuple)):
        return [payload_dump(item, where=where) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError(f"{where}: dictionary keys must be strings to be sent durably")
        dumped = {key: payload_dump(item, where=where) for key, item in value.items()}
        if any(key.startswith(TAG) for key in value):
            return {"$dict": dumped}
        return dumped
    raise TypeError(f"{where}: a {type(value).__name__} cannot be sent durably")


# Rows read ahead for the calls of a worker's batch: {(label, pk): instance}.
_prefetched: ContextVar[dict[tuple[str, Any], Model] | None] = ContextVar(
    "payload_prefetched", default=None
)


def _references(data: Any, found: dict[str, set[Any]]) -> None:
    if isinstance(data, list):
        for item in data:
            _references(item, found)
    elif isinstance(data, dict):
        if "$model" in data and isinstance(data.get("pk"), (int, str)):
            found.setdefault(data["$model"], set()).add(data["pk"])
            return
        for item in data.values():
            _references(item, found)


def payload_prefetch(datas: list[Any]) -> None:
    """Read every model row that ``datas`` refer to, one query per model, for the
    ``payload_load`` calls that follow; ``[]`` forgets them.

    A worker reads the rows of a whole batch of calls at its start, instead of
    one query per call; the rows are as committed when the batch began.
    """
    if not datas:
        _prefetched.set(None)
        return
    found: dict[str, set[Any]] = {}
    _references(datas, found)
    rows: dict[tuple[str, Any], Model] = {}
    for label, pks in found.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        for pk, instance in model._default_manager.in_bulk(list(pks)).items():
            rows[(label, pk)] = instance
    _relations_link(rows)
    _prefetched.set(rows)


def _relations_link(rows: dict[tuple[str, Any], Model]) -> None:
    """Point each row's foreign keys at the rows read with it, when they were.

    A call that carries a subscription and its profile then reads
    ``subscription.profile`` without one more query per call.
    """
    for instance in rows.values():
        for field in instance._meta.concrete_fields:
            if not isinstance(field, ForeignKey) or field.is_cached(instance):
                continue
            if not field.target_field.primary_key:
                continue  # rows are found by primary key
            label = field.related_model._meta.label
            target = rows.get((label, field.value_from_object(instance)))
            if target is not None:
                field.set_cached_value(instance, target)


def payload_load(data: Any) -> Any:
    """Return the value ``payload_dump`` made ``data`` from, reading model rows again.

    Raises ``PermanentFailure`` when a row no longer exists: retrying cannot
    bring it back.
    """
    if isinstance(data, list):
        return [payload_load(item) for item in data]
    if not isinstance(data, dict):
        return data
    if "$model" in data:
        prefetched = _prefetched.get()
        if prefetched is not None and (data["$model"], data["pk"]) in prefetched:
            return prefetched[(data["$model"], data["pk"])]
        model = apps.get_model(data["$model"])
        try:
            return model._default_manager.get(pk=payload_load(data["pk"]))
        except model.DoesNotExist as error:
            raise PermanentFailure(
                f"{data['$model']} with pk {data['pk']!r} no longer exists"
            ) from error
    if "$model_class" in data:
        return apps.get_model(data["$model_class"])
    if "$datetime" in data:
        return datetime.datetime.fromisoformat(data["$datetime"])
    if "$date" in data:
        return datetime.date.fromisoformat(data["$date"])
    if "$decimal" in data:
        return decimal.Decimal(data["$decimal"])
    if "$uuid" in data:
        return uuid.UUID(data["$uuid"])
    if "$set" in data:
        return {payload_load(item) for item in data["$set"]}
    if "$dict" in data:
        return {key: payload_load(item) for key, item in data["$dict"].items()}
    return {key: payload_load(item) for key, item in data.items()}
