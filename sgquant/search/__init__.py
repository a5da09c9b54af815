r"""Auto-bit selection: random search and the paper's XGBoost cost-model search.

Goal (see the architecture page): the :class:`~sgquant.assignment.BitAssignment` with the
largest memory saving whose validation accuracy stays within ``tolerance``
percentage points of FP32,

.. math::

    a^\star = \arg\max_{a \in \mathcal{M}} \text{saving}(a) \quad\text{s.t.}\quad
    \text{val}(a) \ge \text{val}_{FP32} - \text{tolerance} / 100,

over the set :math:`\mathcal{M}` of *measured* configurations (each one
fine-tuned from the FP32 weights and scored on validation by
:func:`sgquant.measure.finetune_record`). Test accuracy is reported for
:math:`a^\star` only.

* :func:`random_search` measures ``budget`` configurations drawn uniformly from
  the :class:`SearchSpace` (att bits per layer, emb bits per layer and degree
  bucket, each from ``bit_choices``).
* :func:`cost_model_search` follows the paper's steps 1-5: measure ``n_mea``
  random configurations (the same first draws as :func:`random_search` with the
  same seed); fit XGBoost regressors (:class:`CostModel`) from configuration
  features (:func:`config_features`: bits per field, average bits, memory,
  saving) to validation accuracy; score ``n_sample`` fresh candidates; measure
  the top ``n_mea`` (:func:`select_candidates`); repeat ``n_iter`` times.

  Uniform candidates alone almost never find the large savings: on Cora and
  CiteSeer the binary layer-1 inputs are lossless at 1 bit and dominate the
  element count, so every layer-1 bucket must be at 1 bit together (a chance
  of 1 in 1000 per uniform draw). :data:`STRATEGY` (a
  :class:`Strategy`, see :func:`cost_model_step`) therefore also scores mutations
  and recombinations of the best configurations (chained over a few generations scored by the
  model), keeps the model monotone in the bits, anchors it with FP32, trusts
  it only a few fields away from known-good configurations, and picks
  optimistically with a small bagged ensemble. :data:`PAPER_STRATEGY` is the
  plain version, kept as an ablation.

Confirmation (both searches, :func:`confirm_choice`): with 500 validation
nodes, 0.5 points is 2.5 nodes, so the feasible configuration with the
largest saving often passed by the luck of its one fine-tune (the winner's
curse). After the budget is spent, the ``confirm_top`` feasible configurations
with the largest savings are fine-tuned ``confirm_seeds`` more times from the
same FP32 weights (other fine-tune seeds) and the chosen one is the largest
saving whose *mean* validation accuracy stays within tolerance; its test
accuracy is reported as the mean over these fine-tunes too. The extra
fine-tunes are counted apart from the budget (``num_confirmations``).

Measurements are independent jobs (:mod:`sgquant.runner`) submitted to a
:class:`concurrent.futures.Executor` (:func:`sgquant.runner.make_executor`: a "spawn"
process pool by default, a :class:`~sgquant.runner.SerialExecutor` in-process, or a Dask
cluster); the driver checks and caches every record, so rerunning an interrupted
search measures nothing twice, and a search whose measurements fail too often stops
with :class:`SearchFailed`.

Modules: :mod:`~sgquant.search.space` (space, sampler), :mod:`~sgquant.search.features`,
:mod:`~sgquant.search.cost_model`, :mod:`~sgquant.search.candidates`,
:mod:`~sgquant.search.selection`, :mod:`~sgquant.search.strategy`,
:mod:`~sgquant.search.step` (one cost-model iteration), :mod:`~sgquant.search.rounds`,
:mod:`~sgquant.search.failures`, :mod:`~sgquant.search.confirm`,
:mod:`~sgquant.search.driver` (the searches), :mod:`~sgquant.search.result`,
:mod:`~sgquant.search.cli` (``sgquant search``).
"""

from __future__ import annotations

from .candidates import TrustRegion, elite_rows, propose_candidates
from .cli import add_cli, default_output_name
from .confirm import check_confirm, confirm_choice, confirmation_seeds
from .cost_model import CostModel
from .driver import METHODS, check_tolerance, cost_model_search, random_search, search
from .failures import FailureLog, SearchFailed
from .features import FEATURE_EXTRAS, FeatureCache, config_features, feature_frame
from .result import SearchResult, best_so_far, curves
from .selection import select_candidates
from .space import SearchSpace, Sampler, check_bit_choices
from .step import PHASES, cost_model_step
from .strategy import PAPER_STRATEGY, STRATEGY, Strategy, check_strategy

__all__ = [
    "METHODS", "FEATURE_EXTRAS", "PHASES", "SearchSpace", "Sampler", "CostModel",
    "SearchResult", "SearchFailed",
    "FailureLog", "Strategy", "STRATEGY", "PAPER_STRATEGY", "TrustRegion",
    "config_features", "feature_frame", "FeatureCache", "propose_candidates",
    "elite_rows", "select_candidates", "cost_model_step", "random_search",
    "cost_model_search", "search", "best_so_far",
    "curves", "check_bit_choices", "check_tolerance", "check_strategy", "check_confirm",
    "confirm_choice", "confirmation_seeds", "add_cli", "default_output_name",
]
