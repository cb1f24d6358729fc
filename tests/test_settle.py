"""The lease, the settle and the bake around a failed or retried run. The last stage keeps the lease across a
failure Dagster may retry; settling a failed run (the failed/canceled sensors, seconds after it ended) leaves the env
alone once a later run of it exists, which owns what the env serves; a bake counts only the promote or abort asked
since it (or its shift) began."""

import contextlib
import functools
import threading
import time
from types import SimpleNamespace

import dagster as dg
import pytest

from coderemote_pipeline.actions.failure_report import settle_failed_run
from coderemote_pipeline.ledger.live import record_live
from coderemote_pipeline.ledger.records import LiveRecord
from coderemote_pipeline.rules import names
from coderemote_pipeline.rules.environments import load_policies
from coderemote_pipeline.rules.errors import InfrastructureError
from coderemote_pipeline.rules.failures import each_reason_once
from testkit.ledger_seed import outputs_of


def _run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus, release: str) -> dg.DagsterRun:
    run = dg.DagsterRun(job_name=names.REDEPLOY_JOB, status=status,
                        tags={names.ENV_TAG: "dev", names.RELEASE_TAG: release})  # fmt: skip
    instance.add_run(run)
    return run


def _never_read(env: str, outputs: dict[str, str]):
    raise AssertionError(f"the settle of a superseded run read {env}'s target")


def test_a_failed_run_with_a_later_run_of_its_env_is_not_put_back(tmp_path):
    with dg.DagsterInstance.ephemeral(tempdir=str(tmp_path)) as instance:
        record_live(instance, "dev", LiveRecord("main-aaaaaaa", "a" * 40, 1, "sha256:a", "main-aaaaaaa", "deployed",
                                                "r0", 0.0, outputs_of("dev")))  # fmt: skip
        failed = _run(instance, dg.DagsterRunStatus.FAILURE, "main-bbbbbbb")
        time.sleep(0.01)
        retry = _run(instance, dg.DagsterRunStatus.STARTED, "main-bbbbbbb")
        settled = settle_failed_run(instance, failed, load_policies()["dev"], _never_read)
    assert settled is not None and settled.whole is None and not settled.rolled_back
    said = f"not settled by this run: run {retry.run_id[:8]} (started), started after it, deploys dev now"
    assert said in settled.text


def _failed_live_env(instance: dg.DagsterInstance, status=dg.DagsterRunStatus.FAILURE) -> dg.DagsterRun:
    record_live(instance, "dev", LiveRecord("main-aaaaaaa", "a" * 40, 1, "sha256:a", "main-aaaaaaa", "deployed",
                                            "r0", 0.0, outputs_of("dev")))  # fmt: skip
    return _run(instance, status, "main-bbbbbbb")


def test_a_deploy_requested_while_a_failed_run_is_settled_waits_for_the_settle(tmp_path):
    """A sensor reaps a dead run and requests the next deploy at once: that deploy must not switch the env while
    the dead run's settle reads and puts back what it serves. The settle holds the env's lease, under the ended
    run's id, taken over from the run itself; the deploy waits, saying for what."""
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.ledger.lease_slot import describe_run
    from coderemote_pipeline.ledger.leases import Lease, LeaseLost

    with open_instance(tmp_path / "state") as instance:
        lease, said, got = Lease(instance, "dev"), [], threading.Event()
        failed = _failed_live_env(instance, dg.DagsterRunStatus.STARTED)
        lease.acquire(failed.run_id, log=print, describe=str)
        instance.report_run_failed(failed, "a stage failed")  # it keeps the lease for a retry of its step
        failed = instance.get_run_by_id(failed.run_id)

        def reading(env: str, outputs: dict[str, str]):
            assert lease.holder().run_id == failed.run_id and lease.holder().step.startswith("settle:")
            nxt = _run(instance, dg.DagsterRunStatus.STARTED, "main-ccccccc")  # created after the check for one
            describe = functools.partial(describe_run, instance)
            waiter = threading.Thread(target=lambda: (lease.acquire(nxt.run_id, said.append, describe), got.set()))
            waiter.start()
            time.sleep(1.5)
            assert not got.is_set() and said[0].startswith(f"waiting for the settle of ended run {failed.run_id[:8]}")
            with pytest.raises(LeaseLost):  # a step of the failed run that outlived it does not slip in either
                lease.acquire(failed.run_id, log=print, describe=str)
            raise InfrastructureError("the emulator is down")

        settled = settle_failed_run(instance, failed, load_policies()["dev"], reading)
        assert settled is not None and "what dev serves cannot be read now (the emulator is down)" in settled.text
        assert got.wait(10) and lease.holder().step == "deploy"


