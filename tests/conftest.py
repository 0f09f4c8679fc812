"""Suite-wide setup.

SIGINT: a shell starts a background job (`nohup python -m pytest -q &`) with SIGINT ignored, and an
ignored signal stays ignored across fork and exec, so every script a test starts would shrug off
the Ctrl-C that the test sends. Python's own handler is put back here, before any test runs:
children then start with the default disposition (exec resets a handled signal) and Python turns
it into KeyboardInterrupt in them, however pytest itself was launched.
"""
import signal

if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None):
    signal.signal(signal.SIGINT, signal.default_int_handler)
