"""How a user error leaves a torchrun job: printed once, every rank exits 2, torchrun names it.

Under `torchrun --nproc_per_node N`, each rank runs the same checks, and a data line or a shard may
be wrong on one rank only. Left alone, every rank prints the line (or none does, when only rank 1
saw it), the ranks still waiting in a collective die with gloo's "Connection closed by peer"
traceback, and torchrun's summary says "To enable traceback see ...". Here instead:

- The ranks agree, through the key-value store that torchrun's agent hosts for the job (it outlives
  the workers, and is there before the process group is), on which rank reports: the first to
  fail. It prints the one line; the others print nothing.
- Every failing rank writes torchrun's error file (TORCHELASTIC_ERROR_FILE, what its `@record`
  writes): the reporter the message, the others a pointer to it, a second later, so that the
  summary's "Root Cause" is the message.
- A rank that fails because a peer left (a collective broken under it, or torchrun's SIGTERM once
  the first rank has exited) exits 2 quietly when that peer reported a user error.

Outside torchrun none of this applies: the one process prints its line.
"""
import json
import os
import signal
import sys
import time
from datetime import timedelta

_KEY = "minimind/user_error"
WAIT_S = 15  # how long a rank that does not report waits for the reporter's line
_store = []  # the agent store client, opened once


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "TORCHELASTIC_RUN_ID" in os.environ


def _key(name=_KEY):
    # one job's restarts share the agent's store: each attempt has its own key
    return f"{name}/{os.environ.get('TORCHELASTIC_RUN_ID', '')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def agent_store():
    """A client of torchrun's agent store, or None (not under torchrun, or it cannot be reached)."""
    if _store:
        return _store[0]
    store = None
    if under_torchrun() and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        try:
            from torch.distributed import TCPStore
            store = TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                             is_master=False, timeout=timedelta(seconds=10))
        except Exception:
            store = None
    _store.append(store)
    return store


def claim_report(message) -> bool:
    """Whether this rank prints the error: the first rank to fail does (rank 0 without a store)."""
    if not under_torchrun():
        return True
    store = agent_store()
    if store is None:
        return os.environ.get("RANK", "0") == "0"
    try:
        first = store.add(_key(), 1) == 1
        if first:
            store.set(_key(_KEY + "/rank"), os.environ.get("RANK", "0"))
            store.set(_key(_KEY + "/message"), message)
        return first
    except Exception:
        return os.environ.get("RANK", "0") == "0"


def peer_reported():
    """(rank, message) of a user error another rank reported in this job, or None."""
    store = agent_store()
    if store is None:
        return None
    try:
        if not store.check([_key(_KEY + "/message")]):
            return None
        return store.get(_key(_KEY + "/rank")).decode(), store.get(_key(_KEY + "/message")).decode()
    except Exception:
        return None


def write_error_file(message, later=False):
    """torchrun's error file for this rank: what its summary shows as the failure's "traceback"."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            # the layout torchrun's @record writes: the summary shows py_callstack as the "traceback"
            stamp = str(int(time.time()) + (1 if later else 0))
            json.dump({"message": {"message": message, "extraInfo": {"py_callstack": message, "timestamp": stamp}}}, f)
    except OSError:
        pass


def leave_quietly(code=2):
    """This rank failed because a peer reported a user error: point at it and exit `code`."""
    write_error_file(f"stopped: {_reporter_text()} reported the error", later=True)
    _wait_for_the_line()
    sys.exit(code)


def exit_quietly_on_sigterm():
    """torchrun stops the other ranks with SIGTERM once one has exited: when that one reported a
    user error, the rest exit 2 without a word (else as Python would, killed by the signal)."""
    if not under_torchrun():
        return

    def on_term(signum, frame):
        if peer_reported() is not None:
            leave_quietly(2)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        pass


def report(message, printer):
    """Print `message` if this rank is the one to report it, and write torchrun's error file.

    A rank that does not report waits (at most WAIT_S) until the reporter's line is out: torchrun
    stops every rank once one has exited, and the line must not be lost with the reporter. From
    then the rank ignores SIGTERM: it is exiting with code 2 already."""
    if claim_report(message):
        printer(message)
        write_error_file(message)
        _mark_printed()
        _exit_2_on_sigterm()
        return True
    write_error_file(f"stopped: {_reporter_text()} reported the error", later=True)
    _wait_for_the_line()
    return False


def _mark_printed():
    store = agent_store()
    if store is not None:
        try:
            store.set(_key(_KEY + "/printed"), "1")
        except Exception:
            pass


def _wait_for_the_line():
    store = agent_store()
    deadline = time.time() + WAIT_S
    while store is not None and time.time() < deadline:
        try:
            if store.check([_key(_KEY + "/printed")]):
                break
        except Exception:
            break
        time.sleep(0.02)
    _exit_2_on_sigterm()


def _exit_2_on_sigterm():
    """This rank is leaving with exit code 2: torchrun's SIGTERM (sent once another rank has exited)
    must not turn that into -15. An ignored signal stays ignored through the interpreter's shutdown,
    where a Python handler would no longer run."""
    if under_torchrun():
        try:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass


def _reporter_text():
    peer = peer_reported()
    return f"rank {peer[0]}" if peer else "another rank"
