"""The data group typed: one dataclass per data.source (cfpb_sample, csv, hf, synthetic) over the keys every
source shares (splits, small classes, the long tail); data_config picks the source's class and checks it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from sweep.schema.build import ConfigError, build, schema, spec

SOURCES = ("cfpb_sample", "csv", "hf", "synthetic")


@schema
class Data:
    name: str
    source: Literal["cfpb_sample", "csv", "hf", "synthetic"]
    val_fraction: float = spec(0.01, 0.5)
    test_fraction: float = spec(0.01, 0.5)
    min_class_count: int = spec(0)
    small_classes: Literal["drop", "merge"] = spec(msg="{key}={value!r} is unknown: use drop or merge")
    imbalance_ratio: float | None = spec(1.0, 1e6)
    imbalance_splits: Literal["all", "train"] = spec(
        msg="{key}={value!r} is unknown: use all (val and test get the training mix) or train (only train is "
        "subsampled)"
    )
    split_seed: int = spec(0, default=0)  # export's seeds=K sets it (++data.split_seed)
    drop_missing_labels: bool = spec(default=False)  # csv.yaml sets it; the other sources never miss a label


@schema
class Columns(Data):
    text_column: str
    label_column: str | None  # cfpb_csv: null, picked by label_field
    id_column: str | None  # unique row ids: model=precomputed* files may match rows by it


@schema
class CfpbSample(Columns):
    wheel: str
    sha256: str = spec(pattern="[0-9a-f]{64}", fix="give the wheel's 64 hex digits (conf/data/cfpb_sample.yaml)")


@schema
class Csv(Columns):
    path: str | None  # null: the one line at load_splits says to set it (the data stage's own check)
    test_path: str | None
    label_field: str | None = spec(default=None)  # cfpb_csv: product | sub_product | issue
    label_columns: dict[str, str] | None = spec(default=None)


@schema
class Hf(Columns):
    dataset: str
    config_name: str | None
    train_split: str
    test_split: str | None


@schema
class Synthetic(Data):
    n_classes: int = spec(2, 10_000)
    n: int | None = spec(10, 10_000_000)  # set: the Zipf profile (data=synthetic_scale)
    n_max: int = spec(3, 1_000_000)
    ratio: float = spec(1.0, 1e6)
    words_per_text: int = spec(1, 10_000)
    signal: float = spec(0.0, 1.0)
    generator_seed: int = spec(0)


KINDS = {"cfpb_sample": CfpbSample, "csv": Csv, "hf": Hf, "synthetic": Synthetic}


def data_config(node: Mapping) -> Data:
    """The data group as its source's dataclass; a bad value or a key the source cannot use, one line."""
    source = build(Data, node, "data").source  # the shared keys first: the source names the class
    if source == "synthetic" and node.get("id_column"):
        raise ConfigError(
            f"data.id_column={node['id_column']!r}, but generated data has no ids: unset it (rows match by position)"
        )
    return build(KINDS[source], node, "data")