def test_a_settle_leaves_the_env_to_the_deploy_that_holds_its_lease(tmp_path):
    """That deploy switches the env whole, or fails and is settled in turn; another settle of this same run at work
    is left to finish (one verdict in the run's log)."""
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.ledger.leases import Lease

    with open_instance(tmp_path / "state") as instance:
        failed, lease = _failed_live_env(instance), Lease(instance, "dev")
        with lease.settling(failed.run_id, defer_to=lambda _: True) as holder:
            assert holder is None
            assert settle_failed_run(instance, failed, load_policies()["dev"], _never_read) is None
        working = _run(instance, dg.DagsterRunStatus.STARTED, "main-ccccccc")
        lease.acquire(working.run_id, log=print, describe=str)
        settled = settle_failed_run(instance, failed, load_policies()["dev"], _never_read)
        assert settled is not None and f"not settled by this run: run {working.run_id[:8]} (dev|main-ccccccc" in (
            settled.text
        )
        assert "holds dev's deploy lease, deploys it now and settles it" in settled.text
        assert lease.holder().run_id == working.run_id


def _waits_then_reads(instance, failed, hold_released_by) -> None:
    """Settle `failed` in a thread while something else holds the lease: it must wait, then read the env itself."""
    reads, verdicts = [], []

    def reading(env: str, outputs: dict[str, str]):
        reads.append(env)
        raise InfrastructureError("the emulator is down")

    settler = threading.Thread(target=lambda: verdicts.append(settle_failed_run(instance, failed,
                                                                                load_policies()["dev"], reading)))
    settler.start()
    time.sleep(1.5)
    assert reads == [] and settler.is_alive()
    hold_released_by()
    settler.join(10)
    assert reads == ["dev"] and "what dev serves cannot be read now" in verdicts[0].text


def _image_build_holding(instance: dg.DagsterInstance, lease) -> dg.DagsterRun:
    """A run that deploys nothing (api_image materialized alone from the UI), holding dev's lease."""
    image_only = dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED,
                               asset_selection=frozenset({names.key(names.API_IMAGE)}),
                               tags={names.ENV_TAG: "dev", names.RELEASE_TAG: "main-ccccccc"})  # fmt: skip
    instance.add_run(image_only)
    lease.acquire(image_only.run_id, log=print, describe=str)
    return image_only


def test_a_settle_waits_for_a_run_that_deploys_nothing_then_settles(tmp_path):
    """A stage materialized alone from the UI holds the lease but switches nothing, and nothing settles it: the
    failed run's settle must not leave the env to it."""
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.ledger.leases import Lease

    with open_instance(tmp_path / "state") as instance:
        failed, lease = _failed_live_env(instance), Lease(instance, "dev")
        image_only = _image_build_holding(instance, lease)
        _waits_then_reads(instance, failed, lambda: lease.release(image_only.run_id))


