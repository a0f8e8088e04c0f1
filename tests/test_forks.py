"""forks: fresh processes forked from one server, and work shared between this process and such a helper."""

from __future__ import annotations

import os
import sys
import textwrap
import time

import pytest

from lenet_edge.forks import Forks, share_work

WORKER = """
    import os
    import sys

    from lenet_edge.forks import serve


    def work(job):
        if job.get("crash"):
            os.abort()
        if job.get("fail"):
            raise ValueError("this job cannot be done")
        return {"value": job["value"] * 2, "pid": os.getpid()}


    if __name__ == "__main__":
        serve(work, sys.argv[1:])
"""


@pytest.fixture
def worker(tmp_path, monkeypatch) -> str:
    (tmp_path / "forks_worker.py").write_text(textwrap.dedent(WORKER))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    return "forks_worker"


def test_each_job_runs_in_a_process_of_its_own_and_a_crash_or_an_error_fails_that_job_only(worker, tmp_path):
    with Forks(worker, [], tmp_path) as forks:
        first = forks.run({"value": 1})
        crashed = forks.run({"crash": True})
        failed = forks.run({"fail": True})
        second = forks.run({"value": 2})
    assert first[0]["value"] == 2 and second[0]["value"] == 4
    assert first[0]["pid"] != second[0]["pid"] != os.getpid()  # a fresh child each time
    assert crashed[0] is None and "exit code -6" in crashed[1]  # SIGABRT, said
    assert failed == (None, "ValueError: this job cannot be done")  # the child's last line


def test_shared_work_runs_every_job_once_in_order_on_both_lanes(worker, tmp_path):
    jobs = [{"value": n} for n in range(12)]

    def here(job: dict) -> dict:
        time.sleep(0.1)  # the helper starts meanwhile and takes its share
        return {"value": job["value"] * 2, "pid": os.getpid()}

    results, first = share_work(jobs, here, lambda: Forks(worker, [], tmp_path), lambda: "mine")
    assert [result["value"] for result, _ in results] == [2 * n for n in range(12)]
    assert first == "mine"
    pids = {result["pid"] for result, _ in results}
    assert os.getpid() in pids and len(pids) > 1  # both lanes took jobs
    alone, _ = share_work(jobs, here, None)
    assert {result["pid"] for result, _ in alone} == {os.getpid()}
