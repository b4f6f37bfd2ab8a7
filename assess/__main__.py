"""python -m assess: the same as the assess command."""
from .cli import main

main(prog_name="assess")
