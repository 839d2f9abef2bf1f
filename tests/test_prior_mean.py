"""Mechanistic prior means: a lab's own model as a plugin, and the emulator of a slow one.

A kinetic model costs milliseconds a call and a proposal evaluates the prior thousands of times; the
emulator (``orchestrator.planning.unit_prior.UnitPrior``) calls the model a fixed number of times per group of
snapped values, once per campaign. A campaign file names a model by ``prior_mean.model`` (``simulator`` in older files): a
built-in one or a plugin in the ``sdl.prior_means`` entry-point group.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from orchestrator.planning.calibration import GRID
from orchestrator.run.campaign import Campaign
from orchestrator.errors import SpecError
from orchestrator.planning.prior_mean import ENTRY_POINT_GROUP, CalibratedModel, build_prior_mean
from orchestrator.planning.unit_prior import EMULATOR_MAX_GROUPS, UnitPrior
from orchestrator.spec.loader import parse_spec
from tests.test_plugins import install
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.parameters import Parameter

SPACE = SearchSpace([Parameter(name="temperature", type="continuous", bounds=(20, 80)),
                     Parameter(name="time", type="continuous", bounds=(1, 100), scale="log"),
                     Parameter(name="catalyst", type="categorical", values=["Pd", "Ni"])])


def kinetic_yield(p):
    """First-order conversion with an Arrhenius rate: smooth, like the ODE models labs use as priors."""
    k = (1.0 if p["catalyst"] == "Pd" else 0.4) * 0.02 * math.exp(0.04 * (p["temperature"] - 50))
    return {"yield": 1 - math.exp(-k * p["time"]), "cost": 0.1 * p["time"]}


def random_units(n, seed=0):
    """Unit points of SPACE with one-hot catalyst columns."""
    rng = np.random.default_rng(seed)
    U = np.zeros((n, SPACE.dim))
    U[:, :2] = rng.random((n, 2))
    U[np.arange(n), 2 + rng.integers(0, 2, n)] = 1.0
    return U


def test_the_emulator_matches_the_model_and_stops_calling_it():
    prior = UnitPrior(SPACE, kinetic_yield, "yield", seed=1)
    assert prior.outputs == ["cost", "yield"]
    U = random_units(300)
    emulated = prior.values(U)
    calls = prior.model_calls
    # two groups (one per catalyst), each fitted at `points` Sobol points and checked at half as many more
    assert calls == 1 + 2 * (prior.points + prior.points // 2)
    exact = np.array([[kinetic_yield(SPACE.from_unit(u))[k] for k in prior.outputs] for u in U])
    spread = np.ptp(exact, axis=0)
    assert np.sqrt(np.mean((emulated - exact) ** 2, axis=0)).max() < 0.01 * spread.max()
    assert np.abs(emulated - exact).max(axis=0).tolist() < (0.05 * spread).tolist()
    prior.values(random_units(5000, seed=2))  # a proposal's worth of points: no more model calls
    assert prior.model_calls == calls
    described = prior.describe()
    assert described["emulated"] and described["groups_built"] == 2 and described["groups_calling_the_model"] == 0
    assert described["worst_check_rmse"] < 0.02 and described["largest_check_error"] < 0.1


def test_a_group_the_interpolant_cannot_follow_calls_the_model():
    def rough(p):
        ripple = math.sin(60 * p["temperature"]) if p["catalyst"] == "Ni" else 0.0
        return p["temperature"] / 80 + ripple

    prior = UnitPrior(SPACE, rough, "yield")
    U = random_units(50)
    values = prior.values(U)[:, 0]
    assert values.tolist() == pytest.approx([rough(SPACE.from_unit(u)) for u in U], abs=1e-3 * 80)
    ni = U[:, 3] == 1.0
    assert values[ni].tolist() == pytest.approx([rough(SPACE.from_unit(u)) for u in U[ni]], rel=1e-12)
    described = prior.describe()
    assert described["groups_calling_the_model"] == 1
    assert "held-out error above 2%" in described["why_they_call_it"]


def test_a_model_that_raises_somewhere_in_the_box_is_called_where_asked():
    def picky(p):
        if p["temperature"] > 70:
            raise ValueError("outside the model's validity")
        return p["temperature"]

    prior = UnitPrior(SPACE, picky, "yield")
    U = random_units(20)
    U[:, 0] = np.linspace(0.0, 0.8, 20)  # temperatures 20..68: the model works there
    assert prior.values(U)[:, 0].tolist() == pytest.approx(20 + 60 * U[:, 0])
    assert "outside the model's validity" in prior.describe()["why_they_call_it"]


def test_too_many_snapped_combinations_are_not_emulated():
    space = SearchSpace([Parameter(name="x", type="continuous", bounds=(0, 1)),
                         Parameter(name="n", type="integer", bounds=(0, EMULATOR_MAX_GROUPS))])
    prior = UnitPrior(space, lambda p: p["x"] + p["n"], "y")
    assert prior.values(np.array([[0.5, 0.25]]))[:, 0].tolist() == pytest.approx([0.5 + 4])
    assert prior.model_calls == 2  # the probe and the point: nothing built
    described = prior.describe()
    assert not described["emulated"] and f"{EMULATOR_MAX_GROUPS + 1} combinations" in described["why"]


def test_too_many_continuous_parameters_are_not_emulated():
    """300 continuous parameters' emulator (32,768 points) ran out of memory; beyond 20 the model is called."""
    from orchestrator.planning.unit_prior import EMULATOR_MAX_DIMS

    dims = EMULATOR_MAX_DIMS + 1
    space = SearchSpace([Parameter(name=f"x{i}", type="continuous", bounds=(0, 1)) for i in range(dims)])
    prior = UnitPrior(space, lambda p: sum(p.values()), "y")
    assert prior.values(np.full((3, dims), 0.5))[:, 0].tolist() == pytest.approx([dims / 2] * 3)
    assert prior.model_calls <= 4  # the probe and the points: nothing built
    described = prior.describe()
    assert not described["emulated"] and f"{dims} continuous parameters; emulated up to 20" in described["why"]


