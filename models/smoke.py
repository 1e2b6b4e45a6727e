"""The smoke test every model passes before the registry stores it.

The model runs the job's own inference path (`models.predictor.Predictor`: `locate_inputs`
for a prefilter, `predict_inputs` for a heavy model) at several batch sizes (`BATCH_SIZES`:
1, 3, 8 and the jobs' forward batches, 16 and 64 frames); its outputs must have the shape
the spec implies, be finite and lie in [0, 1].

A TorchScript file is code, so a brought model runs in a child process (`smoke_test_isolated`,
the child is `python -m models.smoke`): an environment with nothing in it but PATH and
PYTHONPATH (no object-store credentials), its own session, a temporary working directory,
limits it sets on itself with `resource.setrlimit` before it loads the model (address space
`memory_bytes`, CPU seconds, 16 MiB of file writes, no core dump), a wall-clock limit to load
(`LOAD_LIMIT_S`: start Python, import torch, load the model) and one for all the runs
(`time_limit_s`); past either, the child's process group is killed and the model refused.
Built-in architectures (our code, safetensors weights) are checked in-process (`run_checks`,
`BUILTIN_BATCH_SIZES`).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from models.admission import ModelRefused

BATCH_SIZES = (1, 3, 8, 16, 64)  # 16 and 64: the jobs' forward batches (heavy, prefilter; models.predictor.BATCH)
BUILTIN_BATCH_SIZES = (1, 3, 8)  # our own architectures: no code of the model's to exercise
TIME_LIMIT_S = 120.0  # wall seconds for every batch size together, once the model is loaded
LOAD_LIMIT_S = 180.0  # wall seconds to start the child, import torch and load the model
MEMORY_BYTES = 6 * 1024 ** 3  # the child's address space (RLIMIT_AS)
FILE_WRITE_BYTES = 16 * 1024 ** 2  # the largest file the child may write (RLIMIT_FSIZE)
_MAX_PROGRESS = 64 * 1024
_ROOT = Path(__file__).resolve().parents[1]


def run_checks(predictor, batch_sizes=BATCH_SIZES, report=None) -> dict:
    """Run `predictor` at each batch size on noise through the job's path; raise ModelRefused
    when an output is not what the spec implies. Returns {"localizes": bool}."""
    import numpy as np

    rng = np.random.default_rng(0)
    role, h, w = predictor.role, predictor.input.height, predictor.input.width
    for n in batch_sizes:
        inputs = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        if role == "prefilter":
            out, centers, _ = predictor.locate_inputs(inputs)
            want = (n,)
            if np.asarray(centers).shape != (n, 2) or not np.all((centers >= 0) & (centers <= 1)):
                raise ModelRefused(f"prefilter model gives locations outside [0, 1] at batch size {n}")
        else:
            out = predictor.predict_inputs(inputs)
            want = (n, len(predictor.class_names) + 1)
        out = np.asarray(out)
        if out.shape != want:
            raise ModelRefused(f"{role} model outputs shape {tuple(out.shape)} at batch size {n}, "
                               f"spec implies {want}")
        if not np.all(np.isfinite(out)) or out.min() < 0 or out.max() > 1:
            raise ModelRefused(f"{role} model gives scores that are not probabilities in [0, 1] at batch size {n} "
                               f"(check --outputs logits/probabilities)")
        if report is not None:
            report(n)
    return {"localizes": bool(predictor.localizes)}


def smoke_test_isolated(role: str, spec: dict, files: dict[str, bytes], *, batch_sizes=BATCH_SIZES,
                        time_limit_s: float = TIME_LIMIT_S, load_limit_s: float = LOAD_LIMIT_S,
                        memory_bytes: int = MEMORY_BYTES) -> dict:
    """Load and run a model in a child process under limits (see the module doc); returns
    {"localizes": bool}, or raises ModelRefused saying what went wrong."""
    with tempfile.TemporaryDirectory(prefix="percolate-smoke-") as tmp:
        folder = Path(tmp)
        (folder / "model").mkdir()
        (folder / "model" / "spec.json").write_text(json.dumps(dict(spec, role=role)))
        for name, data in files.items():
            (folder / "model" / Path(name).name).write_bytes(data)
        env = {"PATH": os.defpath, "PYTHONPATH": str(_ROOT), "OMP_NUM_THREADS": "1", "HOME": tmp, "TMPDIR": tmp}
        limits = {"memory_bytes": int(memory_bytes), "cpu_s": int(load_limit_s + time_limit_s) + 1,
                  "batch_sizes": [int(n) for n in batch_sizes]}
        read_fd, write_fd = os.pipe()  # progress comes on its own pipe: the model's prints go to a file
        with open(folder / "stderr", "wb") as err:
            try:
                proc = subprocess.Popen([sys.executable, "-s", "-m", "models.smoke", str(folder / "model"),
                                         json.dumps(limits), str(write_fd)], cwd=tmp, env=env,
                                        stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True,
                                        close_fds=True, pass_fds=(write_fd,))
            finally:
                os.close(write_fd)
            try:
                lines, problem = _follow(proc, read_fd, load_limit_s, time_limit_s, list(batch_sizes))
            finally:
                os.close(read_fd)
                _kill_group(proc)
        if problem:
            raise ModelRefused(f"{role} model refused by the smoke test: {problem}")
        found = _result(lines)
        if proc.returncode != 0 or found is None:
            tail = (folder / "stderr").read_bytes()[-2000:].decode(errors="replace").strip().splitlines()
            why = tail[-1] if tail else f"the child exited with status {proc.returncode}"
            if proc.returncode is not None and proc.returncode < 0:
                why = f"the child was killed by signal {-proc.returncode} (a limit?); {why}"
            raise ModelRefused(f"{role} model refused by the smoke test: {why}")
        return found


def _result(lines: list[str]) -> dict | None:
    """The child's last line, `done {"localizes": bool}`, or None."""
    if not lines or not lines[-1].startswith("done "):
        return None
    try:
        found = json.loads(lines[-1][len("done "):])
    except ValueError:
        return None
    return found if isinstance(found, dict) and isinstance(found.get("localizes"), bool) else None


