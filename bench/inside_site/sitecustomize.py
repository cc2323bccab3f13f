"""On the PYTHONPATH of the Courier processes ``python -m bench.legs --inside`` starts (only
there): Courier's own clock, bench/inside.py."""

import os

if os.environ.get("COURIER_INSIDE_OUT"):
    from bench import inside

    inside.install(os.environ["COURIER_INSIDE_OUT"])
