"""The covertype data contract: column order, types, ranges and categories.

Collection, training, serving and the UI all read the schema from here, so a range or a category
list is written once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMERIC = "numeric"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    description: str = ""


WILDERNESS_AREAS: tuple[str, ...] = ("Rawah", "Neota", "Commanche", "Cache")
"""Original areas 1..4; "Commanche" is the course data's spelling."""

SOIL_TYPES: tuple[str, ...] = tuple(
    f"C{code}"
    for code in (
        2702, 2703, 2704, 2705, 2706, 2717, 3501, 3502, 4201, 4703,
        4704, 4744, 4758, 5101, 5151, 6101, 6102, 6731, 7101, 7102,
        7103, 7201, 7202, 7700, 7701, 7702, 7709, 7710, 7745, 7746,
        7755, 7756, 7757, 7790, 8703, 8707, 8708, 8771, 8772, 8776,
    )
)  # fmt: skip
"""USFS ELU codes of the original soil types 1..40, prefixed with C as the course data writes them."""

SOIL_TYPE_PATTERN = r"^C\d{4}$"

COVER_TYPE_NAMES: dict[int, str] = {
    1: "Spruce/Fir",
    2: "Lodgepole Pine",
    3: "Ponderosa Pine",
    4: "Cottonwood/Willow",
    5: "Aspen",
    6: "Douglas-fir",
    7: "Krummholz",
}

FEATURES: tuple[Column, ...] = (
    Column("Elevation", NUMERIC, 0, 5000, description="Elevation in meters"),
    Column("Aspect", NUMERIC, 0, 360, description="Aspect in degrees azimuth"),
    Column("Slope", NUMERIC, 0, 90, description="Slope in degrees"),
    Column("Horizontal_Distance_To_Hydrology", NUMERIC, 0, 10000, description="Meters to surface water"),
    Column("Vertical_Distance_To_Hydrology", NUMERIC, -1000, 1000, description="Meters to surface water"),
    Column("Horizontal_Distance_To_Roadways", NUMERIC, 0, 10000, description="Meters to the nearest road"),
    Column("Hillshade_9am", NUMERIC, 0, 255, description="Hillshade index at 9am, summer solstice"),
    Column("Hillshade_Noon", NUMERIC, 0, 255, description="Hillshade index at noon, summer solstice"),
    Column("Hillshade_3pm", NUMERIC, 0, 255, description="Hillshade index at 3pm, summer solstice"),
    Column(
        "Horizontal_Distance_To_Fire_Points",
        NUMERIC,
        0,
        10000,
        description="Meters to fire points",
    ),
    Column("Wilderness_Area", CATEGORICAL, choices=WILDERNESS_AREAS, description="Wilderness area"),
    Column(
        "Soil_Type",
        CATEGORICAL,
        choices=SOIL_TYPES,
        pattern=SOIL_TYPE_PATTERN,
        description="Soil type as C + USFS ELU code",
    ),
)
LABEL = Column("Cover_Type", NUMERIC, 1, 7, description="Forest cover type 1..7")

COLUMNS: tuple[Column, ...] = (*FEATURES, LABEL)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
FEATURE_NAMES: tuple[str, ...] = tuple(c.name for c in FEATURES)
NUMERIC_FEATURES: tuple[str, ...] = tuple(c.name for c in FEATURES if c.kind == NUMERIC)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(c.name for c in FEATURES if c.kind == CATEGORICAL)
LABEL_NAME = LABEL.name
COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}

SOIL_TYPE_REGEX = re.compile(SOIL_TYPE_PATTERN)
