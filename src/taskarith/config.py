"""The typed experiment config: YAML in (safe loader), validated, overridable with `key.path=value`."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator, model_validator

from .groundwork.errors import QUOTE_LIMIT, TaskarithError, clip, first_line, quote
from .paradigms import PARADIGMS
from .groundwork.safe_yaml import load_yaml, load_yaml_value
from .groundwork.safety import PLAIN_NAME_RULE, is_plain_name, read_regular
from .groundwork.strict import Strict as _Strict, moved

MAX_SEEDS = 1000


class TrainConfig(_Strict):
    """The paper's protocol: AdamW, lr 1e-5, weight decay 0.1, cosine with warm-up, clipping at 1.0."""

    steps: int = Field(2000, gt=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(1e-5, gt=0, lt=3.4e38)  # float32's largest: AdamW cannot take a larger step size
    weight_decay: float = Field(0.1, ge=0)
    # what the decay pulls the weights toward. zero: θ itself, as the paper's code does for every paradigm
    # (its linear model trains θ0 + τ); base: θ0, which is decay on τ
    decay_toward: Literal["zero", "base"] = "zero"
    warmup_steps: int = Field(200, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    checkpoint_every: int = Field(100, gt=0)
    # torch and numpy take seeds below 2**63; the run adds the seed index to it
    seed: int = Field(0, ge=0, lt=2**62)


class ModelConfig(_Strict):
    family: str = "text-encoder"
    name: str = "all-MiniLM-L6-v2"  # a local folder, a cached hub id, or (clip) an open_clip checkpoint file
    max_length: int = Field(128, gt=0)
    device: str = "auto"  # auto: cuda when available, else cpu
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU
    trust_pickle: bool = False  # allow pickled .pt/.pth/.bin checkpoints (read with weights_only)
    tokenizer: str | None = None  # the CLIP tokenizer for an open_clip file (default: the file's folder)


class DataConfig(_Strict):
    tasks: list[str] = Field(default_factory=lambda: ["trec", "sms"], min_length=1)
    caps: dict[Literal["train", "val", "test"], int] = Field(default_factory=dict)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    val_cap: int | None = Field(1000, gt=0)
    root: str | None = None  # where image: and glue: tasks live; ~ and $VARS expand; else $TASKARITH_DATA

    @field_validator("caps")
    @classmethod
    def _positive_caps(cls, caps: dict[str, int]) -> dict[str, int]:
        for k, v in caps.items():
            if v <= 0:
                raise ValueError(f"cap for {k!r} must be positive, got {v}")
        return caps


MAX_ALPHA = 16.0  # weight averaging's mean of T vectors meets task arithmetic's sum at α = T


def _alpha_grid(alphas: list[float]) -> list[float]:
    """A non-empty grid of α in [0, MAX_ALPHA], sorted, each value once."""
    bad = [a for a in alphas if not 0 <= a <= MAX_ALPHA]
    if bad:
        raise ValueError(f"α values must lie in [0, {MAX_ALPHA:g}], got {bad[0]}")
    if not alphas:
        raise ValueError("an α grid needs at least one value")
    return sorted(set(alphas))


def _default_alphas() -> list[float]:
    return [round(0.05 * i, 2) for i in range(21)]


class MergeDataConfig(_Strict):
    """What the merge methods that read data take, and how long AdaMerging trains (the papers' defaults)."""

    fisher_examples: int = Field(256, gt=0)  # training examples per task behind each Fisher
    regmean_examples: int = Field(256, gt=0)  # training examples per task behind each Gram matrix
    batch_size: int = Field(16, gt=0)  # RegMean's batches; AdaMerging's test inputs per task and step
    steps: int = Field(500, gt=0)  # AdaMerging's Adam steps
    lr: float = Field(1e-3, gt=0, le=1)  # AdaMerging's Adam step size
    init: float = Field(0.3, ge=0, le=1)  # AdaMerging's starting coefficient for every task and layer


class EvalConfig(_Strict):
    alphas: list[float] = Field(default_factory=_default_alphas, min_length=1)
    batch_size: int = Field(64, gt=0)
    # test at every α draws the test curve of accuracy against α; off, test is scored at the chosen α only
    test_curve: bool = True
    negation: bool = True
    negation_control: str | None = None
    negation_keep: float = Field(0.95, gt=0, le=1)
    # merge methods compared with the plain sum, by their names in merging.MERGE_METHODS (checked by the run)
    merges: list[str] = Field(default_factory=list)
    merge_settings: dict[str, dict[str, int | float | str]] = Field(default_factory=dict)  # by method; run checks
    # a method's own α grid, replacing the registry's default for it
    merge_alphas: dict[str, Annotated[list[float], AfterValidator(_alpha_grid)]] = Field(default_factory=dict)
    merge_data: MergeDataConfig = MergeDataConfig()

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, tree: Any) -> Any:
        # keys of configs before merge_settings (results.json embeds one): old key -> (its default, what it set)
        density = [("merge_settings", method, "density") for method in ("ties", "dare", "dare_ties")]
        return moved(tree, {("merge_density",): (0.2, density),
                            ("merge_data", "off_diagonal"): (0.9, [("merge_settings", "regmean", "off_diagonal")])})

    @field_validator("alphas")
    @classmethod
    def _alphas_in_range(cls, alphas: list[float]) -> list[float]:
        return _alpha_grid(alphas)


class AnalysisConfig(_Strict):
    kernel: bool = False
    similarity: bool = True
    efficiency: bool = True
    disentangle_pairs: list[tuple[str, str]] = Field(default_factory=list)
    disentangle_grid: int = Field(15, gt=1)
    disentangle_range: float = Field(2.0, gt=0)
    disentangle_points: int = Field(2048, gt=0)
    ablation: list[str] = Field(default_factory=list)

    @field_validator("disentangle_pairs", mode="before")
    @classmethod
    def _pairs_from_lists(cls, pairs: object) -> object:
        # YAML and results.json give each pair as a list; strict types take only a tuple
        if isinstance(pairs, list):
            return [tuple(p) if isinstance(p, list) else p for p in pairs]
        return pairs


class TaskRequest(_Strict):
    """What one Ray task asks of the cluster: ray.remote's num_cpus, num_gpus and memory (bytes)."""

    num_cpus: float = Field(1, gt=0)
    num_gpus: float = Field(0, ge=0)
    memory: int | None = Field(None, gt=0)


class ResourcesConfig(_Strict):
    """Where the work runs. None of it changes what is computed (beyond float rounding), so none of it enters
    a fingerprint: a run may resume on other resources."""

    finetune: TaskRequest = TaskRequest()  # each fine-tune, under --executor ray
    evaluate: TaskRequest = TaskRequest()  # each evaluation, negation or analysis unit, under --executor ray
    retries: int = Field(3, ge=0)  # times Ray runs again a unit whose worker died
    # the most examples one rank forwards at once; a larger share of the global batch accumulates gradients
    device_batch_size: int | None = Field(None, gt=0)


class ExperimentConfig(_Strict):
    name: str = "experiment"
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    paradigms: list[Literal[tuple(PARADIGMS)]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(PARADIGMS), min_length=1
    )
    seeds: int = Field(1, gt=0, le=MAX_SEEDS)
    # empty: train.lr for every paradigm, the paper's protocol. Else each paradigm's rate is chosen among these
    # on validation (seed 0's mean individual accuracy); train.lr must be one of them and wins ties
    lr_search: list[float] = Field(default_factory=list)
    eval: EvalConfig = EvalConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    resources: ResourcesConfig = ResourcesConfig()

    @field_validator("lr_search")
    @classmethod
    def _positive_rates(cls, rates: list[float]) -> list[float]:
        bad = [r for r in rates if not 0 < r < 3.4e38]
        if bad:
            raise ValueError(f"learning rates must be positive float32 values, got {bad[0]}")
        return sorted(set(rates))

    @model_validator(mode="after")
    def _search_holds_the_default(self) -> "ExperimentConfig":
        if self.lr_search and self.train.lr not in self.lr_search:
            raise ValueError(f"train.lr = {self.train.lr:g} must be one of the candidates, "
                             f"{', '.join(f'{r:g}' for r in self.lr_search)}: it is the paper's rate and wins ties")
        return self

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        # the name is the default run folder under runs/: no separator or dot may lead it elsewhere
        if not is_plain_name(name):
            raise ValueError(f"must be a plain name: {PLAIN_NAME_RULE}")
        return name


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise TaskarithError(f"override {quote(dotted)}: {quote(k)} is not a section")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise TaskarithError(f"override {quote(text)}: expected KEY.PATH=VALUE")
    key, raw = text.split("=", 1)
    return key.strip(), load_yaml_value(raw, f"override {quote(text)}")


def _dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key a config may set, sections included, as dotted paths."""
    keys = []
    for name, info in model.model_fields.items():
        keys.append(prefix + name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            keys += _dotted_keys(info.annotation, f"{prefix}{name}.")
    return keys


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, _dotted_keys(ExperimentConfig), n=1)
    return f"; did you mean {close[0]}?" if close else ""


def _shown(text: str, limit: int = QUOTE_LIMIT) -> str:
    # a key with a newline or other control character is quoted, so the message stays one readable line
    return clip(text if text.isprintable() else quote(text), limit)


def _blamed(dotted: str, overrides: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The (argument, key) of the last override that set the key at fault or a section holding it: it won."""
    for item, key in reversed(overrides):
        if dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + "."):
            return item, key
    return None


