"""What every part of the demo run shares: the repository root, its one-line error, printing paths and times."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DemoError(Exception):
    """A problem the user can fix (or a stage that failed): one line, no traceback."""

    def __init__(self, msg, code=2):
        super().__init__(msg)
        self.code = code


def fmt_time(s):
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def rel(path):
    """A path as the user would type it from where they are."""
    try:
        r = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if r.startswith("..") else r


def say(msg=""):
    print(msg, flush=True)
