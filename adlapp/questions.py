"""The course report's open questions: the runs each one needs, and the answer the data give.

The report leaves five questions it could not answer. Each is a `Question`: the report's words, the runs
that answer it (`requests`, which the Compare page queues, missing ones only) and `answer`, which reads them
from any `RunTables` (the shipped study, the store, or both) with the Compare page's own statistics
(adlapp.compare: Welch or paired t, Holm within the question's family of pairs, CIs adjusted like the
p-values) and says what it finds, with how many seeds stand behind every number, or what is still missing.

  bn-sgd     Does batch-norm help SGD too? The report measured BN only with Adam: the 2 x 2.
  bn-where   Where does BN go? After the activation, also on conv1 and before the linear layer, affine.
  sgd-tuned  Is SGD worse, or un-tuned? Each optimiser at its own best validation lr, beside equal lr.
  converged  Had it converged? The plateau diagnostic (adlapp.convergence) on every course variant.
  budgets    Separate runs per budget, as the report did, against one shared run per seed.

No torch, no streamlit: the Compare page, the Home reading and the tests call it alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from adlapp import compare as cmp
from adlapp import convergence
from adlapp import report as rep
from adlapp.config import COURSE_VARIANTS, RunConfig, base_config, display_name, run_key, variant, variant_label
from adlapp.metrics import metric
from adlapp.planning import PROTOCOLS, Request, separate_budget_runs
from adlapp.store import FINISHED, RunTables

__all__ = ["Question", "Answer", "QUESTIONS", "SWEEP_LRS", "SWEEP_SEEDS", "DEFAULT_SEEDS", "question", "answer",
           "answers", "sweep_configs"]

DEFAULT_SEEDS = 5                       # per variant: the shipped study's
SWEEP_LRS = (0.0001, 0.001, 0.01, 0.1)  # log-spaced, the course's 0.01 among them
SWEEP_SEEDS = 3                         # per (optimiser, lr): a sweep chooses, the comparison after it tests
BUDGETS = (200, 400, 1000)              # the report's U-Net budgets (the runs the question queues)


@dataclass(frozen=True)
class Question:
    id: str
    title: str
    quote: str                          # the report's words that leave it open
    experiment: str
    make_requests: Callable[[int], list[Request]] = field(repr=False)   # seeds -> the runs that answer it

    def requests(self, seeds: int = DEFAULT_SEEDS) -> list[Request]:
        return self.make_requests(seeds)


@dataclass(frozen=True)
class Answer:
    question: Question
    status: str                          # "answered" | "partial" (some runs missing) | "no data"
    headline: str                        # one sentence, statistics included
    lines: tuple[str, ...] = ()          # the supporting sentences (one per pair or variant)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)   # the numbers, for display and download
    missing: tuple[str, ...] = ()        # what is not in the data yet, in words


def _registry(names: tuple[str, ...]) -> Callable[[int], list[Request]]:
    return lambda seeds: [(variant(n), s) for n in names for s in range(seeds)]


def sweep_configs() -> list[RunConfig]:
    """The lr sweep: the course CNN (no BN) with Adam and with SGD at every SWEEP_LRS rate."""
    return [replace(variant(base), optim=replace(variant(base).optim, lr=lr))
            for base in ("cnn/adam", "cnn/sgd") for lr in SWEEP_LRS]


def _sweep_requests(seeds: int) -> list[Request]:
    return [(cfg, s) for cfg in sweep_configs() for s in range(min(seeds, SWEEP_SEEDS) if cfg.optim.lr != 0.01
                                                                  else seeds)]


def _budget_requests(seeds: int) -> list[Request]:
    out: list[Request] = []
    for name in ("unet/normal", "unet/nearest"):
        shared = [(variant(name), s) for s in range(seeds)]
        out += shared + separate_budget_runs(variant(name), list(range(seeds)), BUDGETS)
    return out


_2X2 = ("cnn/bn-adam", "cnn/adam", "cnn/bn-sgd", "cnn/sgd")
_WHERE = ("cnn/bn-adam", "cnn/bn-after-adam", "cnn/bn-all-adam", "cnn/bn-affine-adam")
_COURSE = COURSE_VARIANTS

QUESTIONS: tuple[Question, ...] = (
    Question("bn-sgd", "Does batch-norm help SGD too?",
             "The report measured batch-norm only with Adam, and SGD only without batch-norm.", "cnn",
             _registry(_2X2)),
    Question("bn-where", "Where does batch-norm go?",
             "“There were some discussion during the TA-session about where the batch-normalization should go” "
             "— and “I did not add the batch normalization for the input- and output nodes”.", "cnn",
             _registry(_WHERE)),
    Question("sgd-tuned", "Is SGD worse, or just un-tuned?",
             "“I chose to keep the learning rate the same as with Adam to make the comparison somewhat more "
             "valid.”", "cnn", _sweep_requests),
    Question("converged", "Had it converged?",
             "“It graphically does not seem to have converged as much as the other two.”", "",
             _registry(_COURSE)),
    Question("budgets", "Separate runs per budget, or one run tested at each?",
             "“I trained each version of the model for 3x200, 3x400 and 3x1000 epochs.”", "unet",
             _budget_requests),
)


def question(qid: str) -> Question:
    for q in QUESTIONS:
        if q.id == qid:
            return q
    raise KeyError(f"question {qid!r}: known questions are {', '.join(q.id for q in QUESTIONS)}")


def answers(tables: RunTables) -> list[Answer]:
    return [answer(q, tables) for q in QUESTIONS]


def answer(q: Question | str, tables: RunTables) -> Answer:
    q = question(q) if isinstance(q, str) else q
    return {"bn-sgd": _pairs_answer, "bn-where": _pairs_answer, "sgd-tuned": _sweep_answer,
            "converged": _converged_answer, "budgets": _budgets_answer}[q.id](q, tables)


# -- helpers ---------------------------------------------------------------------------------------------------
def _finished(tables: RunTables, experiment: str) -> pd.DataFrame:
    runs = cmp.runs_frame(tables, experiment)
    return runs[runs["status"].isin(FINISHED)]


def _missing(q: Question, tables: RunTables, seeds: int = DEFAULT_SEEDS) -> tuple[str, ...]:
    """The question's runs that the data lack, counted per variant ('BN + SGD: 5 of 5 seeds')."""
    have = set(tables.runs.loc[tables.runs["status"].isin(FINISHED), "key"])
    need: dict[str, list[bool]] = {}
    for cfg, seed in q.requests(seeds):
        separate = cfg.epochs != base_config(cfg.experiment).epochs      # a separate-protocol budget run
        label = display_name(variant_label(cfg)) + (f" ({cfg.epochs}-epoch runs)" if separate else "")
        need.setdefault(label, []).append(run_key(cfg, seed) in have)
    return tuple(f"{label}: {len(v) - sum(v)} of {len(v)} runs" for label, v in need.items() if not all(v))