def test_without_continuous_parameters_each_point_is_called_once():
    space = SearchSpace([Parameter(name="n", type="integer", bounds=(0, 30)),
                         Parameter(name="c", type="categorical", values=["a", "b"])])
    prior = UnitPrior(space, lambda p: p["n"] * (2 if p["c"] == "b" else 1), "y")
    U = np.array([[0.5, 1.0, 0.0], [0.5, 0.0, 1.0], [0.51, 1.0, 0.0], [0.5, 0.0, 1.0]])
    assert prior.values(U)[:, 0].tolist() == [15, 30, 15, 30]
    assert prior.model_calls == 1 + 2  # the probe, then the two distinct points


def test_a_campaigns_proposals_say_how_the_prior_was_evaluated(tmp_path):
    text = """
name: emulated-prior
seed: 4
parameters:
  - {name: temperature, type: continuous, bounds: [20, 80]}
  - {name: time, type: continuous, bounds: [1, 100], scale: log}
  - {name: catalyst, type: categorical, values: [Pd, Ni]}
objectives:
  - {name: yield, direction: maximize}
budget: {experiments: 6, batch_size: 2}
"""
    def tell_design(campaign):
        for p in campaign.ask(2):
            campaign.tell(p.id, {"yield": kinetic_yield(p.params)["yield"]})
        return campaign.ask(1)[0]

    def prior(p):
        return {"yield": kinetic_yield(p)["yield"]}

    emulated = tell_design(Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'e.db'}", prior_mean=prior))
    assert emulated.info["prior_mean"]["emulated"] and emulated.info["prior_mean"]["groups_built"] == 2
    assert emulated.info["model"].endswith("on the residual of a prior mean")
    exact_text = text + "prior_mean: {simulator: linear, settings: {yield: {intercept: 0.2}}, emulate: false}\n"
    exact = tell_design(Campaign.from_text(exact_text, store=f"sqlite:///{tmp_path / 'x.db'}"))
    assert exact.info["prior_mean"] == {"emulated": False, "why": "emulate: false",
                                        "model_calls": exact.info["prior_mean"]["model_calls"]}
    assert exact.info["prior_mean"]["model_calls"] > 100  # every point the optimiser looked at


# a hybrid model: settings calibrated to the campaign's data --------------------------------------


def shifted_kinetics(settings):
    """``kinetic_yield`` with the reactor ``shift_K`` hotter than set (a scale-up setting to calibrate)."""
    shift = float(settings.get("shift_K", 0.0))
    return lambda p: {"yield": kinetic_yield({**p, "temperature": p["temperature"] + shift})["yield"]}


