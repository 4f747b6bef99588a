"""`python -m jitaccess` runs the operator."""

import ctypes
import gc

# glibc gives threads that allocate at once arenas of their own, up to eight per core, and hands
# little of them back: with ~70 threads (handlers, grants, expiry, kopf's), the memory held at
# 10,000 grants varied by 30 MB from one run to the next. Python allocates under its GIL, so two
# arenas cost no waiting. Set before any thread starts; a libc without `mallopt` (musl) is left as is.
_M_ARENA_MAX = -8
_libc = ctypes.CDLL(None)
if hasattr(_libc, "mallopt"):
    _libc.mallopt(_M_ARENA_MAX, 2)

# Importing the operator builds ~170,000 objects that live as long as the process
# (modules, models, the SDK's service models); collecting while they are built finds no garbage and
# costs ~60 ms of a start-up that overdue grants wait for. Frozen, later collections skip them too.
gc.disable()
from jitaccess.main import main  # noqa: E402

gc.freeze()
gc.enable()
main()
