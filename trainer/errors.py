"""User-facing errors: one line on stderr, exit code 2, never a traceback.

A user's mistake (missing file, wrong flag combination, bad data line) is raised as
UserError (or the dataset's DataError) anywhere in the program; `run_main` turns it into
one line. Programming errors still get their traceback, because they are ours to fix.
"""
import os
import sys

from trainer import elastic


class UserError(Exception):
    """A mistake the user can fix; the message is the whole story, on one line."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with one line saying where it stopped and what was saved (run_main prints it, exit 130)."""


def user_error_types():
    types = [UserError]
    # DataError lives in the dataset package; only a program that imported it can raise it.
    sources = sys.modules.get("dataset.sources")
    if sources is not None and isinstance(getattr(sources, "DataError", None), type):
        types.append(sources.DataError)
    return tuple(types)


def one_line(msg) -> str:
    return " ".join(str(msg).split())


def _is_reporting_rank() -> bool:
    # Under torchrun every rank hits the same mistake; one copy of the line is enough.
    return os.environ.get("RANK", "0") == "0"


def fail(msg, code: int = 2, prefix="error: "):
    """Print `msg` as one stderr line and exit with `code` (2 = user error).

    Under torchrun the ranks agree on one to print it (trainer/elastic.py), and torchrun's summary
    names it as the root cause."""
    sys.stdout.flush()
    elastic.report(prefix + one_line(msg), lambda line: print(line, file=sys.stderr, flush=True))
    _shutdown_process_group()
    sys.exit(code)


def _stop_if_a_peer_reported():
    """A collective that broke because another rank stopped on a user error: exit 2 without a word."""
    if elastic.under_torchrun() and elastic.peer_reported() is not None:
        elastic.leave_quietly(2)


def _shutdown_process_group():
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:
        pass


def run_main(main, *args, **kwargs):
    """Call main(*args, **kwargs); user errors become one stderr line and exit 2.

    Ctrl-C exits 130: whatever was saved stays saved (saves are atomic). An `Interrupted` (the
    trainer raises one) prints its line; a bare KeyboardInterrupt exits quietly. Under torchrun, a
    rank that fails because another rank stopped on a user error exits 2 quietly (trainer/elastic.py).
    """
    elastic.exit_quietly_on_sigterm()
    try:
        return main(*args, **kwargs)
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted) and str(e) and _is_reporting_rank():
            sys.stdout.flush()
            print(one_line(e), file=sys.stderr, flush=True)
        _shutdown_process_group()
        sys.exit(130)
    except user_error_types() as e:
        fail(e)
    except OSError as e:
        # Disk full, permission denied, unreadable path: the user's environment, not our bug.
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)) \
                or getattr(e, "errno", None) in (27, 28, 30, 122):  # EFBIG, ENOSPC, EROFS, EDQUOT
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            fail(f"{where}{e.strerror or e}")
        _stop_if_a_peer_reported()
        raise
    except Exception:
        _stop_if_a_peer_reported()
        raise


def cli(main):
    """Decorator form: `@cli def main(argv=None): ...`; calling main() goes through run_main."""
    def wrapper(*args, **kwargs):
        return run_main(main, *args, **kwargs)
    wrapper.__name__ = main.__name__
    wrapper.__doc__ = main.__doc__
    wrapper.__wrapped__ = main
    return wrapper