def _epoch(tables: RunTables, experiment: str, variants: tuple[str, ...]) -> int | None:
    """The latest test epoch every one of `variants` present in the data was scored at."""
    runs = _finished(tables, experiment)
    runs = runs[runs["variant"].isin(variants)]
    sets = [set().union(*g["test_epochs"].map(set)) for _, g in runs.groupby("variant")]
    common = set.intersection(*sets) if sets else set()
    return max(common) if common else None


def _status(missing: tuple[str, ...]) -> str:
    return "partial" if missing else "answered"


# -- bn-sgd, bn-where: chosen pairs, one family ---------------------------------------------------------------
_PAIRS = {
    "bn-sgd": (("cnn/bn-adam", "cnn/adam"), ("cnn/bn-sgd", "cnn/sgd")),
    "bn-where": (("cnn/bn-after-adam", "cnn/bn-adam"), ("cnn/bn-all-adam", "cnn/bn-adam"),
                 ("cnn/bn-affine-adam", "cnn/bn-adam")),
}


def _pairs_answer(q: Question, tables: RunTables) -> Answer:
    pairs = _PAIRS[q.id]
    names = tuple(dict.fromkeys(v for p in pairs for v in p))
    missing = _missing(q, tables)
    present = set(_finished(tables, "cnn")["variant"])
    usable = tuple(p for p in pairs if set(p) <= present)
    epoch = _epoch(tables, "cnn", names)
    if not usable or epoch is None:
        return Answer(q, "no data", "No runs of these variants yet: queue them below (or load the shipped study).",
                      missing=missing)
    sel = cmp.Selection("cnn", tuple(v for v in names if v in present), (epoch,), "test_acc", pairs=usable)
    res = cmp.analyse(tables, sel)
    rows = res.pairs.to_dict("records")
    lines = [rep.pair_sentence(r) for r in rows]
    flagged = [rep.health_note(g) for g in res.groups if g.flags]
    lines += [f for f in flagged if f]
    best = _best_metric_lines(tables, sel)
    sig = [r for r in rows if r["significant"]]
    what = "test accuracy at epoch %d" % epoch
    if q.id == "bn-sgd":
        effect = {r["b"]: r for r in rows}
        parts = []
        for opt, ref in (("Adam", "Adam"), ("SGD", "SGD")):
            r = effect.get(ref)
            if r is not None:
                parts.append(f"with {opt} BN changes {what} by {rep.delta_ci(r).removeprefix('Δ = ')} "
                             f"({'significant' if r['significant'] else 'not significant'}, "
                             f"{rep.adjusted(r)})")
        headline = "Batch-norm: " + "; ".join(parts) + "."
    else:
        if sig:
            headline = ("Against the course placement (BN before ELU on conv2–3, no affine terms), "
                        + "; ".join(f"{r['a']} differs by {rep.delta_ci(r).removeprefix('Δ = ')}" for r in sig)
                        + f" in {what} ({rep.adjusted(sig[0])}); the other placements are not distinguishable.")
        else:
            headline = (f"No placement differs significantly from the course's (BN before ELU on conv2–3) in {what} "
                        f"after Holm over {rep.plural(len(rows), 'pair')}; the largest difference is "
                        f"{_largest(rows)}.")
    table = rep.pair_table(res.pairs)
    return Answer(q, _status(missing), headline, tuple(lines + best), table, missing)


