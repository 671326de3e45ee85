"""`python -m interlock`: the command line, for when the `interlock` script is not on PATH."""

from interlock._console import main

main()
