"""Console commands for features: `capture` and `record`."""

from .capture import CaptureRefused
from .commands import CommandError, command
from .recorder import RecordingRefused

CAPTURE_USAGE = ("capture photo | capture burst N | capture video SECONDS | "
                 "capture interval SECONDS|stop | capture stop")


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CommandError(f"'{text[:20]}' is not a number of seconds; usage: {CAPTURE_USAGE}") from None


@command("capture", "capture photo|burst N|video SECONDS|interval SECONDS|stop",
         "take photos or video behind the privacy LED")
async def cmd_capture(session, args):
    cap = session.fw.capture
    try:
        match args:
            case ["photo"]:
                path = await cap.photo()
                return [f"photo {path.relative_to(session.fw.data_dir)}"]
            case ["burst", n] if n.isdigit():
                paths = await cap.burst(int(n), gap_s=0.2)
                return [f"photo {p.relative_to(session.fw.data_dir)}" for p in paths]
            case ["video", seconds]:
                path = await cap.start_video(_seconds(seconds))
                return [f"recording {path.relative_to(session.fw.data_dir)}"]
            case ["interval", "stop"]:
                return ["interval stopped" if cap.stop_interval() else "no interval capture running"]
            case ["interval", seconds]:
                cap.start_interval(_seconds(seconds))
                return [f"a photo every {_seconds(seconds):g} s until `capture interval stop`"]
            case ["stop"]:
                path = await cap.stop_video()
                stopped = cap.stop_interval()
                if path is None and not stopped:
                    return ["nothing to stop"]
                return ([f"video {path.relative_to(session.fw.data_dir)}"] if path else []) + \
                    (["interval stopped"] if stopped else [])
    except CaptureRefused as e:
        raise CommandError(f"capture refused: {e}") from None
    raise CommandError(f"usage: {CAPTURE_USAGE}")


@command("record", "record start|stop", "meeting recording: microphone audio in durable segments")
async def cmd_record(session, args):
    rec = session.fw.recorder
    try:
        if args == ["start"]:
            path = await rec.start()
            return [f"recording into {path.relative_to(session.fw.data_dir)}"]
        if args == ["stop"]:
            path = await rec.stop()
            return [f"saved {path.relative_to(session.fw.data_dir)} ({rec.segments} segments)"
                    if path else "not recording"]
    except RecordingRefused as e:
        raise CommandError(f"record refused: {e}") from None
    raise CommandError("usage: record start|stop")


@command("ask", "ask TEXT", "a text turn for the assistant: the reply is spoken and printed",
         raw=True)
async def cmd_ask(session, args):
    text = " ".join(args).strip()
    if not text:
        raise CommandError("usage: ask TEXT, e.g. ask what's the battery")
    reply = await session.fw.assistant.ask(text)
    return reply.splitlines() or ["(no answer)"]
