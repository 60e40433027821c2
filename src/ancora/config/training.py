"""Training and the model registry (MLflow's client side)."""

from __future__ import annotations

from pydantic import Field

from ancora.config.addresses import AddressSettings
from ancora.config.data import DataSettings


class RegistrySettings(AddressSettings):
    """Which MLflow experiment and registered model every role works with."""

    mlflow_experiment: str = Field(default="covertype", description="MLflow experiment of the training runs.")
    registered_model_name: str = Field(default="covertype", description="Registered model name in MLflow.")


class TrainingSettings(RegistrySettings, DataSettings):
    """What `ancora train` and the covertype_train DAG read."""

    train_families: str = Field(
        default="logistic_regression,random_forest,hist_gradient_boosting",
        description="Model families `ancora train` searches by default, comma-separated.",
    )
    train_search_budget: int = Field(
        default=3, ge=1, le=50, description="Hyper-parameter configurations tried per family (bounded)."
    )
    train_seed: int = Field(default=42, description="Seed of every split, search and estimator in training.")
    train_min_rows: int = Field(
        default=500,
        ge=10,
        description="Training refuses to start with fewer distinct validated rows (contents) than this.",
    )
    train_min_class_rows: int = Field(
        default=5,
        ge=3,
        description="Distinct rows a class needs to be stratified; a thinner class is left out of the run.",
    )
    train_validation_fraction: float = Field(
        default=0.2, gt=0, lt=0.5, description="Share of training rows held out to pick the best candidate."
    )
    train_n_jobs: int = Field(
        default=2,
        ge=1,
        description="Candidates fitted at once, each single-threaded (OpenMP threads thrash shared cores).",
    )
    eval_fraction: float = Field(
        default=0.2, gt=0, lt=0.5, description="Share of new rows drawn into the frozen evaluation set."
    )
    promotion_margin: float = Field(
        default=0.005,
        ge=0,
        description="Macro F1 by which a challenger must beat the champion on the evaluation set.",
    )
    code_version: str | None = Field(
        default=None,
        description="Code version recorded on training runs; default: the checkout's git commit, else the "
        "package version (images set it at build time).",
    )

    # --- Compiled serving (src/ancora/training/compile.py, serving/engines.py; issue #18) ---
    train_compile: bool = Field(
        default=True,
        description="Compile each registered version to ONNX Runtime (parity-checked on the frozen "
        "evaluation set); false: versions are registered without, and scikit-learn serves them.",
    )
    train_compile_timing_max_rows: int = Field(
        default=8192,
        ge=1,
        le=100_000,
        description="Largest call size timed on both engines to find the crossover (sizes 1, 8, 32, ... "
        "up to this); a larger call uses the engine that won at the largest size timed.",
    )
