"""The rules of jitaccess as pure functions: no I/O, the clock passed in."""
