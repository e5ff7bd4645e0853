"""kvlite's own schema, as numbered SQL files applied in order by :mod:`kvlite.migrate`.

This folder is installed as the package ``kvlite.migrations`` so the files ship
inside the wheel.  Never edit a released file: add the next number.
"""