def _largest(rows: list[dict[str, Any]]) -> str:
    r = max(rows, key=lambda r: abs(r["diff"]) if np.isfinite(r["diff"]) else -1)
    return f"{r['a']} vs {r['b']}, {rep.delta_ci(r)}"


def _best_metric_lines(tables: RunTables, sel: cmp.Selection) -> list[str]:
    """The same pairs scored at each run's best-validation epoch, where the runs have those rows."""
    if tables.tests.empty or not (tables.tests["name"] == "best_acc").any():
        return []
    res = cmp.analyse(tables, replace(sel, metric="test_acc_best"))
    if res.pairs.empty:
        return []
    return [f"Scored at each run's lowest-validation-loss epoch instead (the weights an early stop on validation "
            f"loss would keep; {_best_epochs(tables, sel)}): "
            + " ".join(rep.pair_sentence(r) for r in res.pairs.to_dict("records"))]


def _best_epochs(tables: RunTables, sel: cmp.Selection) -> str:
    """'median epoch chosen (range): BN + Adam 15 (11-25), Adam 7 (5-9)': where each variant's runs stopped. An early
    epoch says validation loss rose while accuracy still improved (over-confident predictions), so these
    weights may score far below the last epoch's."""
    runs, t = _finished(tables, sel.experiment), tables.tests
    chosen_rows = t[(t["name"] == "best_epoch") & t["epoch"].isin(sel.epochs)]
    parts = []
    for name in sel.variants:
        keys = set(runs.loc[runs["variant"] == name, "key"])
        chosen = chosen_rows.loc[chosen_rows["key"].isin(keys), "value"]
        if len(chosen):
            parts.append(f"{display_name(name)} {chosen.median():g} ({chosen.min():g}-{chosen.max():g})")
    return "median epoch chosen (range): " + ", ".join(parts) if parts else "no epochs recorded"


