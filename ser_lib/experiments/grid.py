"""Experiment grids: a YAML file naming methods, config values and seeds, expanded into trials.

A grid file (the shipped ones are in `grids/`)::

    name: table8-alpha-beta       # also the report's title
    profile: demo                 # the config profile every run starts from
    set: {train.max_epochs: 6}    # overrides for every run (optional)
    methods: [paper]              # presets (`method.presets`), applied before the grid point
    grid:                         # config keys and their values; the runs are the product
      loss.alpha: [0, 0.1, 0.3]
      loss.beta: [0, 0.1]
    # or a list of such mappings over the same keys: the runs are the union of their products,
    # each point once (scikit-learn's ParameterGrid convention). One factor at a time, as the
    # paper's Table VIII varies α at β = 0.1, then β at α = 0.3:
    #   grid:
    #     - {loss.alpha: [0, 0.1, 0.3], loss.beta: [0.1]}
    #     - {loss.alpha: [0.3], loss.beta: [0, 0.3]}
    seeds: [0, 1, 2]
    folds: all                    # all speakers, a list of speakers, or N (the first N)
    threads: 1                    # torch threads per trial (`runtime.threads`)
    contrast: loss.alpha          # optional: the report pairs each value of this grid key with its
                                  # first value, at the same other values, fold and seed
    corpus: synth                 # optional: no --manifest; every run gets the synthetic corpus of its
                                  # own `synth.*` settings, generated on first use (`experiments.corpora`)
    draws: synth.seed             # optional: a grid key whose values are corpus draws; the report pairs
                                  # over (draw, fold, seed) instead of making each draw a row
    along: synth.annotator_temperature  # optional: a numeric grid key; the report draws each method's
                                  # Δ against soft-static and the labels' JS to the truth along it
    trials_per_worker: 4          # optional: folds one worker process trains before it exits
                                  # (`experiments.jobs`; `ser sweep --trials-per-worker` overrides it)
    paper:                        # optional: the paper's table the grid reproduces; the report's
      table: VIII                 # results table gets a column of the paper's values (`PaperRows`)
      column: UA
      rows:                       # a row of the report -> the paper's row (`analysis.paper_numbers`)
        "loss.alpha=0.3, loss.beta=0.1": α = 0.3 (β = 0.1)

A *run* is one (method, grid point, seed): a run folder `METHOD/POINT/seed-N` under the sweep
folder, with the usual fold folders (`analysis.runs`). A *trial* is one fold of one run, the unit
a sweep schedules.

With `corpus: synth` the corpus is an axis like any config key: a grid over
`synth.annotator_temperature` and `synth.seed` spans several noise levels and corpus draws in one
sweep and one report. A ranking from one corpus draw need not carry over to another, so `draws`
tells the report that the draw is a level of variation to pair over, not a setting to compare.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..analysis.paper_numbers import PaperLookupError, paper_value
from ..config import Config, apply_overrides, load_config
from ..errors import ConfigError
from ..method.presets import PRESETS, apply_preset
from .jobs import check_trials_per_worker

DEFAULT_POINT = "default"
GRID_KEYS = {"name", "profile", "set", "methods", "grid", "seeds", "folds", "threads", "description", "contrast",
             "corpus", "draws", "along", "trials_per_worker", "paper", "blocks"}
CORPORA = ("synth",)  # what `corpus:` may name; without it the sweep's --manifest is every run's corpus


@dataclass(frozen=True)
class PaperRows:
    """A grid's `paper:`: which of the paper's tables (`table`, a Roman numeral) and `column` it
    reproduces, and `rows`, the paper's row for each row of the report that has one.

    A key of `rows` selects report rows the way the report labels them, `METHOD [KEY=VALUE, ...]`,
    but may leave out the method (`loss.alpha=0.3, loss.beta=0.1`: any method), the point
    (`cor-cor`: that method at every point) or some grid keys (`model.variant=full`: every row with
    that value). The grid is checked to have each selected row, and no row may be selected twice.
    """
    table: str
    column: str
    rows: dict[str, str]  # selector -> the paper's row label

    @classmethod
    def from_dict(cls, tree: Any, source: str = "grid") -> "PaperRows":
        """Read and check `paper:`; a table, row or column the paper lacks is a ConfigError
        naming it (`paper_numbers.paper_value`)."""
        if not isinstance(tree, dict) or set(tree) != {"table", "column", "rows"} or not isinstance(
                tree["rows"], dict) or not tree["rows"]:
            raise ConfigError(f"{source}: paper must map table (e.g. VIII), column (e.g. UA) and rows "
                              f"(report row -> paper row), got {tree!r}")
        paper = cls(str(tree["table"]), str(tree["column"]), {str(k): str(v) for k, v in tree["rows"].items()})
        for selector, row in paper.rows.items():
            try:
                paper_value(paper.table, row, paper.column)
            except PaperLookupError as exc:
                raise ConfigError(f"{source}: paper row {selector!r}: {exc}") from None
        return paper

    def row(self, method: str, point: dict[str, Any]) -> str | None:
        """The paper's row for the report row of `method` at grid point `point`; None if unmapped."""
        for selector, row in self.rows.items():
            if _selects(selector, method, point):
                return row
        return None

    def to_dict(self) -> dict:
        return {"table": self.table, "column": self.column, "rows": dict(self.rows)}


