"""One run of `tinyasc experiment --jobs N` or `tinyasc table3 --jobs N`, in a process of its own
(tinyasc/train/parallel.py).

    python -c "...; from tinyasc.train.worker import main; main()" RUN_DIR CONFIG_JSON PARENT_PID

trains (or resumes) the run folder RUN_DIR with the TrainConfig given as JSON, exactly as a run
trained in the parent process would be, and writes nothing else. Exit code 0: finished; 130: stopped by
SIGINT (its checkpoint saved, if it had started training); 1: an error, printed as one line. If the parent process dies, the
worker gets SIGINT (Linux), so it saves its checkpoint and stops rather than train on alone.
"""
import json
import signal
import sys
from pathlib import Path

from tinyasc.data.workers import end_with_parent
from tinyasc.errors import TinyAscError
from tinyasc.kernels.runtime import configure_runtime


def main(argv=None):
    run_dir, config_json, parent = ((sys.argv[1:] if argv is None else argv) + [None])[:3]
    try:  # a SIGINT may come while the imports still run: exit 130 then too, without a traceback
        if parent is not None:  # SIGINT when the parent dies: save the checkpoint and stop
            end_with_parent(signal.SIGINT, int(parent))
        configure_runtime()
        from tinyasc.train import classifier
        from tinyasc.train.config import TrainConfig

        config = TrainConfig.from_dict(json.loads(config_json)).validate()
        resume = (Path(run_dir) / classifier.CHECKPOINT).is_file()
        text, _ = classifier.train(config, run_dir, resume=resume, log=print, progress=False)
    except KeyboardInterrupt:  # a second SIGINT: stopped at once
        sys.exit(130)
    except (TinyAscError, OSError, MemoryError) as exc:  # one line for the parent to show
        print("error: " + " ".join(f"{type(exc).__name__ if not str(exc) else exc}".split()), flush=True)
        sys.exit(1)
    if text is None:
        sys.exit(130)
    print(text, flush=True)
