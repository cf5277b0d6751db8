"""The online path, run offline on faithful local files: a Hugging Face cache entry holding generated weights and
an Oxford-IIIT Pets folder, read by the real loaders (timm's hub loader, torchvision's OxfordIIITPet) and the CLI.

Users on cluster nodes without internet pre-fill both on a login node; these tests are that situation.
"""

import json
import os
import subprocess
import sys

import huggingface_hub.constants as hf_constants
import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

import adaptertune_lite as at
import adaptertune_lite.course.cli
from helpers import ROOT

MODEL = "deit_tiny_patch16_224.fb_in1k"  # the smallest of the paper's backbones
BREEDS = ["Abyssinian", "beagle", "Bengal"]  # three of the 37 classes, with the dataset's own file naming


def fill_hub_cache(cache, name: str = MODEL) -> dict[str, torch.Tensor]:
    """What ``huggingface_hub`` leaves after downloading ``timm/<name>``: refs/main naming a snapshot that holds
    model.safetensors (here random weights). Returns the weights."""
    weights = {k: v.contiguous() for k, v in timm.create_model(name, pretrained=False).state_dict().items()}
    repo, commit = cache / f"models--timm--{name}", "0123456789abcdef0123456789abcdef01234567"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_file(weights, repo / "snapshots" / commit / "model.safetensors")
    return weights


def fill_pets(root, per_class: int = 4) -> None:
    """torchvision's Oxford-IIIT Pets layout: images/<Breed>_<n>.jpg and annotations/{trainval,test}.txt with
    lines ``<image id> <class 1..37> <species 1..2> <breed id>``; torchvision checks that the folders exist."""
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations").mkdir()
    rng = np.random.default_rng(0)
    lines = {"trainval": [], "test": []}
    for c, breed in enumerate(BREEDS):
        for n in range(per_class):
            image_id = f"{breed}_{n + 1}"
            Image.fromarray(rng.integers(0, 255, (40 + n, 50, 3), dtype=np.uint8)).save(base / "images" / f"{image_id}.jpg")
            split = "test" if n == 0 else "trainval"
            lines[split].append(f"{image_id} {c + 1} {1 if breed[0].isupper() else 2} {n + 1}")
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")


FOODS = ["apple_pie", "baby_back_ribs", "waffles"]  # three of the 101 classes


def fill_food101(root, per_class: int = 4) -> None:
    """torchvision's Food-101 layout: images/<class>/<id>.jpg and meta/{train,test}.json mapping each class to its
    "<class>/<id>" entries."""
    base = root / "food-101"
    rng = np.random.default_rng(1)
    meta = {"train": {}, "test": {}}
    for food in FOODS:
        (base / "images" / food).mkdir(parents=True)
        for n in range(per_class):
            Image.fromarray(rng.integers(0, 255, (60, 48 + n, 3), dtype=np.uint8)).save(base / "images" / food / f"{n}.jpg")
            meta["test" if n == 0 else "train"].setdefault(food, []).append(f"{food}/{n}")
    (base / "meta").mkdir()
    for split, entries in meta.items():
        (base / "meta" / f"{split}.json").write_text(json.dumps(entries))


@pytest.fixture
def offline_files(tmp_path, monkeypatch):
    cache, data_root = tmp_path / "hf", tmp_path / "data"
    weights = fill_hub_cache(cache)
    fill_pets(data_root)
    fill_food101(data_root)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv(at.data.DATA_ENV, str(data_root))
    monkeypatch.setattr(at.backbones, "hub_reachable", lambda *a, **k: False)  # offline, whatever this machine is
    return weights


def test_a_filled_hub_cache_loads_the_real_timm_weights_offline(offline_files):
    model = at.load_backbone(MODEL, num_classes=3)
    own = model.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in offline_files.items() if not k.startswith("head."))
    assert model.head.out_features == 3