def parse_selector(selector: str) -> tuple[str | None, dict[str, Any]]:
    """`paper [loss.beta=0.1]` -> ("paper", {"loss.beta": 0.1}); `loss.beta=0.1` -> (None, {...});
    `paper` -> ("paper", {}). Values are read as YAML, like the grid's."""
    method, _, point = selector.partition("[")
    if not point and "=" in method:
        method, point = "", method
    # A comma starts a new term only before KEY=, so a value may hold commas (model.conv_channels=8,8).
    terms = [term.split("=", 1) for term in re.split(r",\s*(?=[\w.]+=)", point.rstrip().removesuffix("]"))
             if term.strip()]
    if any(len(term) != 2 for term in terms):
        raise ConfigError(f"paper row {selector!r}: write METHOD, KEY=VALUE, ... or METHOD [KEY=VALUE, ...]")
    return method.strip() or None, {key.strip(): yaml.safe_load(value.strip()) for key, value in terms}


def _selects(selector: str, method: str, point: dict[str, Any]) -> bool:
    wanted, values = parse_selector(selector)
    return wanted in (None, method) and all(k in point and point[k] == v for k, v in values.items())


@dataclass(frozen=True)
class Grid:
    name: str
    profile: str = "demo"
    set: dict[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = ("paper",)
    grid: dict[str, tuple] = field(default_factory=dict)  # every key's values (over all blocks, first-seen order)
    blocks: tuple[dict[str, tuple], ...] | None = None  # a list-valued `grid:`; None: the product of `grid`
    seeds: tuple[int, ...] = (0,)
    folds: Any = "all"  # "all", a list of fold names (speakers under LOSO), or an int (the first N folds)
    threads: int = 1
    description: str = ""
    contrast: str | None = None  # a grid key whose values the report pairs with its first value
    corpus: str | None = None  # "synth": each run's corpus is generated from its synth.* settings
    draws: str | None = None  # a grid key holding corpus draws (e.g. synth.seed), paired over in the report
    along: str | None = None  # a numeric grid key the report draws Δ and JS along (e.g. a noise level)
    trials_per_worker: int | None = None  # folds per worker process; None: the sweep's default (`jobs`)
    paper: PaperRows | None = None  # the paper's table the report puts beside the results

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, in file order ([{}] without a grid); with blocks,
        each block's combinations in turn, a point already listed skipped."""
        points = []
        for block in self.blocks or (self.grid,):
            for values in itertools.product(*block.values()):
                point = dict(zip(block, values))
                if point not in points:
                    points.append(point)
        return points

    def runs(self) -> list["Run"]:
        """Seed-major, then draw-major, so a sweep stopped early has every method and point for the
        first seeds and corpus draws."""
        runs = [Run(method, point, seed) for seed in self.seeds for method in self.methods for point in self.points()]
        if self.draws is None:
            return runs
        draws = list(self.grid[self.draws])
        return sorted(runs, key=lambda run: (self.seeds.index(run.seed), draws.index(run.point[self.draws])))

    def speakers(self, all_speakers: list[str]) -> list[str]:
        """The grid's folds among the corpus' fold names (its sorted speakers under LOSO)."""
        if self.folds == "all":
            return list(all_speakers)
        if isinstance(self.folds, int):
            return list(all_speakers[:self.folds])
        unknown = sorted(set(self.folds) - set(all_speakers))
        if unknown:
            raise ConfigError(f"grid {self.name!r}: folds {unknown} are not folds of the corpus {all_speakers}")
        return list(self.folds)

    def config(self, run: "Run") -> Config:
        """The run's config: profile <- `set` <- method preset <- grid point <- seed, threads."""
        config = apply_preset(load_config(self.profile, overrides=self.set), run.method)
        apply_overrides(config, {**run.point, "seed": run.seed, "runtime.threads": self.threads})
        return config.validate()

    def configs(self) -> dict[str, Config]:
        """Every run's config by run name, built once for a sweep's steps to share."""
        return {run.name: self.config(run) for run in self.runs()}

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "profile": self.profile, "set": dict(self.set),
                "methods": list(self.methods), "grid": {k: list(v) for k, v in self.grid.items()},
                # sweep.json keeps the union in `grid`, which the report reads for keys and values
                "blocks": None if self.blocks is None else [{k: list(v) for k, v in b.items()} for b in self.blocks],
                "seeds": list(self.seeds), "folds": self.folds if not isinstance(self.folds, tuple) else list(self.folds),
                "threads": self.threads, "contrast": self.contrast, "corpus": self.corpus, "draws": self.draws,
                "along": self.along, "trials_per_worker": self.trials_per_worker,
                "paper": None if self.paper is None else self.paper.to_dict()}


