"""Package discovery (everything else is in pyproject.toml).

The repository keeps the layout our users asked for -- ``hw/``, ``golden/``, ``sim/``, ``synth/``
at the top -- installed under the one ``snnforge`` namespace. Every package below those folders
is found here, so that a new family's folders need no edit of the packaging.
"""

from setuptools import find_namespace_packages, setup

ROOTS = {"snnforge": "snnforge", "snnforge.hw": "hw", "snnforge.golden": "golden",
         "snnforge.sim": "sim", "snnforge.synth": "synth"}

setup(package_dir=ROOTS,
      packages=[sub for name, path in ROOTS.items()
                for sub in [name] + [f"{name}.{found}" for found in
                                     find_namespace_packages(path, exclude=["*__pycache__*"])]])
