"""Offload to the user's servers (issue 16, docs/offload.md), against real servers on loopback.

The LLM: llama-cpp-python's OpenAI server on the GGUF the glasses' LLM was made from, set
from the sim board's console; answered by the server, then the server SIGKILLed mid-answer
(the answer finished on the glasses), the next question answered on the glasses with one
EVT, the server back (one EVT), and a server that accepts and never answers. The ASR:
wyoming-faster-whisper and faster-whisper-server (the OpenAI transcription API) on the
shipped Whisper; the TTS: wyoming-piper on the glasses' Piper voice; each with the real
on-board worker as the fallback.
The token never reaches the log, the console or the firmware's output.
"""

import asyncio
import os
import stat
import threading
import time

import pytest

from glasses_firmware.drivers.errors import ConfigError
from glasses_firmware.firmware.offload import settings
from tests import offload_servers as srv
from tests.conftest import RunningFirmware
from tests.test_offline import sockets

SECRET = "sk-glasses-6b1f0c2e9a77d4"
needs_servers = pytest.mark.skipif(srv.missing() is not None, reason=str(srv.missing()))


def test_settings_file_round_trip_mode_and_bad_input(tmp_path):
    s = settings.Server("llm", "openai", "https://gpu.lan:8080/v1", model="qwen",
                        token=SECRET, deadline_s=3.5)
    path = settings.save(tmp_path, {"llm": s})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert settings.load(tmp_path) == {"llm": s}
    assert SECRET not in repr(s) and SECRET not in str(s) and s.masked()["token"] == "****"
    assert (s.host, s.port, s.tls, s.path) == ("gpu.lan", 8080, True, "/v1")
    assert settings.load(tmp_path / "none") == {}        # no file: nothing offloaded
    for text, names in [('[llm]\nprotocol = "openai"\nurl = "http://h/v1"\nspeed = 1\n', "speed"),
                        ('[llm]\nprotocol = "wyoming"\nurl = "tcp://h:1"\n', "wyoming"),
                        ('[asr]\nprotocol = "openai"\nurl = "ftp://h"\n', "ftp://h"),
                        ('[tts]\nurl = "tcp://h:1"\n', "protocol"),
                        ('[cam]\nprotocol = "openai"\n', "cam"), ("[llm\n", "TOML")]:
        settings.path_in(tmp_path).write_text(text)
        with pytest.raises(ConfigError, match=names) as e:
            settings.load(tmp_path)
        assert "offload.toml" in str(e.value)


def test_a_servers_health_moves_by_its_table():
    from glasses_firmware.firmware.events import EventBus
    from glasses_firmware.firmware.offload import router, wyoming

    async def describe(reader, writer):        # a Wyoming server that only says who it is
        if (await wyoming.read_event(reader))[0] == "describe":
            writer.write(wyoming.encode("info", {"tts": [{"name": "piper"}]}))
            await writer.drain()
        writer.close()

    async def main():
        events, seen = EventBus(), []
        events.subscribe(seen.append)
        listener = await asyncio.start_server(describe, "127.0.0.1", 0)
        url = f"tcp://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        h = router.Health("tts", settings.Server("tts", "wyoming", url, deadline_s=2), events)
        try:
            h.ok()
            h.ok()                              # up and answering: no move
            h.failed("refused")
            h.failed("refused again")           # down already: said once
            h.ok()                              # a request sent before the outage: back
            h.failed("timed out")               # down again, until the probe's answer (1 s)
            deadline = time.monotonic() + 10
            while h.state != "up":
                assert time.monotonic() < deadline, h.status()
                await asyncio.sleep(0.05)
            h.stop()
            h.ok()                              # a replaced setting's late answer: no revival
            h.failed("late")
            assert h.status()["state"] == "stopped" and h.model_seen == "piper"
        finally:
            h.stop()
            listener.close()
            await listener.wait_closed()
        assert h.machine.history == [("unknown", "ok", "up"), ("up", "failed", "down"),
                                     ("down", "ok", "up"), ("up", "failed", "down"),
                                     ("down", "probe_ok", "up"), ("up", "stop", "stopped")]
        assert all(router.TRANSITIONS[(old, event)] == new for old, event, new in h.machine.history)
        assert [e.split(":")[0] for e in seen] == ["offload tts unreachable", "offload tts back"] * 2
    asyncio.run(main())
    text = router.mermaid()
    for (src, event), dst in router.TRANSITIONS.items():
        assert f"    {src} --> {dst} : {event}" in text