def plant_observations(n, shift_K=7.0, offset=0.03, seed=3):
    """``n`` measurements of a 'plant' that runs ``shift_K`` hotter than the model's default, plus an offset."""
    plant = shifted_kinetics({"shift_K": shift_K})
    return [(p, {"yield": plant(p)["yield"] + offset}) for p in (SPACE.from_unit(u) for u in random_units(n, seed))]


@pytest.mark.parametrize("emulate", [True, False])
def test_calibration_recovers_the_setting_that_made_the_data(emulate):
    model = CalibratedModel(shifted_kinetics, {"shift_K": 0.0}, {"shift_K": (-20.0, 20.0)})
    prior = UnitPrior(SPACE, model, "yield", emulate=emulate, seed=1)
    assert prior.calibration.values() == {"shift_K": 0.0}  # the given setting, until there is data
    prior.calibrate(plant_observations(12))
    fit = prior.describe()["calibration"]
    assert fit["fit"]["shift_K"] == pytest.approx(7.0, abs=0.05)
    assert prior.calibration.values()["shift_K"] == pytest.approx(7.0, abs=40 / GRID / 2 + 0.05)  # rounded
    assert fit["fitted"] and fit["observations"] == 12
    assert fit["relative_mse_fitted"] < 0.01 * fit["relative_mse_at_start"]
    U = random_units(20, seed=9)  # the prior now follows the plant (up to the offset the GP's constant takes)
    plant = np.array([shifted_kinetics({"shift_K": 7.0})(SPACE.from_unit(u))["yield"] for u in U])
    assert np.abs(prior.values(U)[:, 0] - plant).max() < 0.02
    before = prior.describe()["calibration"]["fit"]
    prior.calibrate(plant_observations(12))  # the same data: the same fit (replays reproduce proposals)
    assert prior.describe()["calibration"]["fit"] == before


def noisy_plant(n, sd, seed):
    rng = np.random.default_rng(seed)
    return [(p, {"yield": v["yield"] + rng.normal(0.0, sd)}) for p, v in plant_observations(n, seed=seed + 10)]


def centred_mse(observations, shift_K):
    """Mean squared residual of ``shifted_kinetics`` at ``shift_K``, its mean (the GP's offset) taken out."""
    model = shifted_kinetics({"shift_K": shift_K})
    residual = np.array([v["yield"] - model(p)["yield"] for p, v in observations])
    return np.mean((residual - residual.mean()) ** 2)


def test_a_few_noisy_measurements_leave_the_fit_near_the_given_value():
    """Four measurements whose noise (sd 0.3 in yield) swamps the setting's effect: least squares alone
    goes to the edge of the box; the prior keeps the fit near the given value (0 K)."""
    observations = noisy_plant(4, sd=0.3, seed=1)
    shifts = np.linspace(-20.0, 20.0, 161)
    assert shifts[int(np.argmin([centred_mse(observations, s) for s in shifts]))] == 20.0  # least squares: the edge
    prior = UnitPrior(SPACE, CalibratedModel(shifted_kinetics, {"shift_K": 0.0}, {"shift_K": (-20.0, 20.0)}),
                      "yield", emulate=False)
    prior.calibrate(observations)
    assert abs(prior.describe()["calibration"]["fit"]["shift_K"]) < 5.0


def test_the_fitted_settings_spread_matches_the_posterior_on_a_grid():
    """24 measurements with noise sd 0.05: the reported sd (Laplace) against the sd of the fit's posterior
    (profiled Gaussian likelihood times the prior, sd a quarter of the 40 K range) over a fine grid."""
    observations = noisy_plant(24, sd=0.05, seed=0)
    shifts = np.linspace(-20.0, 20.0, 801)
    n = len(observations)
    loss = np.array([0.5 * n * np.log(centred_mse(observations, s)) + 0.5 * (s / 10.0) ** 2 for s in shifts])
    weights = np.exp(-(loss - loss.min()))
    weights /= weights.sum()
    mean = float((weights * shifts).sum())
    sd = float(np.sqrt((weights * (shifts - mean) ** 2).sum()))
    prior = UnitPrior(SPACE, CalibratedModel(shifted_kinetics, {"shift_K": 0.0}, {"shift_K": (-20.0, 20.0)}), "yield")
    prior.calibrate(observations)
    fit = prior.describe()["calibration"]
    assert fit["fit"]["shift_K"] == pytest.approx(shifts[int(loss.argmin())], abs=0.1)
    assert fit["fit_sd"]["shift_K"] == pytest.approx(sd, rel=0.15)
    more = UnitPrior(SPACE, CalibratedModel(shifted_kinetics, {"shift_K": 0.0}, {"shift_K": (-20.0, 20.0)}), "yield")
    more.calibrate(noisy_plant(96, sd=0.05, seed=0))
    assert more.describe()["calibration"]["fit_sd"]["shift_K"] < 0.7 * fit["fit_sd"]["shift_K"]


