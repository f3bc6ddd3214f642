"""``olivine`` / ``python -m olivine``: argument parsing and dispatch. Kept light so ``--help`` is fast:
every command imports what it needs when it runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from olivine import __version__

DESCRIPTION = """\
Olivine runs model-optimization workflows described in an Olive-format run config:
convert a PyTorch / Hugging Face / ONNX model to ONNX, optimize and quantize it, evaluate
accuracy and latency, and keep the best model. With "workflow_host" in the config the
workflow is submitted to a host and keeps running after the terminal closes."""

EPILOG = """\
examples:
  olivine run --config examples/minilm/config.json
  olivine run --config cfg.yaml --verbose

exit codes: 0 success, 1 the workflow or a host failed, 2 invalid config or usage."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="olivine",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"olivine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from olivine.cli import commands

    commands.add_commands(sub)
    return parser


def entry() -> NoReturn:
    """The ``olivine`` console command: :func:`main`, then a quick interpreter exit."""
    code = main(scrub_streams=True)
    from olivine.quick_exit import prepare_exit
    from olivine.scrubbing import close_descriptor_scrubbing

    close_descriptor_scrubbing()

    prepare_exit()
    sys.exit(code)


def main(argv: Sequence[str] | None = None, *, scrub_streams: bool = False) -> int:
    """Run one command. ``scrub_streams`` (the console command) also routes stdout/stderr through the
    credential scrubber, so what a workflow's user code prints in this process is scrubbed too."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if scrub_streams:
        import os

        from olivine.scrubbing import scrub_standard_streams

        scrub_standard_streams()
        if args.command == "run":
            # A foreground run executes user code here: what native code or a subprocess writes to a
            # redirected stdout/stderr (a CI log) is scrubbed too. A terminal stays a terminal.
            from olivine.scrubbing import scrub_descriptors

            scrub_descriptors(fds=tuple(fd for fd in (1, 2) if not os.isatty(fd)))
        # Job store, job folders, logs, bundles, caches and the default datastore: user-private.
        os.umask(os.umask(0o077) | 0o077)
    verbose = bool(getattr(args, "verbose", False))
    try:
        code: int = args.handler(args)
        return code
    except KeyboardInterrupt:
        print("olivine: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`olivine logs JOB | head`): not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        from olivine.errors import OlivineError
        from olivine.scrubbing import process_scrubber

        scrub = process_scrubber()
        if verbose:
            import traceback

            print(scrub("".join(traceback.format_exc())), file=sys.stderr, end="")
        if isinstance(exc, OlivineError):
            print(one_line(scrub(f"olivine: error: {exc}")), file=sys.stderr)
            return exc.exit_code
        print(
            one_line(
                scrub(
                    f"olivine: internal error: {type(exc).__name__}: {exc} (run with --verbose for details)"
                )
            ),
            file=sys.stderr,
        )
        return 1


def one_line(text: str) -> str:
    """``text`` as one printable line: control characters (newlines, escapes a key or a file name may
    carry) are shown as Python escapes, so an error is always exactly one line on the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