def _watch_inet(pid: int, stop: threading.Event, seen: set) -> None:
    """Every INET socket the firmware's processes hold, polled until `stop`."""
    while not stop.is_set():
        try:
            # UNKNOWN: opened between reading the tables and the fds; the next poll sees it.
            seen.update(d for _, fam, d in sockets(pid) if fam not in ("UNIX", "UNKNOWN"))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.02)


def _hex_port(port: int) -> str:
    return f"0100007F:{port:04X}"       # 127.0.0.1:port as /proc/net/tcp writes it


def _wait_ready(fw, timeout_s: float = 60.0) -> None:
    """Until the on-board model worker (the fallback) is ready."""
    deadline = time.monotonic() + timeout_s
    while fw.cmd("status --json").json()["worker"]["state"] != "ready":
        assert time.monotonic() < deadline, "the model worker did not start"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def gguf():
    if srv.missing():
        pytest.skip(srv.missing())
    with srv.gguf_file() as path:
        yield path


@needs_servers
def test_llm_offload_through_the_sim_server_killed_back_and_hung(tmp_path, test_models, gguf):
    # One thread: an answer takes seconds, so the kill lands inside it.
    server = srv.llama_server(gguf, tmp_path / "llama.log", threads=1)
    hung = srv.SilentServer()
    fw = RunningFirmware(tmp_path, extra=("--models", str(test_models)))
    replies = []
    try:
        assert fw.cmd("events on").ok
        _wait_ready(fw)
        # Bad input: ERR saying what was wrong, nothing written.
        for line, why in [("offload set llm wyoming tcp://127.0.0.1:1", "no llm"),
                          ("offload set llm openai ftp://x/v1", "not a http/https URL"),
                          ("offload set asr openai http://h/v1 --deadline soon", "not a number"),
                          ("offload set tts wyoming tcp://h:1 --colour red", "cannot read the options"),
                          ("offload token asr", "no offload server for asr"),
                          ("offload reboot", "usage")]:
            r = fw.cmd(line)
            assert r.error and why in r.error, (line, r)
        assert not settings.path_in(fw.data_dir).exists()
        url = f"http://127.0.0.1:{server.port}/v1"
        r = fw.cmd(f"offload set llm openai {url} --model {srv.SERVER_MODEL} --deadline 10")
        assert r.ok, r
        # The token on the line after the command, as a user pastes it.
        replies.append(r := fw.cmd("offload token llm\n" + SECRET))
        assert r.ok and "****" in r.lines[-1], r
        toml = settings.path_in(fw.data_dir)
        assert stat.S_IMODE(os.stat(toml).st_mode) == 0o600 and SECRET in toml.read_text()

        # 1. Answered by the server; meanwhile its are the only INET sockets.
        seen, stop = set(), threading.Event()
        watcher = threading.Thread(target=_watch_inet, args=(fw.proc.pid, stop, seen))
        watcher.start()
        replies.append(r := fw.cmd("ask what is the capital of France", timeout_s=60))
        stop.set()
        watcher.join(5)
        assert r.ok and "paris" in " ".join(r.lines).lower(), r
        assert seen and all(d.split(" -> ")[1] == _hex_port(server.port) for d in seen), seen
        assert "POST /v1/chat/completions" in server.text()
        replies.append(text := fw.cmd("offload"))
        assert text.ok and any(line.startswith(f"llm  openai {url} model {srv.SERVER_MODEL} "
                                              "token ****") for line in text.lines), text
        assert "asr  on the glasses" in text.lines, text
        replies.append(st := fw.cmd("offload --json"))
        llm = st.json()["roles"]["llm"]
        assert (llm["state"], llm["served"], llm["server"]["token"]) == ("up", 1, "****")

        # 2. SIGKILL once the answer is being spoken: finished on the glasses.
        log_file = fw.data_dir / "logs" / "glasses.log"
        before = log_file.read_text().count("offload llm: first token")
        out = {}
        asker = threading.Thread(target=lambda: out.update(
            r=fw.cmd("ask tell me a long story about a dragon and a knight", timeout_s=90)))
        asker.start()
        deadline = time.monotonic() + 60
        while log_file.read_text().count("offload llm: first token") == before and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        asker.join(90)
        replies.append(r := out["r"])
        assert r.ok and "server stopped answering" in " ".join(r.lines), r
        # The server's start of the answer, then the bridge; the on-board model's answer
        # follows it (random test weights: it may hold no speakable word).
        assert " ".join(r.lines).split("The server stopped")[0].strip(), r
        events = fw.events_until(lambda e: e.startswith("offload llm unreachable"))

        # 3. The next question goes straight to the glasses: no second EVT, no wait.
        t0 = time.monotonic()
        replies.append(r := fw.cmd("ask what is the capital of Italy", timeout_s=60))
        assert r.ok and r.lines, r
        assert time.monotonic() - t0 < 10.0
        events += r.events
        status = fw.cmd("offload --json").json()["roles"]["llm"]
        assert status["state"] == "down" and status["fallbacks"] == 2, status
        replies.append(text := fw.cmd("offload"))
        assert any(": down (" in line and "retry in" in line for line in text.lines), text

        # 4. The server comes back: the probe finds it (back-off 1, 2, 4 ... s), says so once.
        server.start()
        events = fw.events_until(lambda e: e.startswith("offload llm back"), 40, events)
        replies.append(r := fw.cmd("ask what is the capital of Spain", timeout_s=60))
        assert r.ok and fw.cmd("offload --json").json()["roles"]["llm"]["served"] == 2, r
        offload_events = [e for e in events + r.events if e.startswith("offload ")]
        assert [e.split(":")[0] for e in offload_events] == \
            ["offload llm unreachable", "offload llm back"], offload_events

        # 5. A server that accepts and never answers: the glasses answer past the deadline.
        r = fw.cmd(f"offload set llm openai http://127.0.0.1:{hung.port}/v1 --deadline 1.5")
        assert r.ok, r
        t0 = time.monotonic()
        replies.append(r := fw.cmd("ask what is the capital of Peru", timeout_s=60))
        assert r.ok and r.lines and time.monotonic() - t0 < 1.5 + 8.0, r
        events = fw.events_until(lambda e: "did not answer within 1.5 s" in e, 10)
        assert fw.cmd("offload off llm").ok
        log_text = fw.cmd("log 500")
    finally:
        hung.close()
        server.kill()
        code = fw.stop()
    assert code == 0
    # The token: in offload.toml only, never in the log, the console or the output.
    console = "\n".join(line for reply in replies + [log_text] for line in reply.lines + reply.events)
    for where, text in [("console", console), ("stdout", fw.output()),
                        ("glasses.log", (fw.data_dir / "logs" / "glasses.log").read_text())]:
        assert SECRET not in text, where
    assert "offload llm unreachable" in (fw.data_dir / "logs" / "glasses.log").read_text()