def test_the_spread_of_two_correlated_settings_is_the_inverse_curvature():
    """On a quadratic negative log posterior with a known precision matrix (correlated settings, one fit on
    the edge of its box), the reported sds are those of its inverse, scaled to the settings' ranges."""
    from orchestrator.planning.calibration import Calibration

    def two_settings(settings):
        return shifted_kinetics({"shift_K": settings["shift_K"] * settings["scale"]})

    calibration = Calibration(SPACE, CalibratedModel(two_settings, {"shift_K": 0.0, "scale": 1.0},
                                                     {"shift_K": (-20.0, 20.0), "scale": (0.5, 1.5)}))
    precision = np.array([[400.0, -150.0], [-150.0, 100.0]])
    for fitted in (np.array([0.3, 0.6]), np.array([1.0, 0.2])):
        spread = calibration._spread(lambda T: 0.5 * np.einsum("ti,ij,tj->t", T - fitted, precision, T - fitted),
                                     fitted)
        expected = np.sqrt(np.diag(np.linalg.inv(precision))) * np.array([40.0, 1.0])
        assert [spread["shift_K"], spread["scale"]] == pytest.approx(expected.tolist(), rel=1e-6)


def test_the_model_is_configured_once_per_setting_value_the_emulated_fit_uses():
    configured = []

    def counting_factory(settings):
        configured.append(dict(settings))
        return shifted_kinetics(settings)

    prior = UnitPrior(SPACE, CalibratedModel(counting_factory, {}, {"shift_K": (-20.0, 20.0)}), "yield")
    configured.clear()
    prior.calibrate(plant_observations(12))
    design = prior.calibration.points * 3 // 2  # the fit's values of the setting, and its check's
    assert prior.describe()["calibration"]["points_calling_the_model"] == 0
    assert len(configured) == design + 1  # + once at the fitted value, for the prior itself
    prior.calibrate(plant_observations(14))  # two new points: evaluated at the same setting values
    assert len(configured) <= design + 2


def test_too_few_measurements_keep_the_starting_values():
    model = CalibratedModel(shifted_kinetics, {}, {"shift_K": (-20.0, 10.0)})
    prior = UnitPrior(SPACE, model, "yield")
    prior.calibrate(plant_observations(2))  # one setting and the GP's offset need at least 3
    assert prior.calibration.values() == {"shift_K": -5.0}  # no start given: the middle of the range
    fit = prior.describe()["calibration"]
    assert not fit["fitted"]
    assert fit["why"] == "fitting 1 setting(s) needs 3 measurements of an output it predicts"
    prior.calibrate(plant_observations(3))
    assert prior.describe()["calibration"]["fitted"]


def test_a_fit_that_moves_back_finds_its_emulator_kept():
    prior = UnitPrior(SPACE, CalibratedModel(shifted_kinetics, {}, {"shift_K": (-20.0, 20.0)}), "yield")
    U = random_units(50)
    first = {}
    for shift in (7.0, -5.0):
        prior.calibrate(plant_observations(12, shift_K=shift))
        first[shift] = prior.values(U)
    calls = prior.model_calls
    prior.calibrate(plant_observations(12, shift_K=7.0))
    assert prior.calibration.values()["shift_K"] == pytest.approx(7.0, abs=0.2)
    assert prior.values(U).tolist() == first[7.0].tolist() and prior.model_calls == calls  # not rebuilt
    assert prior.describe()["groups_built"] == 2


