"""Offload to servers the user already runs (docs/offload.md).

settings.py   the per-role setting in <data>/offload.toml (0600; tokens never shown)
http.py       a small HTTP/1.1 client with TLS and deadlines
openai.py     OpenAI-compatible chat completions (streamed) and transcriptions
wyoming.py    the Wyoming protocol: speech to text, text to speech, describe
router.py     OffloadingModels: the on-board client with roles answered by servers, fallback
control.py    Offload: loads and changes the setting, wraps the clients app.py hands out
"""