@needs_servers
def test_asr_over_wyoming_with_the_worker_as_fallback(tmp_path, test_models):
    from glasses_firmware.firmware.events import EventBus
    from glasses_firmware.firmware.offload.router import OffloadingModels
    from glasses_firmware.firmware.worker import InferenceClient

    audio = _speech("what is the weather like in London today")
    with srv.whisper_dir() as model_dir:
        server = srv.whisper_server(model_dir, tmp_path / "wyoming.log")
        try:
            # It never asks the network for its model: its only INET sockets are its own
            # listener and the glasses' connections (checked after a transcript below).
            asyncio.run(_asr(server, audio, test_models, InferenceClient, EventBus,
                             OffloadingModels))
        finally:
            server.kill()


async def _asr(server, audio, test_models, InferenceClient, EventBus, OffloadingModels):
    client = InferenceClient(test_models, threads=1, preload=("asr",))
    await client.start(timeout_s=60)
    try:
        events, seen = EventBus(), []
        events.subscribe(seen.append)
        wy = settings.Server("asr", "wyoming", f"tcp://127.0.0.1:{server.port}", deadline_s=15)
        models = OffloadingModels(client, {"asr": wy}, events)
        got = await models.transcribe(audio, language=["en", "zh", "ko"])
        assert "weather" in got["text"].lower() and "london" in got["text"].lower(), got
        remote = {d for _, fam, d in sockets(server.proc.pid) if fam != "UNIX"}
        assert all(d.split()[1].startswith("0100007F:") for d in remote), remote
        # Translation is no Wyoming task: on the glasses, and no fault.
        await models.transcribe(audio, task="translate")
        assert seen == [] and models.status()["asr"]["served"] == 1
        server.kill()
        t0 = time.monotonic()
        fallback = await models.transcribe_stream(audio, language="en").wait()
        assert set(fallback) >= {"text", "language"} and time.monotonic() - t0 < 15
        await models.transcribe(audio)               # straight on-board now: no second EVT
        assert len(seen) == 1 and seen[0].startswith("offload asr unreachable: cannot reach"), seen
        assert models.status()["asr"]["fallbacks"] == 2
    finally:
        await client.stop()


