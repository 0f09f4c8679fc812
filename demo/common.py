"""What every part of the demo run shares: the repository root, its one-line error, printing paths and times."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DemoError(Exception):
    """A problem the user can fix (or a stage that failed): one line, no traceback."""

    def __init__(self, msg, code=2):
        super().__init__(msg)
        self.code = code


FAMILY_DEFAULT = "minimind2"


def family_flags(args):
    """The flag every script of a MiniMind-3-family demo gets (after the script: the demo's explicit flags
    then win over the family's script defaults); none for MiniMind2, whose commands stay as README shows."""
    family = getattr(args, "model_family", FAMILY_DEFAULT)
    return [] if family == FAMILY_DEFAULT else ["--model_family", family]


def thinking_on(args):
    """enable_thinking for a reason model's prompt: MiniMind-3's template opens the think block only when
    asked; MiniMind2's thinks by default (None: its prompt byte for byte as before the switch existed)."""
    return True if getattr(args, "model_family", FAMILY_DEFAULT) == "minimind3" else None


def thinking_flags(args, on):
    """An RL stage's --thinking_ratio: MiniMind-3's scripts default to 0.9; the demo's prompts all think (the
    reason model) or none do (the chat model). None for MiniMind2, whose template needs no switch here."""
    return [] if thinking_on(args) is None else ["--thinking_ratio", "1" if on else "0"]


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