def test_a_pets_folder_loads_through_torchvision_with_the_backbones_transform(offline_files):
    model = at.load_backbone(MODEL, num_classes=3)
    pets = at.load_dataset("pets", model)
    assert pets.classes == ["Abyssinian", "Beagle", "Bengal"] and len(pets.test) == 3
    assert len(pets.train) + len(pets.val) == 9
    x, y = pets.train[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 224, 224) and 0 <= y < 3


def test_a_food101_folder_loads_through_torchvision_with_a_validation_split_carved_from_train(offline_files):
    model = at.load_backbone(MODEL, num_classes=3)
    food = at.load_dataset("food101", model)
    assert food.classes == FOODS and len(food.test) == 3
    assert len(food.train) + len(food.val) == 9 and len(food.val) >= 1  # Food-101 has no val split of its own
    x, y = food.val[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 224, 224) and 0 <= y < 3


@pytest.mark.slow
def test_a_slurm_sweep_runs_a_timm_backbone_on_a_torchvision_dataset(offline_files, tmp_path):
    """The cluster path on the paper's kind of config: each run is a job of submitit's local executor (processes on
    this machine, as Slurm runs them on nodes), reading the same offline cache and dataset folder."""
    submitit = pytest.importorskip("submitit")
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=10)
    configs = at.grid(at.RunConfig.from_recipe("head_only", "pets", fast=False, backbone=MODEL, epochs=1), seed=[0, 1])
    results = at.sweep(configs, tmp_path / "out", progress=False, executor=executor)
    assert [r["config"]["backbone"] for r in results] == [MODEL] * 2 and [r["config"]["seed"] for r in results] == [0, 1]
    assert all(r["config"]["batch_size"] == at.recipes.OFFICIAL_RECIPE.batch_size and 0 <= r["test_acc"] <= 1 for r in results)
    assert at.sweep(configs, tmp_path / "out", progress=False) == results  # on disk: nothing runs again


def test_the_cli_sweeps_a_timm_backbone_on_a_torchvision_dataset(offline_files, tmp_path):
    """`sweep --backbone <timm name> --dataset pets` used to stop at 'No kit recipe'. It runs the paper recipe
    (cut to a tiny budget here) through the real loaders and writes a result."""
    out = tmp_path / "out"
    env = {**os.environ, "ADAPTERTUNE_FAST": "1"}
    cmd = [sys.executable, "-m", "adaptertune_lite.course.cli", "sweep", "--backbone", MODEL, "--dataset", "pets",
           "--method", "head_only", "--epochs", "1", "--n-train", "8", "--out", str(out)]  # FAST on pets: 32 images; 8 here
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert result["config"]["backbone"] == MODEL and result["config"]["dataset"] == "pets"
    assert result["config"]["batch_size"] == at.recipes.OFFICIAL_RECIPE.batch_size and 0 <= result["test_acc"] <= 1


