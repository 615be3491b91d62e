"""dvc.yaml's code deps are complete: every stage depends on every module its script imports."""

import shutil

from conftest import ROOT

from ups.pipeline_deps import import_closure, missing_deps, write_deps


def test_every_stage_depends_on_all_the_code_it_runs():
    missing = missing_deps(ROOT)
    assert missing == {}, f"dvc.yaml misses code deps (run `ups pipeline deps --write`): {missing}"


def test_the_closure_follows_imports_inside_functions_and_packages():
    closure = import_closure(ROOT, "stages/eval_full.py")
    # eval_full loads the diffusion residual and its student from their own model classes
    for module in (
        "ups/models/diffusion.py",
        "ups/models/base.py",
        "ups/checkpoints.py",
        "ups/inference/rollout.py",
        "ups/eval/__init__.py",
    ):
        assert module in closure, module
    assert not [m for m in closure if m.startswith("ups/training/")], "evaluation never imports training code"
    assert "ups/training/diff_residual.py" in import_closure(ROOT, "stages/train_consistency_distill.py")
    assert "ups/inference/rollout.py" in import_closure(ROOT, "stages/train_diff_residual.py")


def test_a_missing_dep_is_found_and_written(tmp_path):
    for name in ("dvc.yaml", "stages", "ups"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    text = (tmp_path / "dvc.yaml").read_text()
    (tmp_path / "dvc.yaml").write_text(
        text.replace("      - ups/models/diffusion.py\n", "", 1)
    )  # validate's list has it first
    assert "ups/models/diffusion.py" in missing_deps(tmp_path)["validate"]
    assert "validate" in write_deps(tmp_path)
    assert missing_deps(tmp_path) == {}
    assert "data/burgers" in (tmp_path / "dvc.yaml").read_text()  # data deps are kept
