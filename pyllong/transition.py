"""Attention Transition settings (Gao et al. 2023; ../shared/spec/attention-transition.md).

During the prompt pass, layer l (1 .. n_layer-3) edits the attention rows of its bands: weights
below alpha/e are dropped, the first token's weight halved, and beta of the removed mass is
handed to the text just before the band. Decoding is untouched. Off by default, and free when off.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .errors import InvalidArgumentError


@dataclass(frozen=True)
class Transition:
    """alpha: drop threshold factor (tau = alpha / e); beta: share of the removed mass handed
    on; bands: bands per layer (m). Defaults are the reference's."""
    alpha: float = 0.5
    beta: float = 0.1
    bands: int = 2

    def __post_init__(self):
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise InvalidArgumentError(f"Transition.{name} must be a number >= 0 (reference: "
                                           f"{0.5 if name == 'alpha' else 0.1}), got {v!r}")
        if isinstance(self.bands, bool) or not isinstance(self.bands, int) or not 1 <= self.bands <= 64:
            raise InvalidArgumentError(f"Transition.bands must be an integer in [1, 64] (reference: 2), got {self.bands!r}")

    def as_tuple(self) -> tuple[float, float, int]:
        return float(self.alpha), float(self.beta), int(self.bands)


def check_transition(value: Union[bool, None, Transition]) -> Optional[Transition]:
    """True = the reference settings, False/None = off, or a Transition."""
    if value is None or value is False:
        return None
    if value is True:
        return Transition()
    if isinstance(value, Transition):
        return value
    raise InvalidArgumentError(f"transition must be True, False, None or pyllong.Transition(alpha=, beta=, bands=), "
                               f"got {value!r}")


def parse_transition(s: str) -> Transition:
    """CLI form: "on" (reference settings) or "alpha,beta[,bands]"."""
    if s in ("on", "1", "true", "default"):
        return Transition()
    parts = s.split(",")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        return Transition(float(parts[0]), float(parts[1]), int(parts[2]) if len(parts) == 3 else 2)
    except (ValueError, InvalidArgumentError) as e:
        raise InvalidArgumentError(f"--transition takes 'on' or ALPHA,BETA[,BANDS] (e.g. 0.5,0.1,2), got {s!r}"
                                   f"{': ' + str(e) if isinstance(e, InvalidArgumentError) else ''}") from None