def test_a_cached_timm_model_loads_without_any_network_call(offline_files, monkeypatch):
    """A kit run, or a timm model already in the cache, makes no network call: no probe, no process-wide offline
    switch (HF_HUB_OFFLINE used to be flipped for every thread while a model loaded)."""
    def no_network(*args, **kwargs):
        raise AssertionError("a network call")

    monkeypatch.setattr(at.backbones, "hub_reachable", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    before = hf_constants.HF_HUB_OFFLINE
    at.load_backbone(MODEL, num_classes=3)
    at.load_backbone("kit_vit_tiny", num_classes=3)
    assert hf_constants.HF_HUB_OFFLINE == before


def test_a_model_that_is_not_cached_fails_fast_offline_and_says_what_to_do(offline_files, monkeypatch):
    monkeypatch.setattr(at.backbones, "hub_cache_file", lambda name: None)  # nothing cached; hub_reachable is False
    with pytest.raises(RuntimeError, match="not in the local Hugging Face cache.*weights_file="):
        at.load_backbone(MODEL, num_classes=3)


def test_doctor_lists_what_is_cached_for_offline_use(offline_files, capsys):
    at.course.cli.doctor()
    shown = capsys.readouterr().out
    assert MODEL in shown and "oxford-iiit-pet" in shown


# ----------------------------------------------------------------------------- the paper profile, end to end
@pytest.fixture
def paper_node(tmp_path, monkeypatch):
    """A machine in the ``paper`` profile with no internet: the Hugging Face cache holds DeiT-Ti (the smallest of the
    paper's backbones, random weights, standing in for ViT-S to keep CI fast) and the data folder a Pets layout large
    enough for the profile's FAST budget."""
    cache, data_root = tmp_path / "hf", tmp_path / "data"
    fill_hub_cache(cache)
    fill_pets(data_root, per_class=16)
    for name, value in {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", at.data.DATA_ENV: str(data_root),
                        at.course.profiles.PROFILE_ENV: "paper", at.course.profiles.PAPER_BACKBONE_ENV: MODEL, "ADAPTERTUNE_FAST": "1",
                        "ADAPTERTUNE_RUNS": str(tmp_path / "runs"), "MPLBACKEND": "Agg"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(at.backbones, "hub_reachable", lambda *a, **k: False)
    return tmp_path


def test_a_gpu_node_with_a_filled_cache_and_data_folder_chooses_the_paper_profile(offline_files, monkeypatch):
    monkeypatch.delenv(at.course.profiles.PROFILE_ENV, raising=False)
    monkeypatch.setenv(at.course.profiles.PAPER_BACKBONE_ENV, MODEL)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert at.data.dataset_present("pets") and not at.data.dataset_present("cifar10")
    p = at.profile()
    assert (p.name, p.backbone, p.dataset) == ("paper", MODEL, "pets") and "Hugging Face cache" in p.why


def test_the_cli_sweeps_the_profiles_setting_when_no_backbone_or_dataset_is_named(paper_node):
    out = paper_node / "out"
    cmd = [sys.executable, "-m", "adaptertune_lite.course.cli", "sweep", "--method", "head_only", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"paper profile: {MODEL} on pets" in done.stderr
    (result,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    budget = at.recipes.TORCHVISION_BUDGET["fast"]
    assert (result["config"]["backbone"], result["config"]["dataset"], result["config"]["n_train"]) == (MODEL, "pets", budget["n_train"])


PAPER_NOTEBOOKS = {  # notebook -> what its outputs must show in the paper profile
    "07_paper_setting": [f"paper profile: {MODEL} on pets", "Running the paper's row", "95 % CI", "estimated minutes",
                         "AdapterTune r=16 − head-only"],
    "05_rank_elbow": [f"paper profile: {MODEL} on pets", "width d = 192, 12 blocks", "points from r = 1 to r = 64, noise ±",
                      "No full-recipe sweep ships for this profile"],
    "06_placement": [f"paper profile: {MODEL} on pets", "− post_block on all:", "faster** with"],
    "lecture_elbow_demo": [f"paper profile: {MODEL} on pets", "notebook 05's sweep in the paper profile (7 runs"],
    "04_transfer_methods": [f"paper profile: {MODEL} on pets", "95 % CI", "No raw-pixel baseline on pets",
                            "pretraining buys (points)", f"one training step of 8 images on {MODEL}"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_NOTEBOOKS)
def test_a_notebook_runs_top_to_bottom_in_the_paper_profile(paper_node, name):
    """What a Colab student with a GPU runs, here on CPU with a tiny budget: the real loaders, a timm ViT from the
    Hugging Face cache and Oxford-IIIT Pets from its torchvision folder."""
    import nbformat  # noqa: PLC0415  (only these tests execute notebooks here)
    from nbclient import NotebookClient  # noqa: PLC0415

    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(paper_node)}}).execute()
    nbformat.write(nb, paper_node / f"{name}.ipynb")  # the executed copy, for a human to read when this fails
    shown = "\n".join(str(out.get("text", "")) + "".join(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
                      for cell in nb.cells for out in cell.get("outputs", []))
    for text in PAPER_NOTEBOOKS[name]:
        assert text in shown, f"{name} in the paper profile did not show {text!r}"
    assert "left_digit" not in shown and "mnist5k" not in shown, f"{name} trained on a kit target in the paper profile"
