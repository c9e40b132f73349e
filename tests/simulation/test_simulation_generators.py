"""The generative shower models (heplab.simulation) on a tiny toy calorimeter.

The toy (calo_model_toys.py): 3 layers of 4 x 4 cells, showers from a parametric model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from calo_model_toys import toy_geometry, toy_showers

from heplab.errors import ConfigError, DataError, OutputExistsError
from heplab.events.calo import ShowerSet
from heplab.simulation.generators import (
    GENERATORS,
    ShowerGenerator,
    load_config,
    load_generator,
    make_generator,
)
from heplab.simulation.preprocessing import Preprocessor
from heplab.simulation.runs import prepare_run_dir

#: Tiny networks: a few steps on a few hundred showers take well under a second.
TINY: dict[str, dict[str, object]] = {
    "gan": {"hidden": [32], "critic_hidden": [32], "latent_dim": 8},
    "vae": {"hidden": [32], "latent_dim": 4},
    "flow": {
        "layer_hidden": [16],
        "voxel_hidden": [32],
        "student_hidden": [32],
        "voxel_transforms": 2,
        "layer_transforms": 2,
        "student_transforms": 2,
        "student_epochs": 1,
    },
    "flowmatch": {"hidden": [32, 32], "steps": 4},
}


def quick(name: str, **extra: object) -> dict[str, object]:
    return {"epochs": 1, "batch_size": 64, "progress_bar": False, **TINY[name], **extra}


@pytest.fixture(scope="module")
def toy() -> ShowerSet:
    return toy_showers(400, 0)


@pytest.fixture(scope="module")
def fitted(toy: ShowerSet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ShowerGenerator]:
    """Every model after one epoch on the toy set (shared by the fast tests)."""
    out = {}
    for name in GENERATORS:
        gen = make_generator(name, toy.geometry, quick(name))
        out[name] = gen.fit(toy[:300], toy[300:], out_dir=tmp_path_factory.mktemp(name))
    return out


# ---------------------------------------------------------------------------- preprocessing
def test_preprocessing_round_trip_is_exact_and_standardised(toy: ShowerSet) -> None:
    sizes = [16, 16, 16]
    prep = Preprocessor.fit(toy.energies, toy.showers, sizes)
    x = prep.encode(toy.showers, toy.energies)
    occupied = np.asarray(prep.sigma) > 0.1
    assert np.allclose(x.mean(0)[occupied], 0, atol=1e-4)
    assert np.allclose(x.std(0)[occupied], 1, atol=1e-3)
    # exact, but for the 0.1 % smallest deposits: below the threshold, zero-suppressed
    kept = np.where(toy.showers >= prep.threshold * (1 - 1e-5), toy.showers, 0)
    assert 0 < (kept != toy.showers).mean() < 2e-3
    np.testing.assert_allclose(prep.decode(x, toy.energies), kept, rtol=1e-4, atol=1e-7)
    y = prep.encode_layers(toy.showers, toy.energies)
    layers = prep.decode_layers(y, toy.energies)
    np.testing.assert_allclose(layers, toy.layer_energies(), rtol=1e-4)
    z = prep.encode_normalised(toy.showers)
    np.testing.assert_allclose(prep.decode_normalised(z, layers), kept, rtol=1e-3, atol=1e-6)
    assert prep.threshold == pytest.approx(np.quantile(toy.showers[toy.showers > 0], 1e-3))
    # zero suppression at the training threshold, non-negative
    shifted = prep.decode(x - 3.0, toy.energies)
    assert shifted.min() >= 0
    assert shifted[shifted > 0].min() >= prep.threshold * (1 - 1e-5)
    again = Preprocessor.from_json(prep.to_json())
    np.testing.assert_array_equal(again.encode(toy.showers, toy.energies), x)
    c = prep.condition(np.array([toy.energies.min(), toy.energies.max()]))
    np.testing.assert_allclose(c[:, 0], [0, 1], atol=1e-6)


def test_mixed_sets_condition_on_the_particle(toy: ShowerSet) -> None:
    pids = np.where(np.arange(len(toy)) % 2 == 0, 11, 211)
    prep = Preprocessor.fit(toy.energies, toy.showers, [16, 16, 16], pids)
    assert prep.condition_dim == 3
    c = prep.condition(np.array([20.0, 20.0]), np.array([11, 211]))
    np.testing.assert_array_equal(c[:, 1:], [[1, 0], [0, 1]])
    with pytest.raises(ConfigError, match="mixed"):
        prep.condition(np.array([20.0]))
    with pytest.raises(ConfigError, match="unknown"):
        prep.condition(np.array([20.0]), np.array([22]))


# ---------------------------------------------------------------------------- configs
def test_configs_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown GANConfig keys"):
        make_generator("gan", toy_geometry(), {"n_critics": 5})
    with pytest.raises(ConfigError, match="solver"):
        make_generator("flowmatch", toy_geometry(), {"solver": "rk45"})
    with pytest.raises(ConfigError, match="unknown generative model"):
        make_generator("diffusion", toy_geometry(), {})
    path = tmp_path / "vae.yaml"
    path.write_text("latent_dim: 3\nhidden: [16, 8]\nepochs: 2\n")
    gen = make_generator("vae", toy_geometry(), load_config(path))
    assert gen.config.hidden == (16, 8)
    assert gen.config.latent_dim == 3
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


# ---------------------------------------------------------------------------- every model
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_model_samples_finite_non_negative_showers(
    name: str, fitted: dict[str, ShowerGenerator]
) -> None:
    gen = fitted[name]
    energies = np.array([10.0, 30.0, 100.0] * 20)
    showers = gen.sample(energies, seed=1, batch_size=25)
    assert showers.shape == (60, 48)
    assert showers.dtype == np.float32
    assert np.all(np.isfinite(showers))
    assert showers.min() >= 0
    nonzero = showers[showers > 0]
    assert nonzero.size > 0
    assert nonzero.min() >= gen.prep_.threshold * (1 - 1e-5)  # type: ignore[union-attr]
    # the same seed (and batch size), the same showers; another seed, others
    np.testing.assert_array_equal(gen.sample(energies, seed=1, batch_size=25), showers)
    assert not np.array_equal(gen.sample(energies, seed=2), showers)
    assert gen.n_parameters() > 0
    assert gen.history_
    assert np.isfinite(gen.train_time_s_)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_save_load_round_trip_gives_identical_samples(
    name: str, fitted: dict[str, ShowerGenerator], tmp_path: Path
) -> None:
    gen = fitted[name]
    gen.save(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.json",
        "history.json",
        "preprocessing.json",
        "weights.pt",
    ]
    again = load_generator(tmp_path / "run")
    assert type(again) is type(gen)
    assert again.geometry == gen.geometry
    energies = np.linspace(10, 100, 30)
    np.testing.assert_array_equal(again.sample(energies, seed=5), gen.sample(energies, seed=5))
    with pytest.raises(DataError, match="not"):
        type(gen).load(tmp_path / "missing")


def test_run_dirs_refuse_to_overwrite(tmp_path: Path, fitted: dict[str, ShowerGenerator]) -> None:
    fitted["vae"].save(tmp_path)
    with pytest.raises(OutputExistsError):
        prepare_run_dir(tmp_path)
    prepare_run_dir(tmp_path, force=True)
    assert not (tmp_path / "config.json").exists()
    (tmp_path / "weights.pt").write_bytes(b"junk")
    (tmp_path / "config.json").write_text('{"model": "vae", "config": {}}')
    (tmp_path / "preprocessing.json").write_text("{}")
    (tmp_path / "history.json").write_text("{}")
    with pytest.raises(DataError):
        load_generator(tmp_path)


def test_only_the_flow_has_a_log_prob(fitted: dict[str, ShowerGenerator], toy: ShowerSet) -> None:
    with pytest.raises(NotImplementedError):
        fitted["gan"].log_prob(toy.showers[:5], toy.energies[:5])
    lp = fitted["flow"].log_prob(toy.showers[:5], toy.energies[:5])
    assert lp.shape == (5,)
    assert np.all(np.isfinite(lp))


def test_flow_log_prob_prefers_real_showers_to_shuffled_voxels(
    toy: ShowerSet, tmp_path: Path
) -> None:
    train, test = toy[:300], toy[300:]
    gen = make_generator("flow", toy.geometry, quick("flow", epochs=3, student=False))
    gen.fit(train, out_dir=tmp_path)
    rng = np.random.default_rng(1)
    shuffled = test.showers.copy()
    for row in shuffled:  # each shower keeps its energies, in random cells
        rng.shuffle(row)
    real = gen.log_prob(test.showers, test.energies)
    fake = gen.log_prob(shuffled, test.energies)
    assert np.all(np.isfinite(real))
    assert np.all(np.isfinite(fake))
    assert np.median(real) > np.median(fake) + 20  # nats


@pytest.mark.parametrize("name", ["gan", "vae", "flowmatch"])
def test_validation_losses_use_fixed_noise(
    name: str, fitted: dict[str, ShowerGenerator], toy: ShowerSet
) -> None:
    gen = fitted[name]
    assert gen.prep_ is not None
    assert gen.net_ is not None
    batch = {k: torch.from_numpy(v) for k, v in gen._arrays(toy[:64], gen.prep_).items()}
    net: Any = gen.net_
    net.eval()
    with torch.no_grad():
        assert float(net.training_loss(batch)) == float(net.training_loss(batch))
    net.train()
    with torch.no_grad():
        assert float(net.training_loss(batch)) != float(net.training_loss(batch))
    net.eval()


def test_mmd_separates_distributions() -> None:
    from heplab.simulation.gan import mmd2

    torch.manual_seed(0)
    a, b = torch.randn(200, 20), torch.randn(200, 20)
    same, shifted = float(mmd2(a, b)), float(mmd2(a, b + 0.5))
    assert abs(same) < 0.02
    assert shifted > 5 * max(same, 1e-3)


def test_gan_trains_both_networks_through_the_engine(toy: ShowerSet, tmp_path: Path) -> None:
    """Manual optimisation: n_critic critic steps per generator step, checkpoints kept."""
    gen = make_generator("gan", toy.geometry, quick("gan", n_critic=2, epochs=2, batch_size=100))
    torch.manual_seed(0)
    before = {
        k: v.clone()
        for k, v in gen._build(Preprocessor.fit(toy.energies, toy.showers, [16] * 3))
        .state_dict()
        .items()
    }
    gen.fit(toy[:300], toy[300:], out_dir=tmp_path)
    assert gen.net_ is not None
    after = gen.net_.state_dict()
    for part in ("generator", "critic"):  # (the critic's output bias cancels in the loss)
        weights = [k for k in after if k.startswith(part) and k.endswith("weight")]
        assert all(not torch.equal(before[k], after[k]) for k in weights), part
    assert gen.net_._steps == 6  # type: ignore[attr-defined]  # 3 batches x 2 epochs
    assert (tmp_path / "train" / "checkpoints" / "last.ckpt").is_file()
    assert len(gen.history_["model"]["val_losses"]) == 2


def test_mixed_sets_train_and_sample_per_particle(toy: ShowerSet, tmp_path: Path) -> None:
    pids = np.where(np.arange(len(toy)) % 2 == 0, 11, 211)
    showers = toy.showers * np.where(pids == 211, 0.5, 1.0)[:, None].astype(np.float32)
    mixed = ShowerSet(toy.energies, showers, toy.geometry, "mixed", pids=pids)
    gen = make_generator("flowmatch", toy.geometry, quick("flowmatch"))
    gen.fit(mixed, out_dir=tmp_path)
    out = gen.sample(np.full(4, 50.0), pids=np.array([11, 211, 11, 211]), seed=0)
    assert out.shape == (4, 48)
    with pytest.raises(ConfigError, match="give pids"):
        gen.sample(np.full(4, 50.0))
    gen.save(tmp_path / "run")
    assert load_generator(tmp_path / "run").prep_.pids == [11, 211]  # type: ignore[union-attr]


def test_fit_rejects_showers_of_another_geometry(toy: ShowerSet, tmp_path: Path) -> None:
    from heplab.detector.calogeometry import load_geometry

    gen = make_generator("vae", load_geometry("calogan"), quick("vae"))
    with pytest.raises(DataError, match="voxels"):
        gen.fit(toy, out_dir=tmp_path)


def test_the_student_samples_like_its_teacher(fitted: dict[str, ShowerGenerator]) -> None:
    gen = fitted["flow"]
    energies = np.full(400, 50.0)
    gen.sampler = "teacher"  # type: ignore[attr-defined]
    teacher = gen.sample(energies, seed=3)
    gen.sampler = "student"  # type: ignore[attr-defined]
    student = gen.sample(energies, seed=3)
    assert not np.array_equal(teacher, student)
    # flow 1 (layer energies) is shared: the total energies agree to the sampling noise
    assert student.sum(1).mean() == pytest.approx(teacher.sum(1).mean(), rel=0.1)


# ---------------------------------------------------------------------------- physics
@pytest.mark.slow
@pytest.mark.parametrize("name", ["flow", "flowmatch", "vae", "gan"])
def test_trained_model_reproduces_the_energy_dependence(name: str, tmp_path: Path) -> None:
    """E_vis / E_inc and the first layer's share of it, at 15 and 80 GeV.

    The toy's response falls from 0.97 to 0.83 and its first-layer share from 0.24 to 0.18
    between the two energies; a model that ignores its condition (an untrained one gives
    the training average) misses both by 6-23 %, trained ones are within 0-4 %.
    """
    torch.set_num_threads(1)
    train = toy_showers(3000, 10)
    fast = {"lr": 3e-3, "batch_size": 64, "epochs": 20}
    settings: dict[str, object] = {
        "flow": {**fast, "student_epochs": 10},
        "flowmatch": {**fast, "hidden": [64, 64], "steps": 8},
        "vae": fast,
        "gan": {
            **fast,
            "lr": 1e-3,
            "epochs": 60,
            "patience": 60,
            "n_critic": 2,
            "hidden": [64, 64],
            "critic_hidden": [64, 64],
        },
    }[name]
    gen = make_generator(name, train.geometry, quick(name, **settings))
    gen.fit(train, out_dir=tmp_path)
    for energy in (15.0, 80.0):
        ref = toy_showers(2000, 11, np.full(2000, energy))
        generated = gen.sample(np.full(2000, energy), seed=4)
        response_ref = ref.total_energy().mean() / energy
        response_gen = generated.sum(1).mean() / energy
        assert response_gen == pytest.approx(response_ref, rel=0.05), (name, energy)
        front_ref = (ref.showers[:, :16].sum(1) / ref.total_energy()).mean()
        front_gen = (generated[:, :16].sum(1) / generated.sum(1)).mean()
        assert front_gen == pytest.approx(front_ref, rel=0.06), (name, energy)
    if name == "flow":
        # it learned more than the per-variable marginals: held-out showers are likelier
        # than under independent standard normals of the preprocessed variables
        test = toy_showers(1000, 12)
        prep = gen.prep_
        assert prep is not None
        z = np.concatenate(
            [prep.encode_layers(test.showers, test.energies), prep.encode_normalised(test.showers)],
            1,
        )
        independent = -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * np.log(2 * np.pi)
        assert gen.log_prob(test.showers, test.energies).mean() > independent.mean() + 2
