"""The worker fault campaign, small: SIGKILLs during every kind of request, SIGSTOP, crash loop.

The whole firmware on the sim board with the random-weight test models, driven through its
console as a user would (firmware/tools/soak.py; `glasses soak --kills 100` is the long run).
"""

import pytest

from glasses_firmware.firmware.tools import soak

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]   # one campaign for the module


@pytest.fixture(scope="module")
def campaign(test_models):
    return soak.run_kills(test_models, kills=12, seconds=180, seed=3, progress=lambda line: None)


def test_every_request_is_answered_or_refused_within_two_seconds_of_a_kill(campaign):
    assert not campaign["stopped"], campaign["stopped"]
    assert campaign["kills"] >= 12
    assert campaign["lost"] == [], soak.summary(campaign)
    assert campaign["over_limit"] == [], soak.summary(campaign)
    assert set(campaign["outcomes"]) <= {"answered", "error", "apology"}
    assert campaign["in_flight_at_kill"] >= 1      # some kills landed mid-request


def test_a_killed_worker_is_ready_again(campaign):
    for name in ("model", "voice"):
        back = campaign["back_s"][name]
        assert back["n"] >= 1 and back["max"] < soak.BACK_LIMIT_S, (name, back)


def test_sigstop_is_caught_by_the_heartbeat_and_the_worker_recovers(campaign):
    s = campaign["sigstop"]
    assert s["detected_s"] is not None and s["detected_s"] < 15, s   # heartbeat timeout 10 s
    assert "no heartbeat" in s["question"], s        # the question in flight says why it ended
    assert s["back_s"] is not None, s


def test_a_crash_loop_ends_degraded_in_status(campaign):
    c = campaign["crash_loop"]
    assert c["state"] == "degraded" and "degraded" in c["status_line"], c
    assert c["ask_s"] < soak.ANSWER_LIMIT_S and "crashed repeatedly" in c["ask"], c


def test_the_firmware_stops_cleanly_after_the_campaign(campaign):
    assert campaign["exit_code"] == 0
    assert campaign["failures"] == [], soak.summary(campaign)
