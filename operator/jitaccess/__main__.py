"""`python -m jitaccess` runs the operator."""

from jitaccess.main import main

main()