# -- sgd-tuned: the lr sweep ----------------------------------------------------------------------------------
def _sweep_answer(q: Question, tables: RunTables) -> Answer:
    """Each optimiser's lr chosen on validation accuracy at the last epoch, mean over the seeds that finished.
    A run that diverged has no last-epoch score (its last value is from before it blew up, which would flatter
    the rate), so it is counted beside the mean, and a rate at which any seed diverged is chosen only when every
    rate of that optimiser diverged somewhere: a rate that blows up on some seeds is not a tuned rate."""
    runs = _finished(tables, "cnn")
    wanted = {variant_label(c): c for c in sweep_configs()}
    runs = runs[runs["variant"].isin(list(wanted))]
    missing = _missing(q, tables)
    if runs.empty:
        return Answer(q, "no data", "No lr-sweep runs yet: queue them below.", missing=missing)
    last_val = _final_values(tables, runs, "val_acc")
    score = "val acc (last epoch), mean"
    rows = []
    for label, cfg in wanted.items():
        mine = runs[runs["variant"] == label]
        done = mine[mine["status"] == "done"]
        vals = [last_val[k] for k in done["key"] if k in last_val and np.isfinite(last_val[k])]
        diverged = int((mine["status"] == "diverged").sum())
        if not vals and not diverged:
            continue
        rows.append({"optimizer": "Adam" if cfg.optim.name == "adam" else "SGD", "lr": cfg.optim.lr,
                     "variant": label, "seeds": len(vals),
                     score: float(np.mean(vals)) if vals else math.nan,
                     "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan, "diverged": diverged})
    table = pd.DataFrame(rows)
    if table.empty or table[score].isna().all():
        return Answer(q, "no data", "The lr-sweep runs have no validation accuracy yet.", missing=missing)
    # per optimiser: the rates no seed diverged at, unless there are none
    usable = table[table[score].notna()]
    stable = usable[usable["diverged"] == 0]
    usable = pd.concat([stable, usable[~usable["optimizer"].isin(set(stable["optimizer"]))]])
    best = usable.loc[usable.groupby("optimizer")[score].idxmax()].set_index("optimizer")
    table["chosen"] = table["variant"].isin(set(best["variant"]))
    if set(best.index) != {"Adam", "SGD"}:
        return Answer(q, "partial", "Only one optimiser has sweep runs so far.", table=table, missing=missing)
    tuned = (best.loc["Adam", "variant"], best.loc["SGD", "variant"])
    equal = ("cnn/adam", "cnn/sgd")
    pairs = tuple(dict.fromkeys([equal, tuned]))
    variants = tuple(dict.fromkeys(v for p in pairs for v in p))
    epoch = _epoch(tables, "cnn", variants)
    res = cmp.analyse(tables, cmp.Selection("cnn", variants, (epoch,), "test_acc", pairs=pairs))
    by = {(r["a"], r["b"]): r for r in res.pairs.to_dict("records")}
    lr_a, lr_s = best.loc["Adam", "lr"], best.loc["SGD", "lr"]
    lines = [f"Chosen on the validation split (mean accuracy at the last epoch over "
             f"{int(best.loc['Adam', 'seeds'])} and {int(best.loc['SGD', 'seeds'])} seeds): Adam at lr {lr_a:g}, "
             f"SGD at lr {lr_s:g}. The test split played no part in choosing."]
    if table["diverged"].any():
        lost = table[table["diverged"] > 0]
        lines.append("Diverged (non-finite loss; no last-epoch score, and a rate where a seed diverged is not "
                     "chosen while another rate is stable): " + ", ".join(
                         f"{o} lr {lr:g} {d} of {d + n} seeds" for o, lr, d, n in
                         zip(lost["optimizer"], lost["lr"], lost["diverged"], lost["seeds"], strict=True)) + ".")
    lines += [rep.pair_sentence(r) for r in res.pairs.to_dict("records")]
    tuned_row = by.get((display_name(tuned[0]), display_name(tuned[1])))
    equal_row = by.get((display_name(equal[0]), display_name(equal[1])))
    if tuned_row is None:
        tuned_row = next(iter(by.values()), None)
    if tuned_row is None:
        return Answer(q, "partial", "The chosen rates have no test scores yet.", tuple(lines), table, missing)
    verdict = ("SGD is still worse" if tuned_row["significant"] and tuned_row["diff"] > 0 else
               "SGD is better" if tuned_row["significant"] else "the difference is not significant")
    headline = (f"At its own best validation lr (Adam {lr_a:g}, SGD {lr_s:g}) {verdict}: Adam − SGD test accuracy "
                f"{rep.delta_ci(tuned_row).removeprefix('Δ = ')} ({rep.adjusted(tuned_row)})")
    if equal_row is not None and equal_row is not tuned_row:
        headline += f"; at the course's equal lr 0.01 it is {rep.delta_ci(equal_row).removeprefix('Δ = ')}"
    elif tuned == equal and (table.groupby("optimizer")["lr"].nunique() > 1).all():
        rates = "; ".join(f"{o} {', '.join(f'{x:g}' for x in sorted(g))}"
                          for o, g in table.groupby("optimizer")["lr"])
        headline += (f"; both optimisers' best rate among those swept ({rates}) is the course's equal lr 0.01, so "
                     f"the course's comparison already was the tuned one")
    return Answer(q, _status(missing), headline + ".", tuple(lines), table, missing)


def _final_values(tables: RunTables, runs: pd.DataFrame, name: str) -> dict[str, float]:
    ep = tables.epochs[(tables.epochs["name"] == name) & tables.epochs["key"].isin(set(runs["key"]))]
    if ep.empty:
        return {}
    last = ep.loc[ep.groupby("key")["epoch"].idxmax()]
    return dict(zip(last["key"], last["value"].astype(float), strict=True))


# -- converged: the plateau diagnostic ------------------------------------------------------------------------
_PLATEAU_METRICS = {"cnn": ("val_acc", "train_loss"), "unet": ("val_f1", "train_loss")}


def plateau_table(tables: RunTables, experiment: str, variants: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per (series, metric): the trend over the last fifth of its epochs (adlapp.convergence)."""
    runs = _finished(tables, experiment)
    if variants is not None:
        runs = runs[runs["variant"].isin(variants)]
    rows = []
    for (v, series), g in runs.groupby(["variant", "series"], sort=False):
        longest = g[g["epochs"] == g["epochs"].max()]
        for name in _PLATEAU_METRICS[experiment]:
            ep = tables.epochs[(tables.epochs["name"] == name) & tables.epochs["key"].isin(set(longest["key"]))]
            seed_of = dict(zip(longest["key"], longest["seed"], strict=True))
            curves = pd.DataFrame({"seed": ep["key"].map(seed_of), "epoch": ep["epoch"].astype(int),
                                   "value": ep["value"].astype(float)})
            m = metric(name)
            p = convergence.plateau(curves, name, m.higher_is_better)
            if p is None:
                continue
            rows.append({"variant": v, "series": series, "metric": m.label, "epochs": f"{p.start}–{p.end}",
                         "seeds": p.n_seeds, "slope per 100 epochs": p.mean, "CI low": p.ci_low,
                         "CI high": p.ci_high, "verdict": p.verdict})
    return pd.DataFrame(rows, columns=["variant", "series", "metric", "epochs", "seeds", "slope per 100 epochs",
                                       "CI low", "CI high", "verdict"])


def _converged_answer(q: Question, tables: RunTables) -> Answer:
    parts = [plateau_table(tables, exp, tuple(v for v in COURSE_VARIANTS if v.startswith(exp + "/")))
             for exp in ("cnn", "unet")]
    table = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) \
        else parts[0]
    if table.empty:
        return Answer(q, "no data", "No finished course runs with curves yet.", missing=_missing(q, tables))
    lines = []
    for r in table.to_dict("records"):
        dec = rep.decimals(r["slope per 100 epochs"], r["CI low"], r["CI high"])
        ci = (f" [95 % CI {rep.number(r['CI low'], dec)}, {rep.number(r['CI high'], dec)}]"
              if np.isfinite(r["CI low"]) else "")
        lines.append(f"{r['series']}, {r['metric']} over epochs {r['epochs']}: "
                     f"{rep.number(r['slope per 100 epochs'], dec, sign=True)} per 100 epochs{ci}, "
                     f"{rep.plural(int(r['seeds']), 'seed')} — {r['verdict']}.")
    val = table[~table["metric"].str.contains("train")]
    improving = sorted(set(val.loc[val["verdict"] == "still improving", "series"]))
    worse = sorted(set(val.loc[val["verdict"] == "getting worse", "series"]))
    head = []
    if improving:
        head.append(f"still improving on validation at the end: {', '.join(improving)}")
    if worse:
        head.append(f"getting worse on validation (overfitting): {', '.join(worse)}")
    flat = sorted(set(val["series"]) - set(improving) - set(worse))
    if flat:
        head.append(f"flat within the CI: {', '.join(flat)}")
    train = table[table["metric"].str.contains("train")]
    falling = sorted(set(train.loc[train["verdict"] == "still improving", "series"]))
    headline = ("Over the last fifth of training, " + "; ".join(head) + "."
                + (f" Training loss is still falling for {', '.join(falling)}: the optimiser has not converged on "
                   "the training set, but more epochs would not improve the validation score at this rate."
                   if falling and not improving else ""))
    return Answer(q, "answered", headline, tuple(lines), table)


# -- budgets: shared vs separate -----------------------------------------------------------------------------
def _budgets_answer(q: Question, tables: RunTables) -> Answer:
    missing = _missing(q, tables)
    rows, lines = [], []
    runs = _finished(tables, "unet")
    for name in ("unet/normal", "unet/nearest"):
        mine = runs[runs["variant"] == name]
        if mine.empty:
            continue
        budgets = sorted(set().union(*mine.loc[mine["epochs"] == mine["epochs"].max(), "test_epochs"].map(set)))
        if len(budgets) < 2:
            continue
        short, long_ = budgets[0], budgets[-1]       # the report's 200 and 1000 (read from the runs themselves)
        for protocol in PROTOCOLS:
            sel = cmp.Selection("unet", (name,), (short, long_), "test_pixel_acc", protocol=protocol)
            res = cmp.analyse(tables, sel)
            budget = res.pairs[res.pairs["family"] == "budgets"]
            if budget.empty:
                continue
            r = budget.to_dict("records")[0]
            n = max(int(r["n_a"]), int(r["n_b"]))
            cost = n * (long_ if protocol == "shared" else sum(budgets))
            rows.append({"variant": display_name(name), "protocol": protocol, "test": rep.test_name(r),
                         "budgets": f"{short} vs {long_}", "n": f"{r['n_a']}, {r['n_b']}", "Δ short − long": r["diff"],
                         "CI low": r["ci_low"], "CI high": r["ci_high"], "CI width": r["ci_high"] - r["ci_low"],
                         "p": r["p"], "epochs trained": cost})
            lines.append(f"{display_name(name)}, {protocol} runs: {rep.pair_sentence(r)} Cost: {cost:,} epochs "
                         f"({n} seeds × {long_ if protocol == 'shared' else ' + '.join(map(str, budgets))}).")
    table = pd.DataFrame(rows)
    if table.empty:
        return Answer(q, "no data", "No U-Net runs scored at two budgets yet.", missing=missing)
    # Compare the protocols only on variants that have both: a variant with shared runs alone would otherwise
    # weigh on one side of the widths and the cost ratio.
    both = table[table.groupby("variant")["protocol"].transform("nunique") == len(PROTOCOLS)]
    if both.empty:
        have = ", ".join(sorted(set(table["protocol"])))
        return Answer(q, "partial", f"Only the {have} protocol has runs so far for each variant; the other "
                      "protocol needs its own runs (queue them below).", tuple(lines), table, missing)
    width = both.groupby("protocol")["CI width"].mean()
    ratio = (both.loc[both["protocol"] == "separate", "epochs trained"].sum()
             / both.loc[both["protocol"] == "shared", "epochs trained"].sum())
    variants = list(dict.fromkeys(both["variant"]))
    compared = ("" if len(variants) == table["variant"].nunique()
                else f" (on {', '.join(variants)}, the variant(s) with both so far)")
    headline = (f"One run per seed tested at each budget pairs the budgets by seed: its CI of Δ is "
                f"{rep.number(width['shared'], 4)} wide on average, "
                f"{'narrower' if width['shared'] < width['separate'] else 'not narrower'} than the "
                f"{rep.number(width['separate'], 4)} of separate runs per budget, which cost {ratio:.1f}× the epochs"
                f"{compared}. Separate runs answer a slightly different question: how independently trained models "
                "of each budget differ, initialisation noise included. Pairing cancels that noise only as far as "
                "a seed's scores at the two budgets move together.")
    return Answer(q, _status(missing), headline, tuple(lines), table, missing)