@dataclass(frozen=True)
class Run:
    method: str
    point: dict[str, Any]
    seed: int

    @property
    def name(self) -> str:
        """The run folder relative to the sweep folder: METHOD/POINT/seed-N."""
        return f"{self.method}/{point_name(self.point)}/seed-{self.seed}"


def point_name(point: dict[str, Any]) -> str:
    """A grid point as a folder name: ``loss.alpha=0.3,loss.beta=0.1`` (``default`` when empty)."""
    return ",".join(f"{k}={_value_name(v)}" for k, v in point.items()) or DEFAULT_POINT


def point_label(point: dict[str, Any]) -> str:
    """A grid point as the report labels it: ``loss.alpha=0.3, loss.beta=0.1`` (``default`` when empty)."""
    return ", ".join(f"{k}={v}" for k, v in point.items()) or DEFAULT_POINT


def row_label(method: str, point: dict[str, Any]) -> str:
    """A row of the report: ``paper [loss.alpha=0.3, loss.beta=0.1]``, or ``paper`` at no point."""
    return f"{method} [{point_label(point)}]" if point else method


def _value_name(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file: every run's config is built once, so a bad key or value is
    reported here, naming the file, before any trial starts."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"grid file {path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"grid file {path} is not valid YAML: {exc}") from None
    grid = grid_from_dict(tree, source=str(path), default_name=path.stem)
    return grid


def grid_from_dict(tree: Any, source: str = "grid", default_name: str = "grid") -> Grid:
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: a grid file holds a mapping (name, profile, methods, grid, seeds, folds)")
    unknown = sorted(set(tree) - GRID_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown grid key(s) {unknown}; allowed: {sorted(GRID_KEYS)}")
    methods = tuple(_as_list(tree.get("methods", ["paper"]), source, "methods"))
    bad = [m for m in methods if m not in PRESETS]
    if bad:
        raise ConfigError(f"{source}: unknown method(s) {bad}; `ser methods --all` lists {sorted(PRESETS)}")
    values, blocks = _grid_blocks(tree, source)
    folds = tree.get("folds", "all")
    if not (folds == "all" or (isinstance(folds, int) and folds > 0) or isinstance(folds, list)):
        raise ConfigError(f"{source}: folds must be 'all', a positive number or a list of speakers, got {folds!r}")
    grid = Grid(
        name=str(tree.get("name", default_name)), profile=str(tree.get("profile", "demo")),
        set=dict(tree.get("set") or {}), methods=methods,
        grid=values, blocks=blocks,
        seeds=tuple(int(s) for s in _as_list(tree.get("seeds", [0]), source, "seeds")),
        folds=tuple(str(f) for f in folds) if isinstance(folds, list) else folds,
        threads=int(tree.get("threads", 1)), description=str(tree.get("description", "")).strip(),
        contrast=None if tree.get("contrast") is None else str(tree["contrast"]),
        corpus=None if tree.get("corpus") is None else str(tree["corpus"]),
        draws=None if tree.get("draws") is None else str(tree["draws"]),
        along=None if tree.get("along") is None else str(tree["along"]),
        trials_per_worker=(None if tree.get("trials_per_worker") is None
                           else check_trials_per_worker(tree["trials_per_worker"], source)),
        paper=None if tree.get("paper") is None else PaperRows.from_dict(tree["paper"], source),
    )
    if grid.corpus is not None and grid.corpus not in CORPORA:
        raise ConfigError(f"{source}: corpus must be one of {list(CORPORA)} (or absent: the sweep's --manifest), "
                          f"got {grid.corpus!r}")
    if grid.draws is not None and grid.draws not in grid.grid:
        raise ConfigError(f"{source}: draws {grid.draws!r} must be a grid key; the grid has {sorted(grid.grid)}")
    if grid.along is not None and (grid.along == grid.draws or grid.along not in grid.grid or not all(
            isinstance(v, (int, float)) for v in grid.grid[grid.along])):
        raise ConfigError(f"{source}: along {grid.along!r} must be a grid key with numeric values, other than the draws")
    if grid.draws is not None and grid.draws == grid.contrast:
        raise ConfigError(f"{source}: {grid.draws!r} cannot be both the draws and the contrast")
    if grid.contrast is not None and grid.blocks is not None:
        raise ConfigError(f"{source}: a contrast pairs every value with the first at the same other values, "
                          "which a list of grids does not have; leave contrast out")
    if grid.contrast is not None and len(grid.grid.get(grid.contrast, ())) < 2:
        raise ConfigError(f"{source}: contrast {grid.contrast!r} must be a grid key with at least two values")
    if grid.threads < 1:
        raise ConfigError(f"{source}: threads must be >= 1, got {grid.threads}")
    if len(set(grid.seeds)) != len(grid.seeds):
        raise ConfigError(f"{source}: seeds repeat: {list(grid.seeds)}")
    for run in grid.runs():
        try:
            grid.config(run)
        except ConfigError as exc:
            raise ConfigError(f"{source}: run {run.name}: {exc}") from None
    if grid.paper is not None:
        _check_paper_rows(grid, source)
    return grid


def _grid_blocks(tree: dict, source: str) -> tuple[dict[str, tuple], tuple[dict[str, tuple], ...] | None]:
    """A grid's values by key (first-seen order) and, for a list-valued `grid:` (or sweep.json's
    `blocks`), its blocks, which must all have the same keys."""
    values = {} if tree.get("grid") is None else tree["grid"]
    listed = values if isinstance(values, list) else tree.get("blocks")
    if listed is None:
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: 'grid' maps config keys to lists of values, or is a list of such mappings")
        return {str(k): tuple(_as_list(v, source, f"grid.{k}")) for k, v in values.items()}, None
    if not listed or not all(isinstance(block, dict) and block for block in listed):
        raise ConfigError(f"{source}: a list-valued 'grid' holds one or more non-empty mappings of config keys "
                          "to lists of values")
    blocks = tuple({str(k): tuple(_as_list(v, source, f"grid[{i}].{k}")) for k, v in block.items()}
                   for i, block in enumerate(listed))
    for i, block in enumerate(blocks[1:], 1):
        if set(block) != set(blocks[0]):
            raise ConfigError(f"{source}: grid[{i}] has the keys {sorted(block)}, grid[0] {sorted(blocks[0])}; "
                              "every block of a list-valued grid sets the same keys")
    union = {key: tuple(dict.fromkeys(v for block in blocks for v in block[key])) for key in blocks[0]}
    return union, blocks


def _as_list(value: Any, source: str, key: str) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{source}: {key} must not be empty")
    return copy.deepcopy(values)


def _check_paper_rows(grid: Grid, source: str) -> None:
    """Each selector of `paper.rows` selects a row of the grid's report, and none a row another one selects."""
    shown = [key for key in grid.grid if key != grid.draws]  # the report pairs over draws, not rows
    rows = {row_label(method, point): (method, point) for method in grid.methods
            for point in ({k: v for k, v in p.items() if k in shown} for p in grid.points())}
    for selector in grid.paper.rows:
        try:
            _, values = parse_selector(selector)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if unknown := sorted(set(values) - set(shown)):
            raise ConfigError(f"{source}: paper row {selector!r}: {unknown} not among the grid keys {shown}")
        if not any(_selects(selector, *row) for row in rows.values()):
            raise ConfigError(f"{source}: paper row {selector!r} selects none of the grid's rows: {list(rows)}")
    for label, (method, point) in rows.items():
        chosen = [selector for selector in grid.paper.rows if _selects(selector, method, point)]
        if len(chosen) > 1:
            raise ConfigError(f"{source}: paper rows {chosen} all select the row {label!r}")
