"""Typed parameters: one dataclass tree mirroring `params.yaml`, loaded and validated in one place.

`params.yaml` is the only source of values: the dataclasses below declare types, allowed ranges and
documentation, never defaults, so a value cannot silently differ between the file and the code.
`load_config` rejects unknown keys (naming the closest valid key), missing keys, wrong types and
out-of-range values, all at once, each naming the key, the value and what is allowed. Sizes that
follow from others are properties (`DataConfig.dt`, `LatentConfig.size`, …), never parameters.

`dvc exp run -S key=value` edits `params.yaml`; `load_config(path, overrides={"key": value})` applies
the same dotted overrides in-process (tests, `experiments/*.yaml`).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """Invalid parameters. `problems` lists one line per bad key."""

    def __init__(self, problems: list[str], source: str = PARAMS_FILE):
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"invalid parameters in {source} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n{lines}"
        )


def param(
    doc: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None
) -> Any:
    """A required field with documentation and an allowed range."""
    return field(metadata={"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt})


# --------------------------------------------------------------------------------------------------
# The tree. Section order follows params.yaml.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolverConfig:
    grid: int = param("cells of the fine grid the reference solver runs on (a multiple of data.grid)", ge=32)
    cfl: float = param("CFL number Δt·max|u|/Δx of the reference solver (ETDRK4 is stable to ~1.3)", gt=0.0, le=1.5)


@dataclass(frozen=True)
class SplitSizes:
    train: int = param("train trajectories per ν", ge=1)
    val: int = param("validation trajectories per ν (model selection, proxy gate)", ge=1)
    test: int = param("test trajectories per ν (final evaluation only)", ge=1)


@dataclass(frozen=True)
class PDEBenchConfig:
    allow_legacy_domain: bool = param("load files from PDEBench's old generator, whose x spans (−1, 1)")


@dataclass(frozen=True)
class DataConfig:
    seed: int = param("seed of the data generator; splits use disjoint seed streams", ge=0)
    nu: list[float] = param(
        "viscosities ν (PDEBench convention, diffusion ν/π); several values condition the model on ν", gt=0.0
    )
    splits: SplitSizes = param("trajectories per split")
    grid: int = param("stored grid points in x", ge=8)
    frames: int = param("stored frames, t = 0 … t_final", ge=3)
    t_final: float = param("final time", gt=0.0)
    length: float = param("domain length L of the periodic domain [0, L)", gt=0.0)
    solver: SolverConfig = param("reference solver")
    pdebench: PDEBenchConfig = param("loading real PDEBench files")

    @property
    def dt(self) -> float:
        """The real time step between stored frames."""
        return self.t_final / (self.frames - 1)

    def split_size(self, split: str) -> int:
        return getattr(self.splits, split)


@dataclass(frozen=True)
class LatentConfig:
    tokens: int = param("latent tokens per field", ge=1)
    dim: int = param("channels per latent token; every model width that depends on it is derived", ge=1)

    @property
    def size(self) -> int:
        return self.tokens * self.dim


@dataclass(frozen=True)
class EncoderConfig:
    width: int = param("hidden channels", ge=1)
    depth: int = param("residual blocks", ge=1)
    kernel: int = param("convolution kernel size (odd)", ge=1)


@dataclass(frozen=True)
class DecoderConfig:
    width: int = param("hidden units of the point-wise decoder MLP", ge=1)
    depth: int = param("hidden layers of the decoder MLP", ge=1)
    fourier_features: int = param("Fourier features of the query coordinate", ge=0)


@dataclass(frozen=True)
class OperatorConfig:
    width: int = param("transformer width", ge=8)
    mixer: Literal["attention", "spectral"] = param(
        "token mixer of each block: attention, or FNO's spectral convolution over the token axis"
    )
    modes: int = param(
        "Fourier modes of the spectral mixer (capped at tokens/2 + 1 per level; unused by attention)", ge=1
    )
    heads: int = param("attention heads (divides width; unused by the spectral mixer)", ge=1)
    depth: int = param("attention blocks per U-level", ge=1)
    levels: int = param("U-shape levels over the token axis (tokens divisible by 2^(levels−1))", ge=1)
    mlp_ratio: float = param("MLP hidden size / width", gt=0.0)
    history: int = param("input frames the operator sees", ge=1)
    project: bool = param(
        "after every step, decode the predicted latent on the stored grid and encode it again (the rollout stays on the autoencoder's manifold)"
    )


@dataclass(frozen=True)
class DiffusionConfig:
    steps: int = param("K, denoising steps of the sampler", ge=1)
    schedule: Literal["cosine", "linear"] = param("noise schedule")
    min_noise: float = param("smallest noise level σ_min (relative to the residual scale)", gt=0.0, lt=1.0)
    width: int = param("denoiser width", ge=8)
    depth: int = param("denoiser blocks", ge=1)
    heads: int = param("attention heads of the denoiser (divides width)", ge=1)
    mlp_ratio: float = param("MLP hidden size / width in the denoiser blocks", gt=0.0)
    ensemble: int = param("samples per step for the ensemble", ge=1)


@dataclass(frozen=True)
class ConsistencyConfig:
    nfe: int = param("network evaluations per step of the student", ge=1, le=2)
    width: int = param("student width", ge=8)
    depth: int = param("student blocks", ge=1)
    heads: int = param("attention heads of the student (divides width)", ge=1)
    mlp_ratio: float = param("MLP hidden size / width in the student blocks", gt=0.0)


@dataclass(frozen=True)
class SteadyPriorConfig:
    width: int = param("hidden width", ge=8)
    depth: int = param("hidden blocks", ge=1)
    heads: int = param("attention heads (divides width)", ge=1)
    mlp_ratio: float = param("MLP hidden size / width in the blocks", gt=0.0)


@dataclass(frozen=True)
class RewardWeights:
    residual: float = param("weight of the discrete Burgers residual between consecutive frames", ge=0.0)
    conservation: float = param("weight of the drift of ∫u (exactly conserved on a periodic domain)", ge=0.0)
    energy: float = param("weight of energy gain (∫u² must not grow)", ge=0.0)


@dataclass(frozen=True)
class TTCConfig:
    candidates: int = param("candidates drawn per step from the stochastic corrector", ge=1)
    beam: int = param("beam width kept between steps (1 = greedy)", ge=1)
    horizon: int = param("steps looked ahead before a candidate is scored", ge=1)
    reward: RewardWeights = param("physics reward weights")


@dataclass(frozen=True)
class RuntimeConfig:
    device: Literal["auto", "cpu", "cuda"] = param("where to train and evaluate; auto picks CUDA when present")
    nproc: int = param("processes per node under torchrun (DDP); 1 = a single process", ge=1)
    compile: bool = param("torch.compile the models")
    bf16: bool = param("bf16 autocast on GPU (ignored on CPU)")
    threads: int = param("CPU threads per process (0 = PyTorch's default)", ge=0)


@dataclass(frozen=True)
class StageTraining:
    epochs: int = param("maximum epochs", ge=1)
    batch_size: int = param("global batch size", ge=1)
    lr: float = param("peak AdamW learning rate", gt=0.0, le=1.0)
    lr_floor: float = param("learning rate at the end of the cosine decay, as a fraction of the peak", ge=0.0, le=1.0)
    betas: list[float] = param("AdamW's (β1, β2)", ge=0.0, lt=1.0)
    weight_decay: float = param("AdamW weight decay", ge=0.0)
    warmup: float = param("fraction of steps of linear warm-up before cosine decay", ge=0.0, lt=1.0)
    grad_clip: float = param("gradient-norm clip (0 = off)", ge=0.0)
    ema: float = param("EMA decay of the weights used for selection and saving (0 = off)", ge=0.0, lt=1.0)
    patience: int = param("epochs without validation improvement before early stopping", ge=1)
    seed: int = param("seed of initialisation and batching", ge=0)


@dataclass(frozen=True)
class OperatorTraining(StageTraining):
    rollout: int = param("unrolled steps in the training loss (1 = one-step)", ge=1)
    first_window: float = param(
        "fraction of training windows that start at the first frame, where shocks form and one-step errors are largest",
        ge=0.0,
        le=1.0,
    )
    noise: float = param(
        "std of Gaussian noise added to the normalised input latents of each training window (0 = off)", ge=0.0
    )
    latent_weight: float = param(
        "weight of the normalised-latent MSE in the loss, next to the decoded relative L2 error (0 = decoded error only)",
        ge=0.0,
    )


@dataclass(frozen=True)
class TrainConfig:
    autoencoder: StageTraining = param("stage train_autoencoder")
    operator: OperatorTraining = param("stage train_operator")
    diff_residual: StageTraining = param("stage train_diff_residual")
    consistency: StageTraining = param("stage train_consistency_distill")
    steady_prior: StageTraining = param("stage train_steady_prior")


@dataclass(frozen=True)
class EvalSmallConfig:
    horizon: int = param("frames rolled out after the input frames", ge=1)
    trajectories: int = param("validation trajectories used (0 = all)", ge=0)


@dataclass(frozen=True)
class EvalFullConfig:
    ttc: bool = param("run test-time compute in the full evaluation")


@dataclass(frozen=True)
class EvalConfig:
    history: int = param("input frames given to every method (PDEBench: 10); excluded from metrics", ge=1)
    batch_size: int = param("trajectories per inference batch", ge=1)
    examples: int = param("test trajectories drawn as space-time images", ge=0)
    small: EvalSmallConfig = param("proxy evaluation on val (eval_small)")
    full: EvalFullConfig = param("full evaluation on test (eval_full)")


@dataclass(frozen=True)
class GateConfig:
    method: Literal["operator", "diffusion", "consistency", "ttc"] = param(
        "the method whose full-rollout nRMSE on test is the headline and is gated"
    )
    max_nrmse: float = param("absolute ceiling on the headline rollout nRMSE", gt=0.0)
    max_ratio_to_persistence: float = param("ceiling on nRMSE / persistence nRMSE", gt=0.0)
    min_improvement: float = param("required relative improvement over the champion (0.0 = not worse)", ge=-1.0, lt=1.0)


@dataclass(frozen=True)
class WandbConfig:
    enabled: bool = param("mirror metrics to Weights & Biases (mode from WANDB_MODE, offline by default)")
    project: str = param("W&B project")
    entity: str = param("W&B entity (empty = your default)")


@dataclass(frozen=True)
class LoggingConfig:
    wandb: WandbConfig = param("Weights & Biases")


@dataclass(frozen=True)
class VastConfig:
    gpu: str = param("GPU model to rent, Vast's name (e.g. RTX_4090)")
    num_gpus: int = param("GPUs per instance (training runs under torchrun with one process each)", ge=1)
    max_price: float = param("highest price accepted, USD per hour for the whole instance", gt=0.0)
    price_estimate: float = param("USD per GPU-hour used by validate's cost estimate", ge=0.0)
    disk: int = param("disk in GB", ge=10)
    image: str = param("Docker image of the instance")
    max_hours: float = param("wall-time limit; the reaper destroys instances past it", gt=0.0)


@dataclass(frozen=True)
class Config:
    data: DataConfig = param("Burgers-S data")
    latent: LatentConfig = param("latent token space")
    encoder: EncoderConfig = param("field → latent tokens")
    decoder: DecoderConfig = param("latent tokens + query coordinates → field values")
    operator: OperatorConfig = param("PDE-Transformer latent operator")
    diffusion: DiffusionConfig = param("diffusion residual corrector")
    consistency: ConsistencyConfig = param("consistency-distilled student of the diffusion sampler")
    steady_prior: SteadyPriorConfig = param("model of the terminal state")
    ttc: TTCConfig = param("test-time compute")
    runtime: RuntimeConfig = param("devices and processes")
    train: TrainConfig = param("per-stage training")
    eval: EvalConfig = param("evaluation protocol")
    gate: GateConfig = param("promotion gate")
    logging: LoggingConfig = param("logging mirrors")
    vast: VastConfig = param("Vast.ai launches")


# --------------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------------


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, typing.List):
        return f"a list of {_type_name(get_args(tp)[0])}"
    if _is_dataclass_type(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _range_text(meta: dict) -> str:
    lo = f"≥ {meta['ge']}" if meta.get("ge") is not None else (f"> {meta['gt']}" if meta.get("gt") is not None else "")
    hi = f"≤ {meta['le']}" if meta.get("le") is not None else (f"< {meta['lt']}" if meta.get("lt") is not None else "")
    return " and ".join(p for p in (lo, hi) if p)


def _in_range(value: float, meta: dict) -> bool:
    checks = (
        (meta.get("ge"), lambda b: value >= b),
        (meta.get("gt"), lambda b: value > b),
        (meta.get("le"), lambda b: value <= b),
        (meta.get("lt"), lambda b: value < b),
    )
    return all(bound is None or ok(bound) for bound, ok in checks)


def all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the tree, sections included."""
    keys = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        keys.append(key)
        tp = get_type_hints(cls)[f.name]
        if _is_dataclass_type(tp):
            keys.extend(all_keys(tp, key + "."))
    return keys


