"""Boyan's chain: LSTD(0) learns fastest and every method approaches the shared fixed point."""

from agents import textbook


def test_boyan_lstd_learns_fastest(experiment_result):
    res = experiment_result("boyan-lstd", 10)
    lstd = textbook.find_series(res, method="lstd")
    others = [s for s in res["series"] if s["params"]["method"] != "lstd"]
    assert len(others) == 5
    assert all(lstd["y"][10] < s["y"][10] for s in others)
    assert all(s["y"][-1] < 0.2 * s["y"][0] for s in res["series"])