def _follow(proc: subprocess.Popen, fd: int, load_limit_s: float, time_limit_s: float,
            sizes: list[int]) -> tuple[list[str], str | None]:
    """Read the child's progress lines until it exits; (lines, None) or (lines, why it was stopped)."""
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    buf, lines, done_sizes = b"", [], 0
    deadline, phase = time.monotonic() + load_limit_s, "load"
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if phase == "load":
                    return lines, f"the model did not load within {load_limit_s:g} s"
                return lines, (f"no answer within {time_limit_s:g} s at batch size {sizes[done_sizes]} "
                               f"(batch sizes tried: {sizes}); a model must answer for any batch size")
            if not sel.select(remaining):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                try:
                    proc.wait(timeout=max(deadline - time.monotonic(), 1))
                except subprocess.TimeoutExpired:
                    return lines, "the child closed its progress pipe but did not exit"
                return lines, None
            buf += chunk
            if len(buf) > _MAX_PROGRESS:
                return lines, "the child wrote too much on its progress pipe"
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                lines.append(line)
                if line.startswith("loaded"):
                    deadline, phase = time.monotonic() + time_limit_s, "run"
                elif line.startswith("ok "):
                    done_sizes += 1
    finally:
        sel.close()


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the child's process group (whatever the model started too)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _limit_self(memory_bytes: int, cpu_s: int) -> None:
    import resource

    for which, cap in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_CPU, cpu_s),
                       (resource.RLIMIT_FSIZE, FILE_WRITE_BYTES), (resource.RLIMIT_CORE, 0)):
        soft, hard = resource.getrlimit(which)
        cap = cap if hard == resource.RLIM_INFINITY else min(cap, hard)
        resource.setrlimit(which, (cap, cap))


def main(argv: list[str]) -> int:
    """The child: set its limits, load the model from a folder (spec.json + files), run it,
    reporting progress on the file descriptor `argv[2]`."""
    folder, limits = Path(argv[0]), json.loads(argv[1])
    progress = os.fdopen(int(argv[2]), "w", buffering=1)
    _limit_self(limits["memory_bytes"], limits["cpu_s"])
    import torch

    torch.set_num_threads(1)
    from models.predictor import Predictor
    from models.registry import ModelRegistry

    spec = json.loads((folder / "spec.json").read_text())
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "spec.json"}
    predictor = Predictor(spec["role"], "unregistered", spec, ModelRegistry.build(spec, files))
    print("loaded", file=progress)
    found = run_checks(predictor, limits["batch_sizes"], report=lambda n: print(f"ok {n}", file=progress))
    print("done " + json.dumps(found), file=progress)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
