"""`musicgen batch --ray`: the batches spread over a Ray cluster, one actor per worker holding its
models (one per GPU where the cluster has GPUs, else one per machine or per `--workers`, sharing the
CPUs). Each actor gets one batch at a time; its audio comes back to the command, which writes it
(batch.py: no shared disk needed). An actor that dies takes only its batch in flight with it: that
batch goes to another actor, and since only a returned batch is written, each item is written once.

Ray is an optional extra (`pip install 'musicgen-cli[ray]'`); every node of a cluster needs
musicgen-cli installed (and the models, or the network to fetch them)."""

from __future__ import annotations

import dataclasses
import logging
from collections import deque

from .errors import MusicgenError
from .files import one_line


def require() -> None:
    """One line saying how to get Ray, when it is missing."""
    try:
        import ray  # noqa: F401
    except ImportError:
        from .batch import RAY_HINT

        raise MusicgenError(RAY_HINT) from None


def connect(address: str) -> bool:
    """Join the cluster at `address`, or start one here for `local`. False when this program was
    connected already (a notebook, a test): the connection is then left as it was."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False, "include_dashboard": False}
    try:
        ray.init(address=None if address == "local" else address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise MusicgenError(f"cannot reach a Ray cluster at {address}: {one_line(e, 200)}") from e
    return True


def start_workers(workers: int | None, settings):
    """The actors: (one per GPU, or `workers`) on GPUs; else `workers` (default: one per machine)
    sharing the cluster's CPUs, each with that many torch threads."""
    import ray

    from .batch_worker import Worker

    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if gpus:
        count, options = workers or gpus, {"num_gpus": 1, "num_cpus": 1}
    else:
        count = workers or max(1, sum(1 for node in ray.nodes() if node.get("Alive")))
        options = {"num_cpus": max(1, cpus // count)}
        settings = dataclasses.replace(settings, threads=options["num_cpus"])
    remote = ray.remote(max_restarts=0)(Worker)
    return [remote.options(name=f"musicgen-batch-{i}", **options).remote(settings) for i in range(count)]


def run(address: str, workers: int | None, settings, tasks: list[tuple], job) -> None:
    """Every task on the cluster; results delivered to `job` (batch.Job) as they come back."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    started = connect(address)
    actors = []
    try:
        actors = start_workers(workers, settings)
        queue, busy = deque(tasks), {}  # busy: result ref -> (actor, (task, names))

        def feed(actor) -> None:  # the next task with its melody read, to an idle actor
            while queue:
                task, names, melody = queue.popleft()
                if (ready := job.ready(task, names, melody)) is not None:
                    busy[actor.run.remote(ready)] = (actor, (ready, names))
                    return

        with job.bar(sum(len(names) for _, names, _ in tasks)):
            for actor in actors:
                feed(actor)
            while busy:
                [ref], _ = ray.wait(list(busy), num_returns=1)
                actor, (task, names) = busy.pop(ref)
                try:
                    results = ray.get(ref)
                except RayActorError as e:  # the worker died: its batch goes to another, nothing was written
                    actors.remove(actor)
                    queue.appendleft((task, names, None))
                    job.retried += 1
                    if not actors:
                        raise MusicgenError(f"every Ray worker died (the last: {one_line(e, 200)})") from e
                    for idle in [a for a in actors if all(a is not b for b, _ in busy.values())]:
                        feed(idle)
                    continue
                except RayTaskError as e:  # not the items' fault alone (Worker.run records those): fail them
                    job.fail(names, one_line(e.cause if e.cause is not None else e, 500))
                else:
                    job.deliver(results, names)
                feed(actor)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