def _build(cls: type, raw: Any, prefix: str, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"{prefix.rstrip('.') or '<top level>'}: expected a mapping, got {raw!r}")
        return None
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    valid_keys = all_keys()
    for key in raw:
        if key not in names:
            dotted = f"{prefix}{key}"
            close = difflib.get_close_matches(dotted, valid_keys, n=1, cutoff=0.6)
            if not close:  # e.g. a key put in the wrong section: match on its last part
                same_leaf = [k for k in valid_keys if k.rsplit(".", 1)[-1] == str(key)]
                close = same_leaf[:1]
            hint = (
                f"; did you mean '{close[0]}'?"
                if close
                else f"; valid keys here: {', '.join(prefix + n for n in names)}"
            )
            problems.append(f"{dotted}: unknown key{hint}")
    values = {}
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        if f.name not in raw:
            problems.append(f"{dotted}: missing (expected {_type_name(hints[f.name])}: {f.metadata.get('doc', '')})")
            continue
        values[f.name] = _coerce(hints[f.name], raw[f.name], dotted, dict(f.metadata), problems)
    if any(v is _INVALID for v in values.values()) or len(values) != len(names):
        return _INVALID
    return cls(**values)


_INVALID = object()


def _coerce(tp: Any, value: Any, key: str, meta: dict, problems: list[str]) -> Any:
    origin = get_origin(tp)
    if _is_dataclass_type(tp):
        built = _build(tp, value, key + ".", problems)
        return _INVALID if built is None else built
    if origin is Literal:
        if value not in get_args(tp):
            problems.append(f"{key}: {value!r} is not allowed; choose {_type_name(tp)}")
            return _INVALID
        return value
    if origin in (list, typing.List):
        if not isinstance(value, list) or not value:
            problems.append(f"{key}: expected a non-empty list, got {value!r}")
            return _INVALID
        items = [_coerce(get_args(tp)[0], v, f"{key}[{i}]", meta, problems) for i, v in enumerate(value)]
        return _INVALID if any(i is _INVALID for i in items) else items
    if origin in (Union, types.UnionType):
        raise TypeError(f"{key}: optional parameters are not supported; give every key a value")
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(f"{key}: expected true or false, got {value!r}")
            return _INVALID
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{key}: expected an integer, got {value!r}")
            return _INVALID
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{key}: expected a number, got {value!r}")
            return _INVALID
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            problems.append(f"{key}: expected a string, got {value!r}")
            return _INVALID
        return value
    if not _in_range(value, meta):
        problems.append(f"{key}: {value!r} is out of range; allowed: {_range_text(meta)}")
        return _INVALID
    return value


