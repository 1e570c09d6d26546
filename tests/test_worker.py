"""The supervised inference worker: protocol, streaming, cancel, crash, hang, crash loop.

Runs the real worker process on the tiny random-weight models `glasses models build-test`
makes (cached in models/test-build, which ignores itself in git).
"""

import asyncio
import os
import signal
import time

import numpy as np
import pytest

from glasses_firmware.firmware.worker import (InferenceClient, RemoteError, RequestCancelled, SupervisorSettings,
                             WorkerCrashed, WorkerDegraded)
from glasses_firmware.firmware.worker import protocol as P
from glasses_firmware.firmware.worker.supervisor import TRANSITIONS, Supervisor, diagram
from glasses_firmware.models import build_test

pytestmark = pytest.mark.timeout(120)
FAST = SupervisorSettings(heartbeat_interval_s=0.2, heartbeat_timeout_s=1.5, start_timeout_s=60,
                          backoff_s=(0.1, 0.2), crash_loop_count=3, crash_loop_window_s=60)


@pytest.fixture(scope="session")
def models_dir():
    build_test.build(build_test.DEFAULT_OUT, log=lambda *a: None)
    return build_test.DEFAULT_OUT


def run(coro, timeout_s=90):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def started(models_dir, settings=FAST) -> InferenceClient:
    client = InferenceClient(models_dir, threads=1, settings=settings)
    await client.start(timeout_s=60)
    return client


