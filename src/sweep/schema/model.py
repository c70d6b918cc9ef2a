"""The model group typed, by model.kind: a head on features (tfidf, a frozen encoder, a fine-tune once, your
embeddings) with its solver settings model.head, a fine-tune per trial, or your logits; model_config picks one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from sweep.schema.build import build, schema, spec

KINDS = ("head", "finetune", "logits")
DEVICE = dict(pattern=r"auto|cpu|cuda(:\d+)?", fix="use auto, cpu or cuda")
L2_FIX = "an unpenalized head on separable features has no optimum; use e.g. 1e-5 (`make l2` chooses it on validation)"
GTOL_FIX = "use e.g. 1e-6"
NORMALIZE = ("l2", "standard", "none")


@schema
class Model:
    name: str
    kind: Literal["head", "finetune", "logits"]


@schema
class Head:  # the converged linear head (models/head.py), to max|gradient| <= gtol
    l2: float = spec(0, lo_open=True, fix=L2_FIX)
    gtol: float = spec(0, lo_open=True, fix=GTOL_FIX)
    max_iter: int = spec(1, 100_000)
    device: str = spec(**DEVICE)


@schema
class HeadModel(Model):
    features: Literal["tfidf", "embeddings", "finetuned", "precomputed"]
    head: Head


@schema
class Tfidf:
    max_features: int = spec(1)
    ngram_max: int = spec(1, 5)
    min_df: int = spec(1, fix="a document count, e.g. 2")
    sublinear_tf: bool


@schema
class TfidfModel(HeadModel):
    tfidf: Tfidf


@schema
class Encoder:
    pretrained: str
    max_length: int = spec(8, 8192)
    batch_size: int = spec(1, 65_536)


@schema
class EncoderModel(HeadModel):
    encoder: Encoder


@schema
class StageWeighting:  # the fine-tune's own class weights (the trials' alpha is the head's)
    scheme: Literal["power", "effective_number", "none"]
    alpha: float = spec(0.0, 2.0, default=0.0)
    beta: float = spec(0.0, 1.0, hi_open=True, default=0.999)


@schema
class Stage:  # decoupled's model.finetune: its loss and seed here, the rest is the fine-tune's own check
    pretrained: str
    weighting: StageWeighting
    tau: float = spec(0.0, 5.0)
    seed: int = spec(0)


@schema
class DecoupledModel(HeadModel):
    finetune: Stage
    normalize: Literal["l2", "standard", "none"]


@schema
class PrecomputedModel(HeadModel):
    path: str = spec(fix="give the file, e.g. model=precomputed model.path=emb.npy")
    test_path: str | None
    id_column: str | None
    normalize: Literal["l2", "standard", "none"]


@schema
class FinetuneModel(Model):  # every other key: the fine-tune's own check (schema/finetune.py)
    pretrained: str


@schema
class LogitsModel(Model):
    path: str = spec(fix="give the file, e.g. model=precomputed_logits model.path=logits.parquet")
    test_path: str | None
    id_column: str | None
    classes: tuple[str, ...] | str | None  # a .npy's class names, or a .txt with one per line
    sweep: dict[str, Any] | None = spec(default=None)  # replaces sweep.params / sweep.baselines


FEATURES = {"tfidf": TfidfModel, "embeddings": EncoderModel, "finetuned": DecoupledModel}
FEATURES["precomputed"] = PrecomputedModel


def model_config(node: Mapping) -> Model:
    """The model group as its kind's (and a head's features') dataclass."""
    kind = build(Model, node, "model").kind
    if kind == "head":
        return build(FEATURES[build(HeadModel, node, "model").features], node, "model")
    return build(FinetuneModel if kind == "finetune" else LogitsModel, node, "model")


def check_head(l2: float, gtol: float) -> None:
    """The head's l2 and gtol for a caller with plain numbers (models/head.py's fit_head): the same line."""
    build(Head, {"l2": l2, "gtol": gtol, "max_iter": 1, "device": "auto"}, "model.head")