@needs_servers
def test_openai_transcription_and_a_wyoming_voice(tmp_path, test_models):
    from glasses_firmware.firmware.worker import InferenceClient
    audio = _speech("what is the weather like in London today")
    with srv.whisper_dir() as model_dir, srv.piper_dir() as voice_dir:
        asr = srv.openai_whisper_server(model_dir, tmp_path / "fws.log")
        tts = srv.piper_server(voice_dir, tmp_path / "piper.log")
        hung = srv.SilentServer()
        try:
            asyncio.run(_openai_asr_and_voice(asr, tts, hung, audio, test_models, InferenceClient))
        finally:
            for s in (asr, tts, hung):
                s.close() if s is hung else s.kill()


def _speech(text: str):
    from glasses_firmware.drivers.resample import resample
    from glasses_firmware.firmware.voice.cues import synthesize
    audio, rate = synthesize(text, "en", 150)
    return resample(audio.reshape(len(audio), -1).mean(axis=1), rate, 16000)


async def _openai_asr_and_voice(asr, tts, hung, audio, test_models, InferenceClient):
    from glasses_firmware.firmware.events import EventBus
    from glasses_firmware.firmware.offload.router import OffloadingModels
    client = InferenceClient(test_models, threads=1, preload=("asr", "tts"))
    await client.start(timeout_s=60)
    try:
        events, seen = EventBus(), []
        events.subscribe(seen.append)
        models = OffloadingModels(client, {
            "asr": settings.Server("asr", "openai", f"http://127.0.0.1:{asr.port}/v1",
                                   model="whisper-base", deadline_s=15),
            "tts": settings.Server("tts", "wyoming", f"tcp://127.0.0.1:{tts.port}",
                                   deadline_s=10)}, events)
        got = await models.transcribe(audio, language=["en", "zh", "ko"])
        assert "weather" in got["text"].lower() and got["language"] == "en", got
        assert "POST /v1/audio/transcriptions" in asr.text()
        english = await models.transcribe(audio, task="translate")   # the translations endpoint
        assert "london" in english["text"].lower() and "/v1/audio/translations" in asr.text()
        voice, rate = await models.tts("The capital of France is Paris.")
        assert rate == 22050 and 1.0 < len(voice) / rate < 5.0 and abs(voice).max() > 0.05
        status = models.status()
        assert (status["asr"]["served"], status["tts"]["served"], seen) == (2, 1, [])
        # Killed: the glasses' own voice, said once; hung: the same, within its deadline.
        tts.kill()
        own, own_rate = await models.tts("Hello.")
        assert len(own) and own_rate == (await client.tts("Hello."))[1]
        assert [e.split(":")[0] for e in seen] == ["offload tts unreachable"], seen
        models.configure({"tts": settings.Server("tts", "wyoming", f"tcp://127.0.0.1:{hung.port}",
                                                 deadline_s=1.0)})
        t0 = time.monotonic()
        assert len((await models.tts("Hello."))[0])
        assert time.monotonic() - t0 < 1.0 + 5.0
        assert "no audio within 1 s" in seen[-1] or "did not answer within 1 s" in seen[-1], seen
    finally:
        await client.stop()


@needs_servers
def test_tls_with_a_ca_file_and_a_bearer_token(tmp_path, gguf):
    from glasses_firmware.firmware.offload import openai
    from glasses_firmware.firmware.offload.http import OffloadError
    cert, key = srv.self_signed(tmp_path)
    server = srv.llama_server(gguf, tmp_path / "llama-tls.log", tls=(cert, key), api_key=SECRET)
    url = f"https://127.0.0.1:{server.port}/v1"
    ask = [{"role": "user", "content": "What is the capital of France? One word."}]

    async def answer(s):
        return "".join([piece async for piece in openai.chat(s, ask, 8)])
    try:
        base = settings.Server("llm", "openai", url, model=srv.SERVER_MODEL, deadline_s=20)
        with pytest.raises(OffloadError, match="TLS .* failed.*set its CA file"):
            asyncio.run(answer(base))                    # self-signed: refused without its CA
        with_ca = settings.Server("llm", "openai", url, model=srv.SERVER_MODEL, deadline_s=20,
                                  ca_file=str(cert))
        with pytest.raises(OffloadError, match="HTTP 401") as e:
            asyncio.run(answer(with_ca))                 # the server wants the token
        assert SECRET not in str(e.value)
        with_token = settings.Server("llm", "openai", url, model=srv.SERVER_MODEL, deadline_s=20,
                                     ca_file=str(cert), token=SECRET)
        assert "paris" in asyncio.run(answer(with_token)).lower()
    finally:
        server.kill()
