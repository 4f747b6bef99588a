"""`python -m jitaccess` runs the operator."""

import gc

# Importing the operator builds ~170,000 objects that live as long as the process
# (modules, models, the SDK's service models); collecting while they are built finds no garbage and
# costs ~60 ms of a start-up that overdue grants wait for. Frozen, later collections skip them too.
gc.disable()
from jitaccess.main import main  # noqa: E402

gc.freeze()
gc.enable()
main()
