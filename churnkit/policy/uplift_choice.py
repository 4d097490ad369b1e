"""Choosing the action by its uplift: the one with the highest expected incremental profit
``uplift × value − cost``, or ``do_not_contact`` when none is positive. ``value`` is in margin
(docs/policy.md "Money in margin": revenue × the customer's gross-margin share, as
:func:`churnkit.policy.customer_value` gives it), so the profit is the shop's, not its revenue.

Costs come from the policy config (:meth:`PolicyConfig.action_cost`: the message cost plus what
is offered, compensation scaling with the customer's value), so an evaluation prices actions as
the bundle's own policy does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from churnkit.policy.config import PolicyConfig

Costs = pd.DataFrame | Mapping[str, float] | Callable[[str, pd.Series], pd.Series]


def cost_frame(costs: Costs, value: pd.Series, actions: Sequence[str]) -> pd.DataFrame:
    """Cost per customer and action (currency) from a frame, a mapping or a callable
    ``(action, value) -> cost``."""
    if isinstance(costs, pd.DataFrame):
        missing = [a for a in actions if a not in costs.columns]
        if missing:
            raise ValueError(f"costs: no column for actions {missing}")
        return costs.reindex(index=value.index, columns=list(actions)).astype(float)
    if callable(costs):
        return pd.DataFrame({a: np.asarray(costs(a, value), dtype=float) * np.ones(len(value))
                             for a in actions}, index=value.index)
    missing = [a for a in actions if a not in costs]
    if missing:
        raise ValueError(f"costs: no cost for actions {missing}")
    return pd.DataFrame({a: float(costs[a]) for a in actions}, index=value.index)


def choose_by_uplift(uplift: pd.DataFrame, value: pd.Series | float, costs: Costs, *,
                     cost_basis: pd.Series | None = None) -> pd.DataFrame:
    """The action with the highest expected incremental profit, or ``do_not_contact``.

    Parameters
    ----------
    uplift
        Index ``customer_id``, one column per action: increase in P(return) (as
        :meth:`UpliftModel.predict` returns).
    value
        Margin (currency) a return is worth per customer (e.g. ``value_if_returned`` ×
        ``margin_share``), aligned with ``uplift`` (a scalar applies to everyone). Missing
        values count as 0.
    costs
        Cost of each action per customer (currency): a frame (index ``customer_id``, a column
        per action), a mapping ``action -> cost`` or a callable ``(action, value) -> cost``.
    cost_basis
        The customer value a callable ``costs`` is given (the policy sizes offers against
        revenue: pass :func:`churnkit.policy.customer_revenue`); default ``value``.

    Returns
    -------
    pd.DataFrame
        Index of ``uplift``: ``action`` (``do_not_contact`` when no action has a positive
        expected incremental profit) and ``expected_incremental_profit`` (currency,
        ``uplift × value − cost`` of the chosen action; 0 for ``do_not_contact``).
    """
    if not isinstance(value, pd.Series):
        value = pd.Series(float(value), index=uplift.index)
    value = value.reindex(uplift.index).astype(float).fillna(0.0)
    actions = [a for a in uplift.columns if a != "do_not_contact"]
    basis = value if cost_basis is None else \
        cost_basis.reindex(uplift.index).astype(float).fillna(0.0)
    cost = cost_frame(costs, basis, actions)
    profit = uplift[actions].to_numpy(dtype=float) * value.to_numpy()[:, None] \
        - cost.to_numpy(dtype=float)
    best = np.argmax(profit, axis=1) if len(actions) else np.zeros(len(uplift), dtype=int)
    best_profit = profit[np.arange(len(profit)), best] if len(actions) else \
        np.zeros(len(uplift))
    act = best_profit > 0
    return pd.DataFrame({
        "action": np.where(act, np.asarray(actions, dtype=object)[best] if len(actions)
                           else "do_not_contact", "do_not_contact"),
        "expected_incremental_profit": np.where(act, best_profit, 0.0),
    }, index=uplift.index)


def cost_function(config: PolicyConfig | None = None) -> Callable[[str, pd.Series], pd.Series]:
    """``(action, value) -> cost`` per customer (currency) under ``config`` (the packaged
    defaults when None); missing values count as 0."""
    config = config or PolicyConfig.default()

    def cost(action: str, value: pd.Series) -> pd.Series:
        values = pd.Series(value, dtype=float).fillna(0.0)
        return pd.Series([float(config.action_cost(action, v)) for v in values],
                         index=values.index)
    return cost
