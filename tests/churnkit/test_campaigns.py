"""Campaign metrics: equal to a direct pandas computation, intervals that cover the truth, and
the ``churnkit report`` command."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import churnkit as ck
from churnkit.campaigns.metrics import (
    campaign_contacts,
    campaign_ids,
    campaign_metrics,
    campaign_outcomes,
    report_campaign,
)
from churnkit.campaigns.report import render_campaign_report

COSTS = {"apology_compensation": 300.0, "free_delivery": 250.0, "promo_code": 100.0,
         "loyalty_points": 50.0, "vip_gift": 500.0, "we_miss_you": 5.0}


@pytest.fixture(scope="module")
def shop():
    tables, _ = ck.synth.generate(2000, seed=5, start="2023-01-01", end="2025-07-01")
    return tables


def test_metrics_equal_a_direct_pandas_computation(shop):
    campaign = campaign_ids(shop.contacts)[-6]
    m = report_campaign(shop, campaign, costs=COSTS, n_boot=200)
    c = shop.contacts[shop.contacts["campaign"] == campaign]
    t, k = c[c["group"] == "treatment"], c[c["group"] == "control"]
    assert (m.n_treatment, m.n_control) == (len(t), len(k))
    rate_t, rate_c = t["converted_at"].notna().mean(), k["converted_at"].notna().mean()
    table = m.table
    assert table.loc["winback_rate", "treatment"] == pytest.approx(rate_t)
    assert table.loc["winback_rate", "difference"] == pytest.approx(rate_t - rate_c)
    cost = t["action"].map(COSTS).sum()
    assert m.total_cost == pytest.approx(cost)
    returned = t[t["converted_at"].notna()]
    assert table.loc["cost_per_returned", "treatment"] == pytest.approx(cost / len(returned))
    days = (returned["converted_at"] - returned["sent_at"]).dt.total_seconds() / 86400
    assert table.loc["days_to_first_order", "treatment"] == pytest.approx(days.mean())

    # revenue and orders of returned customers in the 90 days after each send
    o = shop.orders[shop.orders["status"] != "cancelled"]
    per = []
    for row in returned.itertuples():
        mine = o[(o["customer_id"] == row.customer_id) & (o["ordered_at"] >= row.sent_at)
                 & (o["ordered_at"] < row.sent_at + pd.Timedelta(days=90))]
        per.append((mine["amount"].sum(), len(mine)))
    revenue = sum(r for r, _ in per)
    assert table.loc["basket_after_return", "treatment"] == pytest.approx(revenue / len(per))
    # ROI is in margin: the packaged policy's 30% of every category's revenue
    margin = ck.PolicyConfig.default().gross_margin.default * revenue
    assert table.loc["roi", "treatment"] == pytest.approx((margin - cost) / cost)
    assert table.loc["roi_revenue", "treatment"] == pytest.approx((revenue - cost) / cost)
    assert table.loc["revenue_per_contact", "treatment"] == pytest.approx(revenue / len(t))
    repeat = np.mean([n >= 2 for _, n in per])
    assert table.loc["repeat_purchase_rate", "treatment"] == pytest.approx(repeat)
    # every point value lies inside its interval
    for group in ("treatment", "control", "difference"):
        rows = table.dropna(subset=[f"{group}_low"])
        assert (rows[f"{group}_low"] <= rows[group] + 1e-9).all()
        assert (rows[group] <= rows[f"{group}_high"] + 1e-9).all()
    # per action: the same control group
    by = m.by_action
    assert set(by.index) == set(t["action"])
    a = by.index[0]
    rate_a = t.loc[t["action"] == a, "converted_at"].notna().mean()
    assert by.loc[a, "uplift"] == pytest.approx(rate_a - rate_c)


def _fake_outcomes(rng, n_t, n_c, p_t, p_c) -> pd.DataFrame:
    n = n_t + n_c
    group = np.array(["treatment"] * n_t + ["control"] * n_c)
    p = np.where(group == "treatment", p_t, p_c)
    returned = rng.random(n) < p
    sent = pd.Timestamp("2025-01-05", tz="UTC")
    days = rng.uniform(0, 30, n)
    out = pd.DataFrame({
        "contact_id": np.arange(n), "customer_id": np.arange(n), "group": group,
        "action": "promo_code", "sent_at": sent, "returned": returned,
        "converted_at": np.where(returned, sent + pd.to_timedelta(days, "D"), pd.NaT),
        "days_to_return": np.where(returned, days, np.nan),
        "orders_after": np.where(returned, rng.integers(1, 4, n), 0),
        "revenue_after": np.where(returned, rng.gamma(2.0, 1000.0, n), 0.0),
        "margin_after": 0.0,
        "basket_before": rng.gamma(2.0, 1000.0, n),
        "cost": np.where(group == "treatment", 100.0, 0.0)})
    out.attrs = {"campaign": "fake", "window_days": 90, "complete": True}
    return out


@pytest.mark.slow
def test_intervals_cover_the_true_effect_at_their_level():
    # Seeded: 100 campaigns with a known 7-point effect; a 95% interval must cover it about
    # 95% of the time, and a 50% interval about half the time (so the check can fail). Bounds
    # are ~3 binomial standard deviations (percentile intervals cover ~93% at these sizes: 300
    # replications gave 0.93).
    rng = np.random.default_rng(0)
    hits95 = hits50 = 0
    reps = 100
    for rep in range(reps):
        out = _fake_outcomes(rng, 900, 130, 0.27, 0.20)
        wide = campaign_metrics(out, n_boot=250, seed=rep).table.loc["winback_rate"]
        narrow = campaign_metrics(out, n_boot=250, level=0.5, seed=rep).table.loc["winback_rate"]
        hits95 += wide["difference_low"] <= 0.07 <= wide["difference_high"]
        hits50 += narrow["difference_low"] <= 0.07 <= narrow["difference_high"]
    assert 0.86 <= hits95 / reps <= 0.995
    assert 0.35 <= hits50 / reps <= 0.65


def test_campaign_id_falls_back_to_the_send_month(shop):
    contacts = shop.contacts.drop(columns="campaign")
    ids = campaign_ids(contacts)
    assert all(re.fullmatch(r"\d{4}-\d{2}", i) for i in ids)
    rows = campaign_contacts(contacts, ids[3])
    assert (rows["sent_at"].dt.strftime("%Y-%m") == ids[3]).all()
    assert len(rows) == (contacts["sent_at"].dt.strftime("%Y-%m") == ids[3]).sum()


def test_clear_errors(shop):
    with pytest.raises(ValueError, match=r"contacts: no campaign 'nope'.*latest: winback-"):
        campaign_contacts(shop.contacts, "nope")
    campaign = campaign_ids(shop.contacts)[-3]
    out = campaign_outcomes(shop, campaign, costs=COSTS)
    with pytest.raises(ValueError, match="0 control rows"):
        campaign_metrics(out[out["group"] == "treatment"])


def test_incomplete_window_is_flagged(shop):
    last = campaign_ids(shop.contacts)[-1]
    assert not campaign_outcomes(shop, last, costs=COSTS).attrs["complete"]
    m = report_campaign(shop, last, costs=COSTS, n_boot=100)
    assert "still growing" in render_campaign_report(m)


@pytest.mark.slow
def test_report_command_writes_html_and_fails_cleanly(shop, tmp_path):
    data = tmp_path / "shop"
    ck.save_tables(shop, data)
    campaign = campaign_ids(shop.contacts)[-4]
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    ok = subprocess.run([sys.executable, "-m", "churnkit", "report", "--data", str(data),
                         "--campaign", campaign, "--out", str(target), "--bootstrap", "200"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "win-back rate" in ok.stdout
    html = target.read_text()
    assert campaign in html and html.count('class="figure"') == 3
    assert "cited target" in html
    bad = subprocess.run([sys.executable, "-m", "churnkit", "report", "--data", str(data),
                          "--campaign", "nope", "--out", str(tmp_path / "out" / "bad.html")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("churnkit: error: contacts: no")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html"]


def test_roi_is_in_margin_on_a_hand_built_campaign():
    # Two contacted (customer 1 returns: books 200 and toys 100 in the window), two held out
    # (customer 3 returns: 50 without a category). Books keep 50%, toys 20%, the rest 30%.
    t = pd.Timestamp
    orders = pd.DataFrame({
        "customer_id": [1, 1, 1, 2, 3, 4],
        "ordered_at": [t("2024-12-01", tz="UTC"), t("2025-01-10", tz="UTC"),
                       t("2025-01-20", tz="UTC"), t("2024-11-01", tz="UTC"),
                       t("2025-01-12", tz="UTC"), t("2024-10-01", tz="UTC")],
        "amount": [100.0, 200.0, 100.0, 80.0, 50.0, 60.0],
        "status": ["delivered"] * 6,
        "category": ["books", "books", "toys", "books", None, "toys"]})
    sent = t("2025-01-05", tz="UTC")
    contacts = pd.DataFrame({
        "contact_id": [1, 2, 3, 4], "customer_id": [1, 2, 3, 4], "sent_at": [sent] * 4,
        "channel": ["email"] * 4, "action": ["we_miss_you"] * 4,
        "group": ["treatment", "treatment", "control", "control"],
        "opened_at": [pd.NaT] * 4,
        "converted_at": [t("2025-01-10", tz="UTC"), pd.NaT, t("2025-01-12", tz="UTC"), pd.NaT],
        "campaign": ["c1"] * 4})
    margin = ck.GrossMargin(0.3, {"books": 0.5, "toys": 0.2})
    m = report_campaign(ck.Tables(orders=orders, contacts=contacts), "c1", margin=margin,
                        costs={"we_miss_you": 10.0}, n_boot=100)
    table = m.table["treatment"]
    assert m.total_cost == 20.0
    # treatment: revenue 300, margin 200 x 0.5 + 100 x 0.2 = 120; control: margin 50 x 0.3
    assert m.outcomes["margin_after"].tolist() == pytest.approx([120.0, 0.0, 15.0, 0.0])
    assert table["roi"] == pytest.approx((120 - 20) / 20)  # 5.0
    assert table["roi_revenue"] == pytest.approx((300 - 20) / 20)  # 14.0
    assert table["incremental_roi"] == pytest.approx((2 * (60 - 7.5) - 20) / 20)  # 4.25
    assert m.table.loc["margin_per_contact", "treatment"] == pytest.approx(60.0)
    assert m.table.loc["margin_per_contact", "control"] == pytest.approx(7.5)
    assert m.table.loc["revenue_per_contact", "treatment"] == pytest.approx(150.0)  # revenue
    assert m.table.loc["basket_after_return", "treatment"] == pytest.approx(300.0)
    assert table["cost_per_returned"] == pytest.approx(20.0)
