"""Other libraries' log records in a CLI run and in a local pool worker: their warnings show, in
Olivine's format; their INFO never does, although onnxruntime's quantizers run
``logging.basicConfig(level=INFO)`` when they are imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_CHATTER = "start to quantize /layer/MatMul"
_WARNING = "a third-party warning"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_console_shows_other_libraries_warnings_not_their_info() -> None:
    proc = _run(
        f"""
        import logging
        from olivine.cli.logsetup import configure
        configure(1)
        import onnxruntime.quantization.matmul_nbits_quantizer as quantizer
        quantizer.logger.info({_CHATTER!r})
        logging.getLogger("somelib").warning({_WARNING!r})
        logging.getLogger("olivine.passes").info("olivine progress")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert _CHATTER not in proc.stderr
    assert "olivine progress" in proc.stderr
    line = next(line for line in proc.stderr.splitlines() if _WARNING in line)
    assert "WARNING" in line and "somelib" not in line  # Olivine's format, not basicConfig's


def test_pool_worker_sends_other_libraries_warnings_to_the_engine_not_their_info() -> None:
    proc = _run(
        f"""
        import json, logging, os
        from multiprocessing import Pipe
        from olivine.engine.pool_worker import _connect
        engine_end, worker_end = Pipe()
        _connect(worker_end, logging.INFO, 1, os.getpid())
        import onnxruntime.quantization.matmul_nbits_quantizer as quantizer
        quantizer.logger.info({_CHATTER!r})
        logging.getLogger("somelib").warning({_WARNING!r})
        logging.getLogger("olivine.passes").info("olivine progress")
        got = []
        while engine_end.poll(1):
            kind, record = engine_end.recv()
            got.append([kind, record.name, record.getMessage()])
        print(json.dumps(got))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert _CHATTER not in proc.stdout + proc.stderr
    sent = json.loads(proc.stdout)
    assert ["log", "somelib", f"[worker 1] {_WARNING}"] in sent
    assert ["log", "olivine.passes", "[worker 1] olivine progress"] in sent


def test_forked_pool_worker_sends_each_record_once_on_its_own_socket() -> None:
    # A forked worker runs _connect again after closing the forking worker's socket (pool_worker._serve):
    # the handlers it inherited must not keep sending there.
    proc = _run(
        f"""
        import json, logging, os
        from multiprocessing import Pipe
        from olivine.engine.pool_worker import _connect
        first_engine, first_worker = Pipe()
        second_engine, second_worker = Pipe()
        _connect(first_worker, logging.INFO, 1, os.getpid())
        first_worker.close()
        _connect(second_worker, logging.INFO, 2, os.getpid())
        logging.getLogger("somelib").warning({_WARNING!r})
        logging.getLogger("olivine.passes").info("olivine progress")
        got = []
        while second_engine.poll(1):
            kind, record = second_engine.recv()
            got.append([kind, record.name, record.getMessage()])
        print(json.dumps(got))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "Logging error" not in proc.stderr and "handle is closed" not in proc.stderr
    sent = json.loads(proc.stdout)
    assert sent == [
        ["log", "somelib", f"[worker 2] {_WARNING}"],
        ["log", "olivine.passes", "[worker 2] olivine progress"],
    ]
