"""Waits that used to be unbounded, each shown to end (issue 25's "leaks")."""

import asyncio
import threading

import pytest

from glasses_firmware.drivers.errors import GlassesError
from glasses_firmware.firmware.offload.router import TaskStream
from glasses_firmware.firmware.worker.process import LANES, Worker


def test_an_offloaded_request_that_crashes_ends_its_stream_with_an_error():
    async def broken(stream):
        stream.put("half an answer")
        raise KeyError("choices")          # a server reply of the wrong shape, unhandled

    async def main():
        stream = TaskStream(broken)
        got = []
        with pytest.raises(GlassesError, match="KeyError"):
            async for piece in stream:
                got.append(piece)
        return got

    assert asyncio.run(asyncio.wait_for(main(), 5)) == ["half an answer"]


def test_a_compute_lane_sees_a_stop_that_came_without_a_notify(tmp_path):
    worker = Worker(conn=None, models_dir=tmp_path, threads=1, heartbeat_s=0.1)
    lane = threading.Thread(target=worker._compute, args=(LANES[0],), daemon=True)
    lane.start()
    worker.stopping.set()                   # what the "stop" message does, no cond.notify
    lane.join(timeout=5)
    assert not lane.is_alive()
