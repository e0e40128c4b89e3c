"""Build workers on other hosts through RQ (Redis Queue).

The executor is a rules setting: ``[build] executor = "local"`` (default) or
``"rq"``. A build job carries everything a worker needs without a shared file
system: an archive of the generated package, the kernel (its headers must be
at the same path on the worker), the build commands, timeouts and limits.
The worker builds in the same sandbox and returns status, diagnostics and
the log; results are copied into the bot's state at once. A job lost with a
dead worker is retried (RQ's Retry, re-queued from its abandoned registry).

Workers: ``rq worker --url redis://HOST:6379/0 bpbot-builds`` with bpbot
installed (see deploy/bpbot-worker@.service).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import socket
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bot.config.rules import Kernel, Rules
from bot.sandbox import bwrap as sandbox
from bot.sandbox import cleanup
from bot.sandbox import limits as lim
from bot.testrun import build
from bot.testrun.diagnostics import Diagnostic
from bot.testrun.steps import INFRA, StepResult

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2


def pack(directory: Path) -> bytes:
    """The generated package (written by the sandbox: untrusted). A symlink is
    packed as a link, never as what it points at (/etc/shadow, the state dir);
    devices and fifos are left out."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1, dereference=False) as tar:
        tar.add(directory, arcname=".", filter=_plain)
    return buf.getvalue()


def _plain(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return member if member.isfile() or member.isdir() or member.issym() else None


def unpack(data: bytes, directory: Path) -> None:
    """No absolute paths, devices, nor links out of ``directory``: such members
    are skipped (logged), so a hostile package builds without them."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(directory, filter=_safe_member)


def _safe_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError as exc:
        log.warning("not unpacking %s: %s", member.name, exc)
        return None


def build_job(payload: dict) -> dict:
    """Runs on the worker: unpack, build in the sandbox, return the result."""

    root = Path(os.environ.get("BPBOT_WORKER_DIR", Path(tempfile.gettempdir()) / "bpbot-worker"))
    worker = _worker_name()
    # Stable per worker and kernel (RQ forks a new process per job), so ccache hits.
    slot = root / worker / payload["kernel"]["name"]
    out, build_dir = slot / "out", slot / "build"
    cleanup.fresh_dir(out)  # CleanupError: the job fails, an infra-error for the daemon
    unpack(payload["archive"], out)
    spec = build.BuildSpec(
        build_commands=payload["build_commands"], build_timeout=payload["build_timeout"],
        output_cap=payload["output_cap"], ccache=payload["ccache"], state_dir=root,
        # {jobs}: the worker's cores, shared by the workers running on this host.
        build_jobs=int(os.environ.get("BPBOT_WORKERS_PER_HOST", "1")))
    kernel = Kernel(payload["kernel"]["name"], payload["kernel"]["version"],
                    Path(payload["kernel"]["path"]))
    # The daemon's limits; other workers' slots under the worker root are hidden.
    box = sandbox.Sandbox.detect(payload["sandbox"], [root],
                                 limits=lim.Limits(**payload["limits"]))
    log_file = slot / "build.log"
    step = build.build_one(spec, box, kernel, out, build_dir, log_file,
                           trusted=payload.get("trusted", False))
    text = log_file.read_text(encoding="utf-8", errors="replace") if log_file.exists() else ""
    return dict(status=step.status, detail=step.detail, duration=step.duration,
                diagnostics=[d.to_dict() for d in step.diagnostics], tail=step.tail, log=text,
                worker=f"{socket.gethostname()}:{worker}")


def _worker_name() -> str:
    from rq import get_current_job

    job = get_current_job()
    name = getattr(job, "worker_name", None) if job is not None else None
    return name or f"pid{os.getpid()}"


def build_all(rules: Rules, kernels: list[Kernel], output: Path, log_dir: Path,
              progress: Callable[[str], None] | None = None,
              trusted: bool = False) -> list[StepResult]:
    """Enqueue one job per kernel and wait for all of them."""
    from redis import Redis
    from rq import Queue, Retry

    # Timeouts: a half-open connection must not hang the daemon.
    conn = Redis.from_url(rules.rq_url, socket_timeout=30, socket_connect_timeout=10)
    queue = Queue(rules.rq_queue, connection=conn)
    archive = pack(output)
    started = time.time()
    jobs = {}
    for k in kernels:
        payload = dict(kernel=dict(name=k.name, version=k.version, path=str(k.path)),
                       archive=archive, build_commands=rules.build_commands,
                       build_timeout=rules.build_timeout, output_cap=rules.output_cap,
                       ccache=rules.ccache, sandbox=rules.sandbox,
                       limits=dataclasses.asdict(lim.from_rules(rules)), trusted=trusted)
        jobs[k.name] = queue.enqueue(
            build_job, payload, job_timeout=rules.build_timeout + 120,
            result_ttl=rules.rq_result_ttl, failure_ttl=rules.rq_result_ttl,
            retry=Retry(max=2), description=f"bpbot build on {k.name}")
    deadline = time.monotonic() + 3 * (rules.build_timeout + 120)
    results: dict[str, StepResult] = {}
    while len(results) < len(jobs):
        for name, job in jobs.items():
            if name in results:
                continue
            job.refresh()  # status and retries_left (get_status alone keeps a stale count)
            status = job.get_status(refresh=False)
            if status == "finished":
                results[name] = _step(name, job.return_value(), log_dir, started)
            elif status in ("failed", "stopped", "canceled") and not job.retries_left:
                word = getattr(status, "value", status)
                results[name] = StepResult("build", INFRA, kernel=name, started_at=started,
                                           detail=f"worker job {word} after its retries")
            if name in results and progress:
                progress(f"build {name}: {results[name].status} ({results[name].detail})")
        if time.monotonic() > deadline:
            for name in jobs:
                # No worker, not the series: an infra-error is never blamed or cached.
                results.setdefault(name, StepResult("build", INFRA, kernel=name,
                                                    started_at=started,
                                                    detail="no worker finished the job in time"))
            break
        time.sleep(POLL_SECONDS)
    return [results[k.name] for k in kernels]


def _step(kernel: str, result: dict, log_dir: Path, started: float) -> StepResult:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"build-{kernel}.log"
    log_file.write_text(f"# built on {result['worker']}\n{result['log']}", encoding="utf-8")
    return StepResult("build", result["status"], kernel=kernel, detail=result["detail"],
                      diagnostics=[Diagnostic.from_dict(d) for d in result["diagnostics"]],
                      log_path=str(log_file), duration=result["duration"], started_at=started,
                      tail=result["tail"])