def _cross_checks(cfg: Config) -> list[str]:
    """Constraints that involve several keys."""
    p = []
    d = cfg.data
    if d.solver.grid % d.grid:
        p.append(
            f"data.solver.grid: {d.solver.grid} is not a multiple of data.grid ({d.grid}); use e.g. {d.grid * max(1, round(d.solver.grid / d.grid))}"
        )
    if len(set(d.nu)) != len(d.nu):
        p.append(f"data.nu: {d.nu} lists a viscosity twice")
    if d.grid % cfg.latent.tokens:
        p.append(
            f"latent.tokens: {cfg.latent.tokens} must divide data.grid ({d.grid}) so every token covers the same span"
        )
    if cfg.encoder.kernel % 2 == 0:
        p.append(f"encoder.kernel: {cfg.encoder.kernel} must be odd (a centred, periodic convolution)")
    level_factor = 2 ** (cfg.operator.levels - 1)
    if cfg.latent.tokens % level_factor:
        p.append(
            f"operator.levels: {cfg.operator.levels} levels halve the token axis {cfg.operator.levels - 1} times, so latent.tokens ({cfg.latent.tokens}) must be divisible by {level_factor}"
        )
    for section in ("operator", "diffusion", "consistency", "steady_prior"):
        c = getattr(cfg, section)
        if c.width % c.heads:
            p.append(f"{section}.heads: {c.heads} must divide {section}.width ({c.width})")
    for stage in ("autoencoder", "operator", "diff_residual", "consistency", "steady_prior"):
        betas = getattr(cfg.train, stage).betas
        if len(betas) != 2:
            p.append(f"train.{stage}.betas: {betas} must be two numbers, AdamW's [β1, β2]")
    if cfg.operator.history > cfg.eval.history:
        p.append(
            f"operator.history: {cfg.operator.history} frames cannot exceed eval.history ({cfg.eval.history}), the frames evaluation provides"
        )
    if cfg.eval.history >= d.frames:
        p.append(f"eval.history: {cfg.eval.history} must leave frames to predict (data.frames = {d.frames})")
    if cfg.eval.history + cfg.eval.small.horizon > d.frames:
        p.append(
            f"eval.small.horizon: history {cfg.eval.history} + horizon {cfg.eval.small.horizon} exceeds data.frames ({d.frames})"
        )
    if cfg.gate.method == "ttc" and not cfg.eval.full.ttc:
        p.append("gate.method: 'ttc' needs eval.full.ttc: true (the full evaluation runs TTC only then)")
    if cfg.operator.history + cfg.train.operator.rollout > d.frames:
        p.append(
            f"train.operator.rollout: history {cfg.operator.history} + rollout {cfg.train.operator.rollout} exceeds data.frames ({d.frames})"
        )
    return p


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` as `dvc exp run -S` takes it: the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError([f"{text!r}: an override is key=value"], source="overrides")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def apply_overrides(raw: dict, overrides: dict[str, Any] | None) -> dict:
    """Set dotted keys in a nested dict (a deep copy), creating nothing that the tree lacks."""
    import copy

    out = copy.deepcopy(raw)
    problems = []
    valid = set(all_keys())
    for key, value in (overrides or {}).items():
        if key not in valid:
            close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
            problems.append(f"{key}: unknown key" + (f"; did you mean '{close[0]}'?" if close else ""))
            continue
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    if problems:
        raise ConfigError(problems, source="overrides")
    return out


def config_from_dict(raw: dict, source: str = PARAMS_FILE) -> Config:
    problems: list[str] = []
    cfg = _build(Config, raw, "", problems)
    if problems or cfg is _INVALID or cfg is None:
        raise ConfigError(problems or ["could not build the configuration"], source=source)
    cross = _cross_checks(cfg)
    if cross:
        raise ConfigError(cross, source=source)
    return cfg


def load_raw(path: Path | str = PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError([f"{path} not found; run from the repository root or pass --params"], source=str(path))
    if path.is_dir():
        raise ConfigError(
            [f"{path} is a folder; --params takes the params file itself (e.g. {path / PARAMS_FILE})"], source=str(path)
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError([f"not valid YAML: {exc}"], source=str(path)) from exc
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError([f"holds a YAML {type(raw).__name__}, not a mapping of sections"], source=str(path))
    return raw or {}


def load_config(path: Path | str = PARAMS_FILE, overrides: dict[str, Any] | None = None) -> Config:
    """Load, override, validate. Raises ConfigError naming every problem."""
    raw = apply_overrides(load_raw(path), overrides)
    try:
        return config_from_dict(raw, source=str(path))
    except ConfigError as exc:
        if not overrides:
            raise
        # Say where each bad value came from: an override (`-S`) or the file.
        from_overrides = [
            p for p in exc.problems if any(p.startswith(f"{key}:") or p.startswith(f"{key}.") for key in overrides)
        ]
        if len(from_overrides) == len(exc.problems):
            raise ConfigError(exc.problems, source="overrides") from None
        raise ConfigError(exc.problems, source=f"{path} and overrides") from None


def reference_markdown() -> str:
    """The params reference, generated from the dataclasses (docs/PARAMS.md)."""
    lines = [
        "# Parameters",
        "",
        "Generated by `ups params reference` from `ups/config.py`; values live in `params.yaml`.",
        "Set any of them for one experiment with `dvc exp run -S key=value`.",
        "",
        "| key | type | allowed | meaning |",
        "|---|---|---|---|",
    ]

    def walk(cls: type, prefix: str) -> None:
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            key = f"{prefix}{f.name}"
            if _is_dataclass_type(tp):
                lines.append(f"| **`{key}`** | section | | {f.metadata.get('doc', '')} |")
                walk(tp, key + ".")
            else:
                lines.append(
                    f"| `{key}` | {_type_name(tp)} | {_range_text(dict(f.metadata))} | {f.metadata.get('doc', '')} |"
                )

    walk(Config, "")
    return "\n".join(lines) + "\n"