async def wait_state(client, states, timeout_s=10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while client.state not in states:
        assert time.monotonic() < deadline, f"worker still {client.state}, wanted {states}"
        await asyncio.sleep(0.05)
    return client.state


def test_protocol_round_trip():
    audio = np.linspace(-1, 1, 1600, dtype=np.float32)
    shm, ref = P.share(audio)
    try:
        req = P.Request(7, "transcribe", 123.5, P.PRIORITY_BACKGROUND, {"lang": "en"}, {"audio": ref})
        back = P.decode(P.encode(req))["request"]
        assert back == req
        assert np.array_equal(P.fetch(back.tensors["audio"]), audio)
        for msg in ({"op": "item", "id": 7, "value": "hel"}, {"op": "hb", "t": 1.0},
                    {"op": "error", "id": 7, "kind": "ModelMissing", "message": "x"}):
            assert P.decode(P.encode(msg)) == msg
    finally:
        P.release(shm)
    with pytest.raises(P.ProtocolError, match="not JSON"):
        P.decode(b"\x80garbage")
    with pytest.raises(P.ProtocolError, match="kind 'dance'"):
        P.decode(b'{"op":"request","id":1,"kind":"dance","deadline_s":1}')
    with pytest.raises(P.ProtocolError, match="lacks id"):
        P.decode(b'{"op":"done"}')
    with pytest.raises(P.ProtocolError, match="gone"):
        P.fetch(ref)  # released: the block no longer exists


def test_every_role_answers_through_the_worker(models_dir):
    async def main():
        client = await started(models_dir)
        try:
            assert client.state == "ready"
            silence = np.zeros(16000, np.float32)
            probs = await client.vad(silence)
            assert probs.shape == (31,) and probs.max() < 0.5
            assert set(await client.wake(silence)) == {"hey_jarvis"}  # only the selected word
            stream = client.transcribe_stream(np.random.default_rng(0).standard_normal(16000) * 0.1)
            partials = [p async for p in stream]
            assert stream.result["text"] == (partials[-1] if partials else "")
            audio, rate = await client.tts("hello")
            assert rate == 16000 and audio.dtype == np.float32 and len(audio) > 0
            names = {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}
            pieces = [p async for p in client.generate("hi", system="Be brief.", max_tokens=5)]
            assert 0 < len(pieces) <= 5
            await asyncio.sleep(0.1)
            # Shared-memory blocks of finished requests are unlinked, not left behind.
            assert {n for n in os.listdir("/dev/shm") if n.startswith("psm_")} <= names
        finally:
            await client.stop()
        assert client.state == "stopped"
    run(main())


def test_vad_and_wake_stream_across_requests(models_dir):
    async def main():
        client = await started(models_dir)
        try:
            speechless = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.05
            whole = await client.vad(speechless, reset=True)
            await client.vad(np.zeros(0, np.float32), reset=True)
            # Uneven pieces: samples short of a 32 ms chunk wait for the next request.
            pieces = [await client.vad(speechless[i:i + 700]) for i in range(0, 16000, 700)]
            assert np.allclose(np.concatenate(pieces), whole, atol=1e-6)
            assert len(whole) == 31
            once = await client.wake(speechless, reset=True)
            await client.wake(np.zeros(0, np.float32), reset=True)
            streamed = [await client.wake(speechless[i:i + 1280]) for i in range(0, 16000, 1280)]
            assert max(s["hey_jarvis"] for s in streamed) == pytest.approx(once["hey_jarvis"], abs=1e-6)
        finally:
            await client.stop()
    run(main())


def test_only_the_chosen_wake_words_run(models_dir):
    async def main():
        client = InferenceClient(models_dir, threads=1, settings=FAST, wake_words=("okay_nabu",))
        await client.start(timeout_s=60)
        try:
            chunk = np.zeros(1280, np.float32)
            assert set(await client.wake(chunk)) == {"okay_nabu"}
            assert set(await client.wake(chunk, models=("hey_jarvis", "okay_nabu"))) == {
                "hey_jarvis", "okay_nabu"}
            with pytest.raises(RemoteError, match="'alexa' is not one of the wake model's words"):
                await client.wake(chunk, models=("alexa",))
        finally:
            await client.stop()
    run(main())


def test_wake_and_vad_answer_while_the_llm_generates(models_dir):
    async def main():
        client = await started(models_dir)
        try:
            chunk = np.zeros(1280, np.float32)
            await client.wake(chunk)   # loaded before the LLM occupies the main lane
            long = client.generate("tell me everything", max_tokens=1900)
            it = long.__aiter__()
            await it.__anext__()
            await asyncio.wait_for(client.wake(chunk), 2.0)
            await asyncio.wait_for(client.vad(chunk), 2.0)
            assert not long.finished   # served beside the generation, not after it
            long.cancel()
            try:                       # (cancelling itself is tested on its own above)
                await long.wait()
            except RequestCancelled:
                pass
        finally:
            await client.stop()
    run(main())


def test_system_prompt_kv_cache_is_reused(models_dir):
    async def main():
        client = await started(models_dir)
        try:
            system = "You are the assistant of a pair of glasses. " * 8
            first = client.generate("what time is it", system=system, max_tokens=3)
            await first.wait()
            second = client.generate("take a photo", system=system, max_tokens=3)
            await second.wait()
            # Only the new user turn is prefilled; the system prompt's keys/values are kept.
            assert second.result["prefill_tokens"] < first.result["prefill_tokens"] / 2
        finally:
            await client.stop()
    run(main())


def test_cancel_stops_generation(models_dir):
    async def main():
        client = await started(models_dir)
        try:
            stream = client.generate("tell me a long story", max_tokens=1900)
            got = []
            with pytest.raises(RequestCancelled, match="acknowledged"):
                async for piece in stream:
                    got.append(piece)
                    if len(got) == 1:
                        client.cancel(stream.id)
            assert len(got) < 1900
            await asyncio.sleep(0.3)
            assert client.stray_messages == 0  # nothing of it arrived after the acknowledgement
            assert len([p async for p in client.generate("next", max_tokens=3)]) > 0
        finally:
            await client.stop()
    run(main())


def test_kill_9_mid_request_fails_it_clearly_and_the_next_succeeds(models_dir):
    async def main():
        client = await started(models_dir)
        try:
            first_pid = client.worker_pid
            stream = client.generate("go on", max_tokens=1900)
            with pytest.raises(WorkerCrashed, match=r"request \d+ \(generate\) failed: the inference "
                                                    r"worker was killed by SIGKILL"):
                killed = False
                async for _ in stream:  # pieces already in flight may still arrive: kill once
                    if not killed:
                        os.kill(first_pid, signal.SIGKILL)
                        killed = True
            assert client.state in ("restarting", "ready")
            pieces = [p async for p in client.generate("again", max_tokens=3)]
            assert pieces and client.worker_pid != first_pid and client.state == "ready"
        finally:
            await client.stop()
    run(main())


def test_sigstopped_worker_is_detected_by_the_heartbeat(models_dir):
    async def main():
        client = await started(models_dir)
        try:
            pid = client.worker_pid
            os.kill(pid, signal.SIGSTOP)
            t0 = time.monotonic()
            with pytest.raises(WorkerCrashed, match="no heartbeat"):
                await client.ping(timeout_s=30)
            assert time.monotonic() - t0 < FAST.heartbeat_timeout_s + 2
            await wait_state(client, ("ready",), timeout_s=30)
            assert client.worker_pid != pid
            assert (await client.ping())["loaded"] == []
        finally:
            await client.stop()
    run(main())


def test_crash_loop_ends_degraded_not_in_endless_restarts(models_dir):
    async def main():
        client = await started(models_dir, SupervisorSettings(
            heartbeat_interval_s=0.2, heartbeat_timeout_s=2, backoff_s=(0.1,), crash_loop_count=3))
        try:
            for _ in range(3):
                await wait_state(client, ("ready",), timeout_s=30)
                os.kill(client.worker_pid, signal.SIGKILL)
                await wait_state(client, ("restarting", "degraded"))
            assert await wait_state(client, ("degraded",)) == "degraded"
            assert "3 failures" in client.supervisor.reason
            with pytest.raises(WorkerDegraded, match="degraded"):
                await client.ping()
            await asyncio.sleep(0.5)
            assert client.state == "degraded" and client.worker_pid is None
            await client.start()  # an explicit start is the way out
            assert client.state == "ready"
        finally:
            await client.stop()
    run(main())


def test_higher_priority_runs_first(models_dir):
    async def main():
        client = await started(models_dir)
        try:
            blocker = client.generate("first", max_tokens=1900)   # occupies the compute thread
            it = blocker.__aiter__()
            await it.__anext__()
            order = []

            async def one(stream, name):
                await stream.wait()
                order.append(name)
            background = client.generate("later", max_tokens=2, priority=P.PRIORITY_BACKGROUND)
            urgent = client.generate("now", max_tokens=2, priority=P.PRIORITY_INTERACTIVE)
            tasks = [asyncio.create_task(one(background, "background"))]
            await asyncio.sleep(0.05)
            tasks.append(asyncio.create_task(one(urgent, "urgent")))
            await asyncio.sleep(0.05)
            blocker.cancel()  # both are queued behind it now
            with pytest.raises(RequestCancelled):
                await blocker.wait()
            await asyncio.gather(*tasks)
            assert order == ["urgent", "background"]
        finally:
            await client.stop()
    run(main())


def test_state_diagram_comes_from_the_table():
    text = diagram()
    assert text.startswith("stateDiagram-v2\n    [*] --> not_started\n")
    for (src, event), dst in TRANSITIONS.items():
        assert f"    {src} --> {dst} : {event}" in text
    assert len(text.splitlines()) == 2 + len(TRANSITIONS)


def test_every_state_change_goes_through_the_table():
    async def main():
        sup = Supervisor(None, threads=1, settings=FAST, on_message=None, on_failure=None)
        assert sup.state == "not_started" and sup.ready_at is None
        with pytest.raises(RuntimeError, match="event 'up' is not allowed in state 'not_started'"):
            sup.machine.fire("up", "a ready message before any start")
        assert sup.state == "not_started"
        sup.machine.fire("start", "asked to start")
        sup.machine.fire("up", "worker pid 1 is ready")
        assert sup.ready.is_set() and sup.ready_at is not None
        sup.machine.fire("fail", "worker exited with code 1; restarting in 0.1 s")
        assert not sup.ready.is_set()
        changed = sup.changed
        sup.machine.fire("fail", "worker exited with code 1; restarting in 0.2 s")
        # Another failure while restarting stays there but is told: waiters see the new reason.
        assert changed.is_set() and sup.reason.endswith("0.2 s")
        sup.machine.fire("give_up", "3 failures within 60 s: not restarting")
        assert isinstance(sup.unavailable_error(), WorkerDegraded)
        assert sup.machine.history == [
            ("not_started", "start", "starting"), ("starting", "up", "ready"),
            ("ready", "fail", "restarting"), ("restarting", "fail", "restarting"),
            ("restarting", "give_up", "degraded")]
    run(main())