def _format_error(source: str, err: ValidationError, overrides: Sequence[tuple[str, str]] = ()) -> str:
    e = err.errors()[0]
    dotted = ".".join(map(str, e["loc"]))
    where = clip(".".join(map(_shown, map(str, e["loc"])))) or "(top level)"
    blamed = _blamed(dotted, overrides) if dotted else None
    if blamed is not None:
        source = f"--set {_shown(blamed[0], 100)}"
    if e["type"] == "extra_forbidden":
        # `--set trian.steps=5` fails at "trian": suggest from the whole key
        wrong = blamed[1] if blamed is not None and blamed[1].startswith(dotted + ".") else dotted
        return f"{source}: {where}: unknown key{_did_you_mean(wrong)}"
    # the input is quoted shortened: it may be a huge value from the file
    got = "" if isinstance(e.get("input"), dict) else f" (got {quote(e['input'])})"
    return f"{source}: {where}: {e['msg']}{got}"


def validate(tree: dict, source: str = "config", overrides: Sequence[tuple[str, str]] = ()) -> ExperimentConfig:
    """The config of `tree`; an error names the --set argument (`overrides`: argument, key) that set the key
    at fault, else `source`."""
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as err:
        raise TaskarithError(_format_error(source, err, overrides)) from err


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read YAML with the safe loader, apply `key.path=value` overrides, validate."""
    tree: Any = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            tree = load_yaml(read_regular(path).decode("utf-8")) or {}
        except FileNotFoundError as e:
            raise TaskarithError(f"{path}: no such config file") from e
        except OSError as e:
            raise TaskarithError(f"{path}: cannot read the config file ({e.strerror})") from e
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError) as e:
            raise TaskarithError(f"{path}: not valid YAML ({clip(first_line(e))})") from e
        if not isinstance(tree, dict):
            raise TaskarithError(f"{path}: expected a mapping at the top level, got {type(tree).__name__}")
    applied = []
    for item in overrides:
        key, value = parse_override(item)
        _set_path(tree, key, value)
        applied.append((item, key))
    return validate(tree, source, applied)