def test_a_campaign_file_calibrates_a_plugin_model(site, tmp_path):
    install_prior_plugin(site, "lab-kinetics", {"arrhenius": "lab_kinetics:arrhenius"})
    c = Campaign.from_text(calibrated_campaign("{offset_K: [-15, 15]}"), store=f"sqlite:///{tmp_path / 'c.db'}")

    def plant(p):  # the lab's model, 9 K hotter
        return 1 - math.exp(-0.05 * math.exp(0.04 * (p["temperature"] + 9 - 50)) * p["time"])

    infos = []
    while len(infos) < 10:
        for p in c.ask(2):
            c.tell(p.id, {"yield": plant(p.params)})
            infos.append(p.info)
    assert infos[2]["prior_mean"]["calibrated"] == {"offset_K": 0.0}  # 2 measurements: the start stays
    assert not infos[2]["prior_mean"]["calibration"]["fitted"]
    assert infos[-1]["prior_mean"]["calibration"]["fitted"]
    assert infos[-1]["prior_mean"]["calibrated"]["offset_K"] == pytest.approx(9.0, abs=0.5)


def test_a_calibrated_campaign_replays_identically(site, tmp_path, capsys):
    """The fit depends only on the measurements, so ``sdl replay`` repeats every proposal."""
    from tests.test_bundle_replay import export_bundle, replay

    install_prior_plugin(site, "lab-kinetics", {"arrhenius": "lab_kinetics:arrhenius"})
    url = f"sqlite:///{tmp_path / 'r.db'}"
    c = Campaign.from_text(calibrated_campaign("{offset_K: [-15, 15]}"), store=url)
    for _ in range(4):
        proposals = c.ask(2)
        for p in proposals:
            c.tell(p.id, {"yield": 1 - math.exp(-0.05 * math.exp(0.04 * (p.params["temperature"] - 45))
                                                 * p.params["time"])})
    assert proposals[-1].info["prior_mean"]["calibration"]["fitted"]
    code, out, _ = replay(export_bundle((url, "plugin-prior"), tmp_path / "b"), capsys)
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "replay: 8/8 proposals identical"


@pytest.mark.parametrize("calibrate, message", [
    ("{offset_K: [5, -5]}", "prior_mean.calibrate.offset_K: [5.0, -5.0] is empty; give [low, high] with low < high"),
    ("{rate_at_50: [0.1, 0.2]}", "prior_mean.settings.rate_at_50 = 0.05 is outside prior_mean.calibrate.rate_at_50"),
    ("{rate_at_50: [-0.1, 0.2]}", "prior_mean.settings for 'arrhenius': rate_at_50 = -0.1 must be > 0"),
    ("{offset_K: [a, 2]}", "prior_mean.calibrate.offset_K"),
])
def test_a_calibration_that_cannot_work_is_a_one_line_error(site, calibrate, message):
    install_prior_plugin(site, "lab-kinetics", {"arrhenius": "lab_kinetics:arrhenius"})
    with pytest.raises(SpecError) as caught:
        parse_spec(calibrated_campaign(calibrate))
    text = caught.value.one_line()
    assert message in text and "\n" not in text


LINEAR_CAMPAIGN = """
name: linear-trend
seed: 4
parameters:
  - {name: temperature, type: continuous, bounds: [20, 80]}
  - {name: time, type: continuous, bounds: [1, 100], scale: log}
objectives:
  - {name: yield, direction: maximize}
budget: {experiments: 8, batch_size: 2}
prior_mean:
  simulator: linear
  settings: {yield: {intercept: 0.1, coefficients: {temperature: 0.0}}}
"""


def test_a_nested_setting_of_the_built_in_linear_model_is_calibrated_by_its_path(tmp_path):
    text = LINEAR_CAMPAIGN + "  calibrate: {yield.coefficients.temperature: [-0.05, 0.05]}\n"
    c = Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'l.db'}")
    for _ in range(4):
        proposals = c.ask(2)
        for p in proposals:
            c.tell(p.id, {"yield": 0.3 + 0.012 * p.params["temperature"]})
    info = proposals[-1].info["prior_mean"]
    assert info["calibration"]["fit"]["yield.coefficients.temperature"] == pytest.approx(0.012, abs=1e-4)
    assert info["calibrated"]["yield.coefficients.temperature"] == pytest.approx(0.012, abs=0.1 / GRID)


