"""Bulk API 2.0 ingest and query jobs (research §3)."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import soql
from .core import Core
from .errors import ErrorItem, SfError, not_found
from .records import BULK_NULL, MultipleMatches, now_iso
from .rest import Call, Reply, batches_for, method_not_allowed

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^",
              "BACKQUOTE": "`"}
ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
OPERATIONS = {"insert", "update", "upsert", "delete", "hardDelete"}
BATCH_ROWS = 10_000
CSV_TYPE = "text/csv"


@dataclass
class Job:
    """An ingest or query job and its results."""

    id: str
    kind: str
    operation: str
    object: str
    version: str
    delimiter: str = "COMMA"
    line_ending: str = "LF"
    external_id: str | None = None
    query: str | None = None
    state: str = "Open"
    created: str = field(default_factory=now_iso)
    data: str | None = None
    header: list[str] = field(default_factory=list)
    success: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    result: soql.Result | None = None
    polls: int = 0
    error: str | None = None

    def info(self) -> dict[str, Any]:
        """The job-info JSON."""
        state = self.state
        if state == "JobComplete" and self.polls == 0:
            state = "InProgress"
        body: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.object,
            "createdById": "005Hs0000000001AAA", "createdDate": self.created,
            "systemModstamp": self.created, "state": state,
            "concurrencyMode": "Parallel", "contentType": "CSV",
            "apiVersion": float(self.version), "lineEnding": self.line_ending,
            "columnDelimiter": self.delimiter, "retries": 0,
            "totalProcessingTime": 0, "apiActiveProcessingTime": 0, "apexProcessingTime": 0,
        }
        done = state == "JobComplete"
        if self.kind == "ingest":
            body.update({
                "jobType": "V2Ingest", "externalIdFieldName": self.external_id,
                "contentUrl": f"services/data/v{self.version}/jobs/ingest/{self.id}/batches",
                "numberRecordsProcessed": len(self.success) + len(self.failed) if done else 0,
                "numberRecordsFailed": len(self.failed) if done else 0,
            })
        else:
            body.update({"jobType": "V2Query", "query": self.query,
                         "numberRecordsProcessed": self.result.total if done and self.result
                         else 0})
        if self.error:
            body["errorMessage"] = self.error
        return body


def handle(core: Core, call: Call) -> Reply:
    """Entry for ``jobs/ingest…`` and ``jobs/query…``."""
    seg = call.segments
    if len(seg) < 2 or seg[1] not in ("ingest", "query"):
        raise not_found()
    jobs = core.ingest_jobs if seg[1] == "ingest" else core.query_jobs
    if len(seg) == 2:
        if call.method == "POST":
            return _create(core, call, seg[1])
        if call.method == "GET":
            return Reply(200, {"done": True, "records": [j.info() for j in jobs.values()],
                               "nextRecordsUrl": None})
        raise method_not_allowed(call, "GET, POST")
    job = jobs.get(seg[2])
    if job is None:
        raise SfError("NOT_FOUND", "The requested resource does not exist", status=404)
    if len(seg) == 3:
        return _job(core, call, job, jobs)
    if seg[1] == "ingest" and seg[3] == "batches":
        return _upload(call, job)
    if seg[1] == "ingest":
        return _ingest_results(call, job, seg[3])
    if seg[3] == "results":
        return _query_results(call, job)
    raise not_found()


def _create(core: Core, call: Call, kind: str) -> Reply:
    body = call.json()
    if not isinstance(body, dict):
        raise SfError("INVALIDJOB", "Invalid job definition")
    delimiter = body.get("columnDelimiter", "COMMA")
    ending = body.get("lineEnding", "LF")
    if delimiter not in DELIMITERS or ending not in ENDINGS:
        raise SfError("INVALIDJOB", "Invalid columnDelimiter or lineEnding")
    if body.get("contentType", "CSV") != "CSV":
        raise SfError("INVALIDJOB", "Only contentType CSV is supported")
    prefix_id = core.store.ids.new("750")
    if kind == "query":
        return _create_query(core, call, body, prefix_id, delimiter, ending)
    operation = body.get("operation")
    if operation not in OPERATIONS:
        raise SfError("INVALIDJOB", f"Invalid operation: {operation}")
    odef = core.engine.odef(str(body.get("object", "")))
    ext = body.get("externalIdFieldName")
    if operation == "upsert":
        if not ext:
            raise SfError("INVALIDJOB", "External ID was blank for upsert")
        ext = core.engine.key_field(odef, ext).name
    job = Job(prefix_id, "ingest", operation, odef.name, call.version, delimiter, ending, ext)
    core.ingest_jobs[job.id] = job
    core.stats.bulk_ingest_jobs += 1
    return Reply(200, job.info())


def _create_query(core: Core, call: Call, body: dict[str, Any], jid: str, delimiter: str,
                  ending: str) -> Reply:
    operation = body.get("operation", "query")
    if operation not in ("query", "queryAll"):
        raise SfError("INVALIDJOB", f"Invalid operation: {operation}")
    text = str(body.get("query", ""))
    result = soql.execute(core.store, text, include_deleted=operation == "queryAll")
    if result.compiler.query.count:
        raise SfError("INVALIDJOB", "COUNT() is not supported by Bulk API 2.0 query")
    job = Job(jid, "query", operation, result.odef.name, call.version, delimiter, ending,
              query=text, state="JobComplete", result=result)
    core.query_jobs[job.id] = job
    core.stats.bulk_query_jobs += 1
    info = job.info()
    info["state"] = "UploadComplete"
    return Reply(200, info)


def _job(core: Core, call: Call, job: Job, jobs: dict[str, Job]) -> Reply:
    if call.method == "GET":
        info = job.info()
        job.polls += 1
        return Reply(200, info)
    if call.method == "DELETE":
        jobs.pop(job.id, None)
        return Reply(204)
    if call.method != "PATCH":
        raise method_not_allowed(call, "GET, PATCH, DELETE")
    state = call.json().get("state")
    if state == "Aborted":
        if job.state in ("JobComplete", "Failed"):
            raise SfError("INVALIDJOBSTATE", f"Job is already {job.state}", status=409)
        job.state = "Aborted"
        job.unprocessed = _rows(job)[1]
        return Reply(200, job.info())
    if state != "UploadComplete" or job.kind != "ingest":
        raise SfError("INVALIDJOBSTATE", f"Invalid state transition to {state}")
    if job.state != "Open":
        raise SfError("INVALIDJOBSTATE", f"Job is {job.state}; it must be Open")
    _process(core, job)
    info = job.info()
    info["state"] = "UploadComplete"
    return Reply(200, info)


def _upload(call: Call, job: Job) -> Reply:
    if call.method != "PUT":
        raise method_not_allowed(call, "PUT")
    if job.state != "Open":
        raise SfError("INVALIDJOBSTATE", f"Job is {job.state}; data can only be uploaded to an "
                      "Open job", status=409)
    if job.data is not None:
        raise SfError(
            "BULK_API_ERROR",
            f"Found multiple contents for job: <{job.id}>, please 'Close' / 'Abort' / 'Delete' "
            "the current Job then create a new Job and make sure you only do 'PUT' once on a "
            "given Job.",
        )
    job.data = call.raw.decode("utf-8-sig")
    return Reply(201)


def _rows(job: Job) -> tuple[list[str], list[list[str]]]:
    reader = csv.reader(io.StringIO(job.data or ""), delimiter=DELIMITERS[job.delimiter])
    rows = [r for r in reader if r]
    return (rows[0], rows[1:]) if rows else ([], [])


def _process(core: Core, job: Job) -> None:
    header, rows = _rows(job)
    job.header = header
    try:
        columns = _columns(core, job, header)
    except SfError as exc:
        job.state, job.unprocessed = "Failed", rows
        job.error = f"InvalidBatch : {exc.items[0].message}"
        job.polls = 1
        return
    core.stats.bulk_batches += batches_for(len(rows))
    for start in range(0, len(rows), BATCH_ROWS):
        _process_batch(core, job, columns, rows[start:start + BATCH_ROWS])
    rng = random.Random(job.id)
    rng.shuffle(job.success)
    rng.shuffle(job.failed)
    job.state = "JobComplete"
    core.stats.bulk_records_processed += len(job.success) + len(job.failed)
    core.stats.bulk_records_failed += len(job.failed)


def _columns(core: Core, job: Job, header: list[str]) -> list[tuple[str, str | None]]:
    """(body key, relationship field) per column; InvalidBatch for unknown columns."""
    odef = core.engine.odef(job.object)
    out: list[tuple[str, str | None]] = []
    for col in header:
        if "." in col:
            rel, _, fname = col.partition(".")
            ref = odef.relationship(rel)
            if ref is None:
                raise SfError("INVALIDBATCH", f"Field name not found : {col}")
            out.append((ref.relationship_name or rel, fname))
            continue
        fdef = odef.field(col)
        if fdef is None:
            raise SfError("INVALIDBATCH", f"Field name not found : {col}")
        out.append((fdef.name, None))
    if job.operation in ("update", "delete", "hardDelete") and ("Id", None) not in out:
        raise SfError("INVALIDBATCH", "Field name not found : Id")
    if job.operation == "upsert" and (job.external_id, None) not in out:
        raise SfError("INVALIDBATCH", f"Field name not found : {job.external_id}")
    return out


def _body(core: Core, job: Job, columns: list[tuple[str, str | None]],
          row: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    odef = core.engine.odef(job.object)
    for (key, rel_field), value in zip(columns, row, strict=False):
        if value == "":
            continue
        if rel_field is None:
            body[key] = value
        elif value == BULK_NULL:
            ref = odef.relationship(key)
            body[ref.name if ref else key] = BULK_NULL
        else:
            body[key] = {rel_field: value}
    return body


def _process_batch(core: Core, job: Job, columns: list[tuple[str, str | None]],
                   rows: list[list[str]]) -> None:
    dupes = _duplicate_keys(core, job, columns, rows)
    for n, row in enumerate(rows):
        if n in dupes:
            job.failed.append(["", dupes[n].bulk(), *row])
            continue
        body = _body(core, job, columns, row)
        given_id = str(body.get("Id", "")) if job.operation != "insert" else ""
        with core.store.savepoint() as rollback:
            try:
                rid, created = _apply(core, job, body)
            except SfError as exc:
                rollback()
                job.failed.append([given_id, exc.items[0].bulk(), *row])
                continue
        job.success.append([rid, "true" if created else "false", *row])


def _duplicate_keys(core: Core, job: Job, columns: list[tuple[str, str | None]],
                    rows: list[list[str]]) -> dict[int, ErrorItem]:
    if job.operation != "upsert":
        return {}
    odef = core.engine.odef(job.object)
    fdef = core.engine.key_field(odef, job.external_id or "Id")
    col = columns.index((fdef.name, None))
    seen: dict[str, list[int]] = {}
    for n, row in enumerate(rows):
        key = row[col] if col < len(row) else ""
        if key:
            seen.setdefault(key if fdef.case_sensitive else key.lower(), []).append(n)
    out: dict[int, ErrorItem] = {}
    for key, ns in seen.items():
        if len(ns) > 1:
            for n in ns:
                out[n] = ErrorItem("DUPLICATE_EXTERNAL_ID",
                                   f"Duplicate external id specified: {key}", [fdef.name])
    return out


def _apply(core: Core, job: Job, body: dict[str, Any]) -> tuple[str, bool]:
    try:
        return _apply_row(core, job, body)
    except SfError as exc:
        if exc.code == "NOT_FOUND":
            raise SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                          []) from None
        raise


def _apply_row(core: Core, job: Job, body: dict[str, Any]) -> tuple[str, bool]:
    engine = core.engine
    if job.operation == "insert":
        return engine.create(job.object, body, csv=True), True
    if job.operation in ("delete", "hardDelete"):
        engine.delete(job.object, str(body.get("Id", "")))
        return str(body["Id"]), False
    if job.operation == "update":
        rid = str(body.pop("Id", ""))
        engine.update(job.object, rid, body, csv=True)
        return rid, False
    key = job.external_id or "Id"
    value = body.pop(key, None)
    if value in (None, "") and key != "Id":
        raise SfError("MISSING_ARGUMENT", f"{key} not specified", [])
    try:
        return engine.upsert(job.object, key, value, body, csv=True)
    except MultipleMatches:
        raise SfError("DUPLICATE_EXTERNAL_ID", "A user-specified external ID matches more than "
                      "one record during an upsert", [key]) from None


def _csv_bytes(job: Job, header: list[str], rows: list[list[Any]]) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=DELIMITERS[job.delimiter],
                        lineterminator=ENDINGS[job.line_ending], quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    for n, row in enumerate(rows, 1):
        writer.writerow(row)
        if n % 1000 == 0:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode()


def _ingest_results(call: Call, job: Job, which: str) -> Reply:
    if call.method != "GET":
        raise method_not_allowed(call, "GET")
    which = which.lower()
    if job.state not in ("JobComplete", "Failed", "Aborted"):
        raise SfError("INVALIDJOBSTATE", "Results are available once the job is complete",
                      status=409 if which != "unprocessedrecords" else 400)
    if which == "successfulresults":
        rows, header = job.success, ["sf__Id", "sf__Created", *job.header]
    elif which == "failedresults":
        rows, header = job.failed, ["sf__Id", "sf__Error", *job.header]
    elif which == "unprocessedrecords":
        rows, header = job.unprocessed, _rows(job)[0]
    else:
        raise not_found()
    return Reply(200, content=_csv_bytes(job, header, rows), media_type=CSV_TYPE)


def _query_results(call: Call, job: Job) -> Reply:
    if job.result is None or job.state != "JobComplete":
        raise SfError("INVALIDJOBSTATE", "Query job is not complete", status=409)
    if call.version != job.version:
        raise SfError("INVALIDJOBSTATE", f"Use API version {job.version}, which created the "
                      "job, to get its results", status=409)
    try:
        start = int(call.query.get("locator") or 0)
        size = int(call.query.get("maxRecords") or 0) or len(job.result.rows) or 1
    except ValueError:
        raise SfError("INVALID_LOCATOR", "Invalid locator or maxRecords") from None
    rows = job.result.rows[start:start + size]
    end = start + len(rows)
    locator = str(end) if end < len(job.result.rows) else "null"
    flat = (_csv_values(soql.flat_row(job.result, r)) for r in rows)
    headers = {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(len(rows))}
    return Reply(200, headers=headers, media_type=CSV_TYPE,
                 content=_csv_bytes(job, job.result.compiler.query.fields, flat))  # type: ignore[arg-type]


def _csv_values(values: list[Any]) -> list[str]:
    out = []
    for value in values:
        if value is None:
            out.append("")
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        elif isinstance(value, float) and value.is_integer():
            out.append(str(int(value)))
        else:
            out.append(str(value))
    return out
