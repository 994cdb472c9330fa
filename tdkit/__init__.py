"""tdkit: temporal-difference learning in JAX.

Top-level names are the TD core: one-step TD errors (`td_learning`, `q_learning`, ...),
multi-step errors and returns for one trajectory (`td_lambda`, `retrace`, `lambda_returns`,
...), losses (`l2_loss`, `huber_loss`, `td_loss` with its `TDRule` and `TDLoss`) and the
`Transition` container.
Distributional TD (`tdkit.distributional`): categorical (C51) and quantile (QR-DQN, IQN) TD
with rlax's names, and `TDRule`s for `td_loss`.
Submodules: `values` (value functions), `networks` (dueling, noisy and IQN Q-networks),
`features` (tile coding, Fourier, ...), `grads` (per-example gradients), `autodiff` (Hessians,
HVPs, Jacobians, custom gradients), `replay`, `nstep`, `policies`, and the classic TD family:
`traces` (TD(lambda), true online), `gradient_td` (GTD2, TDC, TDRC), `emphatic`, `lstd`,
`dp` (expected updates, VE, PBE), and `parallel` (device meshes, sharded per-example
gradients, `jax.distributed` launch).
"""

from tdkit import (
    autodiff,
    distributional,
    dp,
    emphatic,
    features,
    gradient_td,
    grads,
    lstd,
    networks,
    nstep,
    parallel,
    policies,
    replay,
    traces,
    values,
)
from tdkit.distributional import (
    categorical_double_q_learning,
    categorical_l2_project,
    categorical_q_learning,
    categorical_td_learning,
    iqn_q_learning,
    quantile_expected_sarsa,
    quantile_q_learning,
    quantile_regression_loss,
)
from tdkit.losses import TDLoss, TDRule, huber_loss, l2_loss, td_loss
from tdkit.multistep import (
    VTraceOutput,
    q_lambda,
    retrace,
    sarsa_lambda,
    td_lambda,
    tree_backup,
    vtrace,
    vtrace_td_error_and_advantage,
)
from tdkit.returns import (
    batched_index,
    discounted_returns,
    general_off_policy_returns_from_action_values,
    general_off_policy_returns_from_q_and_v,
    lambda_returns,
    n_step_bootstrapped_returns,
    watkins_lambda,
)
from tdkit.td import (
    double_q_learning,
    expected_sarsa,
    q_learning,
    sarsa,
    td_learning,
)
from tdkit.types import SarsaTransition, Transition, discount_from_terminated

__version__ = "0.1.0"

__all__ = [
    "SarsaTransition",
    "TDLoss",
    "TDRule",
    "Transition",
    "autodiff",
    "distributional",
    "dp",
    "emphatic",
    "features",
    "gradient_td",
    "grads",
    "lstd",
    "networks",
    "nstep",
    "parallel",
    "policies",
    "replay",
    "td_loss",
    "traces",
    "values",
    "VTraceOutput",
    "categorical_double_q_learning",
    "categorical_l2_project",
    "categorical_q_learning",
    "categorical_td_learning",
    "iqn_q_learning",
    "quantile_expected_sarsa",
    "quantile_q_learning",
    "quantile_regression_loss",
    "batched_index",
    "discount_from_terminated",
    "discounted_returns",
    "double_q_learning",
    "expected_sarsa",
    "general_off_policy_returns_from_action_values",
    "general_off_policy_returns_from_q_and_v",
    "huber_loss",
    "l2_loss",
    "lambda_returns",
    "n_step_bootstrapped_returns",
    "q_lambda",
    "q_learning",
    "retrace",
    "sarsa",
    "sarsa_lambda",
    "td_lambda",
    "td_learning",
    "tree_backup",
    "vtrace",
    "vtrace_td_error_and_advantage",
    "watkins_lambda",
]
