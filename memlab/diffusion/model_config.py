"""ModelConfig: which denoiser is trained (family, size knobs, output units, initialisation). The model part
of a TrainConfig; no framework imports (the CLI builds and validates it before JAX is loaded)."""

from __future__ import annotations

from dataclasses import dataclass

from memlab.diffusion.networks import FAMILIES, NAMES
from memlab.errors import FieldError, check_choice, check_int
from memlab.options import option

PREDICTS = ("eps", "x0")
INITS = ("pmem", "random")
# fields that only some families read: None elsewhere, the family's default when not given
FAMILY_OPTIONS = {name: dict(f.options) for name, f in FAMILIES.items()}
_OWNERS = {opt: name for name, opts in FAMILY_OPTIONS.items() for opt in opts}
FAMILY_ONLY = tuple(_OWNERS)  # ("patch", "heads")


def _meaning(attr: str) -> str:
    return "; ".join(f"{f.name}: {getattr(f, attr)}" for f in FAMILIES.values() if getattr(f, attr) != "unused")


@dataclass(frozen=True)
class ModelConfig:
    """One denoiser. `size` and `depth` mean what its family says (networks.FAMILIES)."""

    family: str = option("mixture", "denoiser family", flag="--model", choices=NAMES)
    size: int = option(16, _meaning("size"))
    depth: int = option(2, _meaning("depth"))
    predict: str = option("eps", "network output (the mixtures compute x0 in closed form)", choices=PREDICTS)
    init: str = option("pmem", "mixture initialisation (pmem: start at theta_pmem(M)); neural nets start random",
                       choices=INITS)
    patch: int | None = option(None, "dit only: patch side", unit="pixels", shown="dit: 3")
    heads: int | None = option(None, "dit only: attention heads (must divide --size)", shown="dit: 4")

    def __post_init__(self):
        check_choice("family", self.family, NAMES)
        check_int("size", self.size, 1)
        check_int("depth", self.depth, 1)
        check_choice("predict", self.predict, PREDICTS)
        check_choice("init", self.init, INITS)
        own = FAMILY_OPTIONS[self.family]
        for name, owner in _OWNERS.items():
            value = getattr(self, name)
            if name not in own:
                if value is not None:
                    raise FieldError(name, f"applies to model {owner!r} only, got {value!r} for model {self.family!r}")
                continue
            if value is None:
                object.__setattr__(self, name, own[name])
            check_int(name, getattr(self, name), 1)
        if FAMILIES[self.family].check_config is not None:
            FAMILIES[self.family].check_config(self)

    def options(self) -> dict:
        """The family-only fields this family reads, with their values."""
        return {name: getattr(self, name) for name in FAMILY_OPTIONS[self.family]}