def test_a_path_through_a_value_that_is_not_a_mapping_is_a_one_line_error():
    with pytest.raises(SpecError) as caught:
        parse_spec(LINEAR_CAMPAIGN + "  calibrate: {yield.intercept.scale: [0, 1]}\n")
    assert caught.value.one_line().endswith("prior_mean.calibrate.yield.intercept.scale: settings.yield.intercept is "
                                            "0.1, not a mapping of settings; name a number inside the settings")


@pytest.mark.parametrize("settings, message", [
    ("{yield: {coefficients: {temprature: 0.01}}}", "prior_mean 'linear' failed at the middle of the parameter box "
     "with KeyError 'temprature'; this campaign's parameters are temperature, time: name them in its settings"),
    ("{yeild: {coefficients: {temperature: 0.01}}}", "prior_mean 'linear' predicts yeild, none of this campaign's "
     "objectives or outcomes (yield); name its outputs after them"),
])
def test_a_prior_mean_that_names_what_the_campaign_lacks_is_a_one_line_error(settings, message):
    text = LINEAR_CAMPAIGN.replace("{yield: {intercept: 0.1, coefficients: {temperature: 0.0}}}", settings)
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert caught.value.one_line().endswith(message)


# a lab's own model as a plugin -----------------------------------------------------------------

PLUGIN_MODULE = """
import math


def arrhenius(settings):
    if "rate_at_50" not in settings:
        raise ValueError("needs rate_at_50 [1/min], the rate constant at 50 C")
    k50, offset = float(settings["rate_at_50"]), float(settings.get("offset_K", 0.0))
    if k50 <= 0:
        raise ValueError(f"rate_at_50 = {k50} must be > 0")

    def f(p):
        k = k50 * math.exp(0.04 * (p["temperature"] + offset - 50))
        return {"yield": 1 - math.exp(-k * p["time"])}

    return f
"""

CAMPAIGN = """
name: plugin-prior
seed: 2
parameters:
  - {{name: temperature, type: continuous, bounds: [20, 80]}}
  - {{name: time, type: continuous, bounds: [1, 100], scale: log}}
objectives:
  - {{name: yield, direction: maximize}}
budget: {{experiments: 12, batch_size: 2}}
prior_mean: {{simulator: {name}, settings: {settings}}}
"""


def calibrated_campaign(calibrate: str) -> str:
    """CAMPAIGN with the arrhenius plugin's settings and ``prior_mean.calibrate: calibrate``."""
    text = CAMPAIGN.format(name="arrhenius", settings="{rate_at_50: 0.05}").rstrip()
    return text.removesuffix("}") + f", calibrate: {calibrate}}}\n"


def install_prior_plugin(site, distribution: str, entries: dict[str, str]) -> None:
    """Metadata of ``distribution`` with ``entries`` (name -> target) in group sdl.prior_means, as pip leaves it."""
    install(site, distribution, entries, group=ENTRY_POINT_GROUP)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site folder on sys.path holding the lab's model module."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "lab_kinetics.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_plugin_model_is_the_prior_mean_of_a_campaign_file(site, tmp_path):
    install_prior_plugin(site, "lab-kinetics", {"arrhenius": "lab_kinetics:arrhenius"})
    c = Campaign.from_text(CAMPAIGN.format(name="arrhenius", settings="{rate_at_50: 0.05}"),
                           store=f"sqlite:///{tmp_path / 'p.db'}")
    assert c.planner.prior_mean({"temperature": 50, "time": 20}) == {"yield": pytest.approx(1 - math.exp(-1))}
    for p in c.ask(2):
        c.tell(p.id, {"yield": kinetic_yield({**p.params, "catalyst": "Pd"})["yield"]})
    (p,) = c.ask(1)
    assert p.info["model"].endswith("on the residual of a prior mean") and p.info["prior_mean"]["emulated"]


