"""Range rules, one module each (:mod:`.base` says what a rule is and keeps the
registry). Importing a rule's module registers it under its name, so a new rule is its
module plus one import line below."""
from .base import (RANGE_RULES, RangeChoice, RangeRule, check_clip_rule, range_rule,
                   register_rule)
from .minmax import MinMax

# the registered rules, one import each, in the order error messages list them
from . import clip  # noqa: F401  "always" (min/max without a clip_percentile)
from . import mse  # noqa: F401  "mse"
from . import absmax  # noqa: F401  "absmax"

#: The names of the rules registered on import (``QuantOptions.clip_rule``).
CLIP_RULES: tuple[str, ...] = tuple(RANGE_RULES)

__all__ = ["RANGE_RULES", "CLIP_RULES", "RangeChoice", "RangeRule", "MinMax",
           "check_clip_rule", "range_rule", "register_rule"]