def test_a_settle_out_of_patience_is_tagged_waiting_and_settled_by_a_later_try(tmp_path):
    """A sensor cannot wait minutes for a UI build inside one evaluation: past its patience the run is tagged
    waiting and its log says for what, once however often it is tried; the try that gets the lease settles it and
    marks it settled."""
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.ledger.leases import Lease

    with open_instance(tmp_path / "state") as instance:
        failed, lease = _failed_live_env(instance), Lease(instance, "dev")
        image_only = _image_build_holding(instance, lease)
        for _ in range(2):
            failed = instance.get_run_by_id(failed.run_id)
            settled = settle_failed_run(instance, failed, load_policies()["dev"], _never_read, patience=0.2)
            assert settled.waiting and settled.whole is None
            assert settled.text.startswith(f"not settled yet: run {image_only.run_id[:8]} (dev|main-ccccccc")
        assert instance.get_run_by_id(failed.run_id).tags[names.SETTLE_TAG] == names.SETTLE_WAITING
        said = [e.message for e in instance.all_logs(failed.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
        assert said == [settled.text] and lease.holder().run_id == image_only.run_id
        _waits_then_reads(instance, instance.get_run_by_id(failed.run_id), lambda: lease.release(image_only.run_id))
        assert instance.get_run_by_id(failed.run_id).tags[names.SETTLE_TAG] == names.SETTLE_DONE
        assert lease.holder() is None


def test_a_retry_that_inherits_the_waiting_tag_is_not_settled_while_it_runs(tmp_path):
    """A UI re-execution copies its parent's tags, `coderemote/settle=waiting` included: the waiting-settles sensor
    must not settle (nor take the lease of) a run that has not ended."""
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.ledger.leases import Lease
    from coderemote_pipeline.sensors.waiting_settles import settle_waiting_runs

    with open_instance(tmp_path / "state") as instance:
        record_live(instance, "dev", LiveRecord("main-aaaaaaa", "a" * 40, 1, "sha256:a", "main-aaaaaaa", "deployed",
                                                "r0", 0.0, outputs_of("dev")))  # fmt: skip
        retry = dg.DagsterRun(job_name=names.REDEPLOY_JOB, status=dg.DagsterRunStatus.STARTED,
                              tags={names.ENV_TAG: "dev", names.RELEASE_TAG: "main-bbbbbbb",
                                    names.SETTLE_TAG: names.SETTLE_WAITING})  # fmt: skip
        instance.add_run(retry)
        Lease(instance, "dev").acquire(retry.run_id, log=print, describe=str)
        assert settle_failed_run(instance, retry, load_policies()["dev"], _never_read) is None
        assert settle_waiting_runs(instance, None, None, None, None) == ([], 0)
        assert Lease(instance, "dev").holder().run_id == retry.run_id and not instance.all_logs(retry.run_id)


def test_one_waiting_settle_that_raises_does_not_keep_the_others_waiting(tmp_path):
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.sensors.waiting_settles import settle_waiting_runs

    class _Environments:
        def policy(self, env: str):
            if env == "gone":
                raise KeyError(f"no environment {env!r} in environments.yaml")
            return load_policies()[env]

    with open_instance(tmp_path / "state") as instance:
        runs = []
        for env in ("gone", "dev"):
            run = dg.DagsterRun(job_name=names.REDEPLOY_JOB, status=dg.DagsterRunStatus.FAILURE,
                                tags={names.ENV_TAG: env, names.RELEASE_TAG: "main-bbbbbbb",
                                      names.SETTLE_TAG: names.SETTLE_WAITING})  # fmt: skip
            instance.add_run(run)
            runs.append(run)
            time.sleep(0.01)
        warned = []
        log = SimpleNamespace(info=print, warning=warned.append)
        app = SimpleNamespace(layout=None)
        done, waiting = settle_waiting_runs(instance, log, None, app, _Environments())
        assert (done, waiting) == ([runs[1].run_id], 2)  # dev: nothing ever deployed from here, said so
        gone = instance.get_run_by_id(runs[0].run_id)
        assert gone.tags[names.SETTLE_TAG] == names.SETTLE_FAILED and "settle failed: KeyError" in warned[0]
        said = [e.message for e in instance.all_logs(gone.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
        assert said and "coderemote-pipeline status gone" in said[0]
        assert settle_waiting_runs(instance, log, None, app, _Environments()) == ([], 0)


def test_a_settle_waits_for_another_runs_settle_then_settles(tmp_path):
    """Two failed runs settled at once (the sensor's and a CLI's): neither leaves the env to the other unread."""
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.ledger.leases import Lease

    with open_instance(tmp_path / "state") as instance:
        older, lease = _failed_live_env(instance), Lease(instance, "dev")
        newer = _run(instance, dg.DagsterRunStatus.FAILURE, "main-ccccccc")
        with contextlib.ExitStack() as other:
            assert other.enter_context(lease.settling(older.run_id, defer_to=lambda _: True)) is None
            _waits_then_reads(instance, newer, other.close)
        later = settle_failed_run(instance, older, load_policies()["dev"], _never_read)
        assert f"run {newer.run_id[:8]} (failure), started after it, is settled in its place" in later.text


class _Context:
    """What a stage's wrapper reads of its step context: the run, its partition, the instance and a log."""

    def __init__(self, instance: dg.DagsterInstance, run: dg.DagsterRun):
        self.instance, self.run, self.partition_key = instance, run, "dev|main-bbbbbbb"
        self.log = SimpleNamespace(info=lambda _: None, warning=lambda _: None)


def test_smoke_result_keeps_the_lease_when_it_fails_and_frees_it_when_done(tmp_path):
    """A failed step may be retried by Dagster: had the last stage freed the lease on its way out, another deploy
    could take the env in the gap before the retry judged it. A run that ends failed frees it as it ends."""
    from coderemote_pipeline.assets.stage import deploy_stage
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.ledger.leases import Lease

    outcomes = iter([RuntimeError("the bake's metrics could not be read (throttled)"), None])

    def smoke_result(context):
        if (failure := next(outcomes)) is not None:
            raise failure
        return "passed"

    with open_instance(tmp_path / "state") as instance:
        run = _run(instance, dg.DagsterRunStatus.STARTED, "main-bbbbbbb")
        stage = deploy_stage(smoke_result)
        with pytest.raises((RuntimeError, dg.Failure), match="throttled"):
            stage(_Context(instance, run))
        assert Lease(instance, "dev").holder().run_id == run.run_id  # held across the failure, for the retry
        assert stage(_Context(instance, run)) == "passed"
        assert Lease(instance, "dev").holder() is None


def test_a_bake_counts_only_the_promote_or_abort_asked_for_it(tmp_path):
    """A bake whose shift state is another run's (a retry of smoke_result) counts requests from its own start: an
    abort asked for an earlier shift, read from 0, halted it at once (and an old promote skipped it)."""
    from coderemote_pipeline.assets.bake import controls_since
    from coderemote_pipeline.ledger import shifts

    with dg.DagsterInstance.ephemeral(tempdir=str(tmp_path)) as instance:
        shifts.ask(instance, "prod", shifts.ABORT, "alice", "an earlier canary")
        time.sleep(0.01)
        earlier = shifts.ShiftState("run-1", "v1.0.0", "3", "2", "v0.9.0", {"3": 100}, 1, "done")
        since = controls_since(earlier, "run-2", time.time())
        assert shifts.asked(instance, "prod", since) is None
        shifts.ask(instance, "prod", shifts.PROMOTE, "bob")
        assert shifts.asked(instance, "prod", since).action == shifts.PROMOTE
        mine = shifts.ShiftState("run-2", "v1.0.0", "3", "2", "v0.9.0", {"3": 100}, 1, "bake", started=since - 60)
        assert controls_since(mine, "run-2", time.time()) == since - 60  # its own shift: from the shift's start


def test_two_settles_that_find_a_dead_settle_never_both_settle(tmp_path, monkeypatch):
    """A settle of F was killed, its lease silent. Two settles of F judge it gone at once: the first frees it and
    takes the lease, and the second, freeing what it judged, must not free the first's (each settle's step is its
    own), so it finds the first at work and leaves F to it."""
    import json

    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.ledger.leases import Lease

    judged, go, bodies = threading.Event(), threading.Event(), []
    real = Lease._stale

    def second_pauses_once_judged(self, holder):
        why = real(self, holder)
        if why and threading.current_thread().name == "second" and not judged.is_set():
            judged.set()
            go.wait(10)
        return why

    monkeypatch.setattr(Lease, "_stale", second_pauses_once_judged)

    def reading(env: str, outputs: dict[str, str]):
        bodies.append(threading.current_thread().name)
        time.sleep(0.5)
        raise InfrastructureError("the emulator is down")

    with open_instance(tmp_path / "state") as instance:
        failed = _failed_live_env(instance)
        Lease(instance, "dev")._slot.ensure()
        assert Lease(instance, "dev")._slot.claim(failed.run_id, "settle:killed")
        dead = {"run_id": failed.run_id, "step": "settle:killed", "at": time.time() - 100}
        instance.run_storage.set_cursor_values({Lease(instance, "dev").heart.key: json.dumps(dead)})
        verdicts = {}

        def settle() -> None:
            name = threading.current_thread().name
            verdicts[name] = settle_failed_run(instance, failed, load_policies()["dev"], reading)

        second = threading.Thread(target=settle, name="second")
        second.start()
        assert judged.wait(10)
        first = threading.Thread(target=settle, name="first")
        first.start()
        time.sleep(0.2)  # the first has freed the dead settle and is reading
        go.set()
        first.join(10)
        second.join(10)
        assert bodies == ["first"] and verdicts["second"] is None
        assert Lease(instance, "dev").holder() is None


def test_a_deploy_command_that_waits_shows_the_verdict_of_the_sensor_that_settled_first(tmp_path, monkeypatch):
    """The CLI says what it waits for and waits; when the lease frees, the waiting-settles sensor (another process)
    may take it first. The command must then print that sensor's verdict, neither settle the run a second time nor
    hang."""
    from coderemote_pipeline.actions.failure_report import MARKER
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.ledger.leases import Lease
    from coderemote_pipeline.rules.settings import Settings
    from coderemote_pipeline.usecases import launch

    monkeypatch.setattr(launch, "SAY_WAIT_AFTER_S", 0.2)
    verdict = "dev serves main-aaaaaaa (alias version 1, site main-aaaaaaa) as one whole release"
    with open_instance(tmp_path / "state") as instance:
        failed, lease = _failed_live_env(instance), Lease(instance, "dev")
        image_only = _image_build_holding(instance, lease)
        said, sensor_holds = [], threading.Event()

        def sensor_settles() -> None:
            with lease.settling(failed.run_id, defer_to=lambda _: True) as holder:
                assert holder is None
                sensor_holds.set()
                time.sleep(1.2)  # the command polls meanwhile and finds this run's own settle at work
                instance.report_engine_event(f"{MARKER} {verdict}", failed)

        sensor = threading.Thread(target=sensor_settles)

        def echo(line: str) -> None:  # said once the command gave up its first try: the build ends, the sensor wins
            said.append(line)
            lease.release(image_only.run_id)
            sensor.start()
            assert sensor_holds.wait(10)

        # No local stack runs: had the command read dev itself, its verdict would say dev cannot be read.
        settings = Settings("local", tmp_path / "unused", "unused", None)
        deploy = SimpleNamespace(policy=load_policies()["dev"])
        text = launch._settle(instance, failed.run_id, deploy, settings, "a stage failed", echo)
        sensor.join(10)
        logged = [e.message for e in instance.all_logs(failed.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
    assert len(said) == 1 and said[0].startswith(f"not settled yet: run {image_only.run_id[:8]} (dev|main-ccccccc")
    assert said[0].endswith("dev is settled as soon as it is free (this command waits for it)")
    assert text == f"a stage failed. {verdict}"
    assert [m for m in logged if m.startswith(MARKER)] == [f"{MARKER} {verdict}"]
    assert lease.holder() is None


def test_a_second_ctrl_c_during_the_settle_leaves_the_run_to_the_waiting_settles_sensor(tmp_path, monkeypatch):
    """helper-34: a second Ctrl-C while the command settled its stopped run left no verdict and no mark, so nothing
    settled it later (a stop in the switch can leave the env half switched)."""
    from coderemote_pipeline.ledger.instance import open_instance
    from coderemote_pipeline.rules.settings import Settings
    from coderemote_pipeline.usecases import launch

    def stopped_again(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(launch, "settle_failed_run", stopped_again)
    said: list[str] = []
    with open_instance(tmp_path / "state") as instance:
        failed = _failed_live_env(instance)
        settings = Settings("local", tmp_path / "unused", "unused", None)
        deploy = SimpleNamespace(policy=load_policies()["dev"], env="dev")
        with pytest.raises(KeyboardInterrupt):
            launch._settle(instance, failed.run_id, deploy, settings, "interrupted", said.append)
        assert instance.get_run_by_id(failed.run_id).tags[names.SETTLE_TAG] == names.SETTLE_WAITING
    assert said == [f"stopped again while dev was being settled: run {failed.run_id[:8]} is left marked to settle "
                    "(the daemon's waiting-settles sensor does it: `coderemote-pipeline ui`)"]  # fmt: skip


def test_a_reason_met_by_both_branches_is_said_once():
    """An emulator that went down fails both branches with one message: the failure line says it once."""
    down = "AWS emulator (moto) at http://127.0.0.1:5000 is not answering: start it with `coderemote-pipeline local up`"
    said = each_reason_once([("api_image", down), ("frontend_bundle", down), ("frontend_checks", "lint failed")])
    assert said == f"api_image, frontend_bundle: {down}; frontend_checks: lint failed"