@pytest.mark.parametrize("entries, simulator, settings, message", [
    ({"arrhenius": "lab_kinetics:arrhenius"}, "nope", "{}",
     "prior_mean.simulator 'nope' is unknown; use one of: arrhenius, linear"),
    ({"arrhenius": "lab_kinetics:arrhenius"}, "arrhenius", "{}",
     "prior_mean.settings for 'arrhenius': needs rate_at_50 [1/min]"),
    ({"arrhenius": "lab_kinetics_gone:arrhenius"}, "arrhenius", "{}",
     "plugin prior mean 'arrhenius' (lab_kinetics_gone:arrhenius from lab-kinetics) cannot be imported: No module"),
    ({"arrhenius": "lab_kinetics:math"}, "arrhenius", "{}", "is not callable"),
])
def test_a_prior_mean_that_cannot_be_used_is_a_one_line_error(site, entries, simulator, settings, message):
    install_prior_plugin(site, "lab-kinetics", entries)
    with pytest.raises(SpecError) as caught:
        parse_spec(CAMPAIGN.format(name=simulator, settings=settings))
    text = caught.value.one_line()
    assert message in text and "\n" not in text


def test_a_plugin_that_reads_a_missing_parameter_with_get_is_a_one_line_error(site):
    (site / "lab_kinetics_get.py").write_text(textwrap.dedent(PLUGIN_MODULE).replace(
        'p["temperature"] + offset', 'p.get("temprature") + offset'))
    install_prior_plugin(site, "lab-kinetics", {"arrhenius": "lab_kinetics_get:arrhenius"})
    with pytest.raises(SpecError) as caught:
        parse_spec(CAMPAIGN.format(name="arrhenius", settings="{rate_at_50: 0.05}"))
    assert caught.value.one_line().endswith(
        "prior_mean 'arrhenius' failed at the middle of the parameter box with TypeError after asking for "
        "'temprature', which the campaign does not have; this campaign's parameters are temperature, time: "
        "name them in its settings")


def test_a_plugin_undefined_at_the_middle_of_the_box_still_passes_validation(site):
    (site / "lab_kinetics_pole.py").write_text(textwrap.dedent(PLUGIN_MODULE).replace(
        "k = k50", "k = 1 / (p['temperature'] - 50) + k50"))  # ZeroDivisionError at 50 C, the box's middle
    install_prior_plugin(site, "lab-kinetics", {"arrhenius": "lab_kinetics_pole:arrhenius"})
    spec = parse_spec(CAMPAIGN.format(name="arrhenius", settings="{rate_at_50: 0.05}"))
    assert spec.prior_mean.model == "arrhenius"
    with pytest.raises(ZeroDivisionError):  # the model is undefined there, so the pass above was not vacuous
        build_prior_mean(spec.prior_mean.model, spec.prior_mean.settings)({"temperature": 50.0, "time": 10.0})


def test_a_plugin_cannot_replace_a_built_in_model(site):
    install_prior_plugin(site, "lab-kinetics", {"linear": "lab_kinetics:arrhenius"})
    with pytest.raises(SpecError) as caught:  # still the built-in linear model: it checks its own settings
        parse_spec(CAMPAIGN.format(name="linear", settings="{yield: 3}"))
    assert "prior_mean.settings.yield must be {intercept: a0" in caught.value.one_line()
    spec = parse_spec(CAMPAIGN.format(name="linear", settings="{yield: {intercept: 0.2}}"))
    assert spec.prior_mean.model == "linear"


def test_the_prior_mean_is_named_by_model_and_still_by_the_older_simulator_key():
    named_by_model = parse_spec(LINEAR_CAMPAIGN.replace("  simulator: linear", "  model: linear"))
    assert named_by_model.prior_mean == parse_spec(LINEAR_CAMPAIGN).prior_mean
    assert named_by_model.prior_mean.model == "linear"
    again = type(named_by_model).model_validate(named_by_model.model_dump())  # a dumped spec reads back
    assert again.prior_mean == named_by_model.prior_mean
    with pytest.raises(SpecError) as caught:
        parse_spec(LINEAR_CAMPAIGN.replace("  simulator: linear", "  model: linear\n  simulator: linear"))
    assert "prior_mean.simulator: unknown field" in caught.value.one_line()


def test_two_plugins_with_one_name_are_neither_used(site):
    install_prior_plugin(site, "lab-kinetics", {"arrhenius": "lab_kinetics:arrhenius"})
    install_prior_plugin(site, "other-kinetics", {"arrhenius": "lab_kinetics:arrhenius"})
    with pytest.raises(SpecError) as caught:
        parse_spec(CAMPAIGN.format(name="arrhenius", settings="{rate_at_50: 0.05}"))
    assert "clashes with another plugin of that name; rename one entry point" in caught.value.one_line()
